-- 006: the bakery pages' sign-in sessions, kept here so that a restart, or a
-- second kiln serve on the same file, does not sign anyone out. The cookie's
-- session id is kept only as its SHA-256 (hex): the file yields no usable
-- cookie. flash is a message for the session's next page ('' = none).
CREATE TABLE sessions (
	id_sha256  TEXT    PRIMARY KEY,
	csrf       TEXT    NOT NULL,
	flash      TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;

-- PruneSessions forgets expired sessions by age.
CREATE INDEX sessions_expires ON sessions (expires_at);

-- A project's webhook secret to show once on the session's next view of its
-- page, right after creation or rotation. Only that it is to be shown is kept
-- here; the secret itself is read from projects.
CREATE TABLE session_secrets (
	session_sha256 TEXT    NOT NULL REFERENCES sessions (id_sha256) ON DELETE CASCADE,
	project        TEXT    NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
	rotated        INTEGER NOT NULL,
	PRIMARY KEY (session_sha256, project)
) STRICT;

CREATE INDEX session_secrets_project ON session_secrets (project);
