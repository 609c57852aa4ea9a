-- 004: the hash of kiln serve's admin token (one row). IF NOT EXISTS: servers
-- before this migration created the table themselves at start-up.
CREATE TABLE IF NOT EXISTS admin_token (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	sha256     TEXT    NOT NULL,
	created_at INTEGER NOT NULL
) STRICT;
