-- 009: image distribution. A project's copy and share settings (JSON: copy_to,
-- encrypt, kms_key_id, share_with, share_with_orgs, share_with_ous), and a
-- bake's image in every region: its own region's and each copy, with the
-- copy's state. Plain SQL that SQLite and PostgreSQL both accept.
CREATE TABLE project_distribution (
	project  TEXT NOT NULL PRIMARY KEY REFERENCES projects (name) ON DELETE CASCADE,
	settings TEXT NOT NULL
);

CREATE TABLE bake_images (
	bake_id    BIGINT NOT NULL REFERENCES bakes (id) ON DELETE CASCADE,
	region     TEXT   NOT NULL,
	image_id   TEXT   NOT NULL,
	state      TEXT   NOT NULL,
	updated_at BIGINT NOT NULL,
	PRIMARY KEY (bake_id, region)
);
