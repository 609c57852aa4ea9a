-- 013: safe delivery. A project's image tests (the tests: block, JSON);
-- revoked images (never promoted again; environments running one are
-- taken back to an earlier image), with the reason and who revoked; and
-- approvals of a gated promotion (who let an image through to an
-- environment after the previous one's soak).
-- Plain SQL that SQLite and PostgreSQL both accept.
CREATE TABLE project_tests (
	project TEXT NOT NULL PRIMARY KEY REFERENCES projects (name) ON DELETE CASCADE,
	spec    TEXT NOT NULL
);

CREATE TABLE image_revocations (
	project    TEXT   NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
	image_id   TEXT   NOT NULL,
	reason     TEXT   NOT NULL,
	actor      TEXT   NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (project, image_id)
);

CREATE TABLE approvals (
	project      TEXT   NOT NULL REFERENCES projects (name) ON DELETE CASCADE,
	env          TEXT   NOT NULL,
	promotion_id BIGINT NOT NULL, -- the previous environment's promotion whose soak was held
	image_id     TEXT   NOT NULL,
	actor        TEXT   NOT NULL,
	created_at   BIGINT NOT NULL,
	PRIMARY KEY (project, env, promotion_id)
);
