-- 001: the bakery's tables. Times are Unix milliseconds (UTC); NULL means
-- "not yet". Lists and maps are JSON text.

CREATE TABLE projects (
	name              TEXT    PRIMARY KEY,
	region            TEXT    NOT NULL,
	base_id           TEXT    NOT NULL DEFAULT '',
	base_owner        TEXT    NOT NULL DEFAULT '',
	base_name         TEXT    NOT NULL DEFAULT '',
	base_most_recent  INTEGER NOT NULL DEFAULT 0,
	instance_type     TEXT    NOT NULL,
	script            TEXT    NOT NULL,
	security_groups   TEXT    NOT NULL DEFAULT '[]',
	subnet            TEXT    NOT NULL DEFAULT '',
	iam_profile       TEXT    NOT NULL DEFAULT '',
	tags              TEXT    NOT NULL DEFAULT '{}',
	keep              INTEGER NOT NULL,
	branch            TEXT    NOT NULL DEFAULT '',
	script_timeout_ms INTEGER NOT NULL,
	image_timeout_ms  INTEGER NOT NULL,
	webhook_secret    TEXT    NOT NULL,
	created_at        INTEGER NOT NULL,
	updated_at        INTEGER NOT NULL
) STRICT;

CREATE TABLE bakes (
	id               INTEGER PRIMARY KEY AUTOINCREMENT,
	project          TEXT    NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
	commit_sha       TEXT    NOT NULL DEFAULT '',
	ref              TEXT    NOT NULL DEFAULT '',
	message          TEXT    NOT NULL DEFAULT '',
	repo             TEXT    NOT NULL DEFAULT '',
	delivery_id      TEXT    NOT NULL DEFAULT '',
	state            TEXT    NOT NULL
		CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
	cancel_requested INTEGER NOT NULL DEFAULT 0,
	created_at       INTEGER NOT NULL,
	updated_at       INTEGER NOT NULL,
	started_at       INTEGER,
	finished_at      INTEGER,
	image_id         TEXT    NOT NULL DEFAULT '',
	builder_id       TEXT    NOT NULL DEFAULT '',
	reason           TEXT    NOT NULL DEFAULT '',
	console_tail     TEXT    NOT NULL DEFAULT ''
) STRICT;

-- Listing pages walk these newest first by id (keyset pagination).
CREATE INDEX bakes_project_id ON bakes (project, id);
CREATE INDEX bakes_state_id ON bakes (state, id);
CREATE INDEX bakes_builder ON bakes (builder_id);
-- Coalescing, enforced by the database: per project at most one queued and
-- one running bake.
CREATE UNIQUE INDEX bakes_one_queued ON bakes (project) WHERE state = 'queued';
CREATE UNIQUE INDEX bakes_one_running ON bakes (project) WHERE state = 'running';

CREATE TABLE bake_steps (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	bake_id     INTEGER NOT NULL REFERENCES bakes (id) ON DELETE CASCADE,
	name        TEXT    NOT NULL,
	state       TEXT    NOT NULL
		CHECK (state IN ('running', 'succeeded', 'failed', 'skipped', 'cancelled')),
	started_at  INTEGER NOT NULL,
	finished_at INTEGER,
	detail      TEXT    NOT NULL DEFAULT '',
	UNIQUE (bake_id, name)
) STRICT;

CREATE TABLE deliveries (
	project     TEXT    NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
	delivery_id TEXT    NOT NULL,
	bake_id     INTEGER NOT NULL REFERENCES bakes (id) ON DELETE CASCADE,
	received_at INTEGER NOT NULL,
	PRIMARY KEY (project, delivery_id)
) STRICT;

CREATE INDEX deliveries_bake ON deliveries (bake_id);

CREATE TABLE images (
	project    TEXT    NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
	image_id   TEXT    NOT NULL,
	name       TEXT    NOT NULL DEFAULT '',
	bake_id    INTEGER REFERENCES bakes (id) ON DELETE SET NULL,
	commit_sha TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	PRIMARY KEY (project, image_id)
) STRICT;

CREATE INDEX images_project_created ON images (project, created_at);
CREATE INDEX images_bake ON images (bake_id);
