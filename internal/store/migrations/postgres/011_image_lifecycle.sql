-- 010: a project's image lifecycle: deprecate_after (the images'
-- deprecation time after creation) and disable_for (retention disables an
-- image that long before deregistering it), in milliseconds; 0 = none.
ALTER TABLE projects ADD COLUMN deprecate_after_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE projects ADD COLUMN disable_for_ms BIGINT NOT NULL DEFAULT 0;
