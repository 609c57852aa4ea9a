-- 004: the hash of kiln serve's admin token (one row).
CREATE TABLE IF NOT EXISTS admin_token (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	sha256     TEXT    NOT NULL,
	created_at BIGINT  NOT NULL
);
