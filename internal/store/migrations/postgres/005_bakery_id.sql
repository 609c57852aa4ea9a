-- 005: this database's bakery id, made once at random: every server on the
-- database tags the builders it launches with it (kiln:bakery), and the
-- sweeper never terminates the builders of another bakery in the account.
CREATE TABLE bakery (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	bakery_id  TEXT    NOT NULL
);

INSERT INTO bakery (id, bakery_id)
	VALUES (1, substr(md5(random()::text || clock_timestamp()::text), 1, 16));
