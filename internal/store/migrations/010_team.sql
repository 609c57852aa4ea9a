-- 010: a bakery for a team. Who a page session acts as (subject, its role);
-- personal API tokens, kept only as their SHA-256 (hex); and the audit log,
-- appended to and never updated.
ALTER TABLE sessions ADD COLUMN subject TEXT NOT NULL DEFAULT '';
-- Sessions made before roles were made by the admin token.
ALTER TABLE sessions ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';

CREATE TABLE api_tokens (
	name         TEXT    PRIMARY KEY,
	sha256       TEXT    NOT NULL UNIQUE,
	role         TEXT    NOT NULL,
	created_by   TEXT    NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL DEFAULT 0, -- 0: never
	last_used_at INTEGER NOT NULL DEFAULT 0, -- 0: never used
	revoked_at   INTEGER NOT NULL DEFAULT 0  -- 0: live
) STRICT;

CREATE TABLE audit (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	at         INTEGER NOT NULL,
	actor      TEXT    NOT NULL, -- "user alice@example.com", "token ci", "admin-token", "webhook DELIVERY"
	action     TEXT    NOT NULL, -- project.apply, bake.trigger, promotion.start, token.create, ...
	project    TEXT    NOT NULL DEFAULT '',
	target     TEXT    NOT NULL DEFAULT '', -- the bake, environment, token, ... acted on
	detail     TEXT    NOT NULL DEFAULT '',
	remote     TEXT    NOT NULL DEFAULT '', -- the request's address
	outcome    TEXT    NOT NULL              -- "ok", or why not
) STRICT;

CREATE INDEX audit_project ON audit (project, id);
CREATE INDEX audit_at ON audit (at);

-- Append-only: the database itself refuses to change or remove a row.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN
	SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN
	SELECT RAISE(ABORT, 'the audit log is append-only');
END;
