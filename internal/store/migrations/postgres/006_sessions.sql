-- 006: the bakery pages' sign-in sessions, kept here so that every server
-- of the bakery, and a restarted one, knows them. The cookie's session id is
-- kept only as its SHA-256 (hex). flash is a message for the session's next
-- page ('' = none).
CREATE TABLE sessions (
	id_sha256  TEXT    PRIMARY KEY,
	csrf       TEXT    NOT NULL,
	flash      TEXT    NOT NULL DEFAULT '',
	created_at BIGINT  NOT NULL,
	expires_at BIGINT  NOT NULL
);

CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE session_secrets (
	session_sha256 TEXT    NOT NULL REFERENCES sessions (id_sha256) ON DELETE CASCADE,
	project        TEXT    NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
	rotated        INTEGER NOT NULL,
	PRIMARY KEY (session_sha256, project)
);

CREATE INDEX session_secrets_project ON session_secrets (project);
