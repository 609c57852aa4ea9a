-- 011: notifications and commit statuses. A project's notification targets
-- (each with its events, JSON; its secret sealed like the webhook secret);
-- its commit-status reporter (provider, API base, token sealed); and one row
-- per delivery of an event to a target, keyed by the event and the target,
-- so a delivery is sent once and its outcome shows on the project page.
-- Plain SQL that SQLite and PostgreSQL both accept.
CREATE TABLE notify_targets (
	project  TEXT    NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
	position INTEGER NOT NULL,
	url      TEXT    NOT NULL,
	secret   TEXT    NOT NULL DEFAULT '',
	events   TEXT    NOT NULL, -- JSON list of event names
	PRIMARY KEY (project, position)
);

CREATE TABLE commit_status (
	project  TEXT NOT NULL PRIMARY KEY REFERENCES projects (name) ON DELETE CASCADE,
	provider TEXT NOT NULL, -- github or gitlab
	api_url  TEXT NOT NULL,
	token    TEXT NOT NULL
);

CREATE TABLE notify_deliveries (
	key        TEXT    NOT NULL PRIMARY KEY, -- event id and target
	project    TEXT    NOT NULL,
	target     TEXT    NOT NULL, -- the URL, or "commit status"
	event      TEXT    NOT NULL,
	state      TEXT    NOT NULL, -- pending, delivered, failed
	attempts   INTEGER NOT NULL DEFAULT 0,
	last_error TEXT    NOT NULL DEFAULT '',
	created_at BIGINT  NOT NULL,
	updated_at BIGINT  NOT NULL
);

CREATE INDEX notify_deliveries_project ON notify_deliveries (project, updated_at);
