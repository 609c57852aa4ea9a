-- 008: a project's environments (staging, production, ...), in order, each
-- as JSON (spec; never a secret's value, only its SSM parameter version),
-- and their promotions: every rollout of an image to an environment, newest
-- id last. Times are Unix milliseconds; 0 means "not yet". Plain types, so
-- that the same file runs on SQLite and PostgreSQL.
CREATE TABLE environments (
	project  TEXT    NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
	name     TEXT    NOT NULL,
	position INTEGER NOT NULL,
	spec     TEXT    NOT NULL,
	PRIMARY KEY (project, name)
);

CREATE TABLE promotions (
	id          BIGINT  PRIMARY KEY,
	project     TEXT    NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
	env         TEXT    NOT NULL,
	image_id    TEXT    NOT NULL,
	cause       TEXT    NOT NULL DEFAULT '',
	state       TEXT    NOT NULL CHECK (state IN ('rolling', 'succeeded', 'failed')),
	reason      TEXT    NOT NULL DEFAULT '',
	version     TEXT    NOT NULL DEFAULT '',
	digest      TEXT    NOT NULL DEFAULT '',
	soak        TEXT    NOT NULL DEFAULT '',
	soak_until  BIGINT  NOT NULL DEFAULT 0,
	created_at  BIGINT  NOT NULL,
	finished_at BIGINT  NOT NULL DEFAULT 0
);

CREATE INDEX promotions_env ON promotions (project, env, id);
CREATE INDEX promotions_state ON promotions (state);
-- At most one rollout per environment at a time, enforced by the database.
CREATE UNIQUE INDEX promotions_one_rolling ON promotions (project, env) WHERE state = 'rolling';
