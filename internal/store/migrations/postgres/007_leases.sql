-- 007: several servers on one database. A running bake is owned by the
-- server working on it (owner, '' = none) while its lease lasts (lease_until,
-- Unix ms); the owner renews it, and another server takes over a bake whose
-- lease ran out. leases holds named leases such as the bakery's leader
-- (the server that runs the sweeper and retention).
ALTER TABLE bakes ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE bakes ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;

CREATE TABLE leases (
	name   TEXT   PRIMARY KEY,
	holder TEXT   NOT NULL,
	until  BIGINT NOT NULL
);
