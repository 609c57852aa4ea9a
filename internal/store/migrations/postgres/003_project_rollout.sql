-- 003: a project's optional rollout target (bake → deploy), as JSON; '' = none.
ALTER TABLE projects ADD COLUMN rollout TEXT NOT NULL DEFAULT '';
