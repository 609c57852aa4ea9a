-- 005: this database's bakery id, made once at random. kiln serve tags the
-- builders it launches with it (kiln:bakery), so that its sweeper never
-- terminates the builders of another bakery in the same account.
CREATE TABLE bakery (
	id         INTEGER PRIMARY KEY CHECK (id = 1),
	bakery_id  TEXT    NOT NULL
) STRICT;

INSERT INTO bakery (id, bakery_id) VALUES (1, lower(hex(randomblob(8))));
