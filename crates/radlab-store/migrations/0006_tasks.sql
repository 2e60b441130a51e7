-- Workflows per split and the tasks they make. A user has at most one task per image of a
-- project (a reader never reads the same image twice, a reviewer never reviews their own).

CREATE TABLE workflows (
    project_id TEXT NOT NULL REFERENCES projects (project_id),
    split      TEXT NOT NULL,
    -- 'independent', 'consensus' or 'single'
    kind       TEXT NOT NULL,
    readers    BIGINT NOT NULL,
    reviewers  BIGINT NOT NULL,
    PRIMARY KEY (project_id, split)
);

CREATE TABLE tasks (
    task_id    TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (project_id),
    image_id   TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (user_id),
    -- 'reading' or 'review'
    kind       TEXT NOT NULL,
    -- 'NEW', 'IN_PROGRESS' or 'SUBMITTED'
    state      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX tasks_one_per_user_and_image ON tasks (project_id, image_id, user_id);
CREATE INDEX tasks_user ON tasks (user_id, state);
CREATE INDEX tasks_image ON tasks (project_id, image_id);
