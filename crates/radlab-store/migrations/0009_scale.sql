-- For large projects (issue 5, scale: 100,000 images, 17 readers, 300,000 tasks).

-- A project's images by split and state and its tasks by user and state, kept by every
-- transaction that adds images or tasks or changes their split, state or user (adding
-- images, assigning, a task's transition, un-assigning, reassigning, moving images to
-- another split): the progress reads these instead of counting every row.
CREATE TABLE image_counts (
    project_id TEXT NOT NULL,
    split      TEXT NOT NULL,
    state      TEXT NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (project_id, split, state)
);
INSERT INTO image_counts (project_id, split, state, n)
SELECT project_id, split, state, COUNT(*) FROM project_images GROUP BY project_id, split, state;

CREATE TABLE task_counts (
    project_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    state      TEXT NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (project_id, user_id, state)
);
INSERT INTO task_counts (project_id, user_id, state, n)
SELECT project_id, user_id, state, COUNT(*) FROM tasks GROUP BY project_id, user_id, state;

-- A project's images of a split, and of a state in a split: the images in review or done
-- (whose agreement the progress computes) without reading the others. It replaces
-- (project_id, split), its start: one index less to write when images change state.
CREATE INDEX project_images_split_state ON project_images (project_id, split, state);
DROP INDEX project_images_split;
-- The tasks that have been submitted (the times per image of the progress).
CREATE INDEX tasks_submitted ON tasks (project_id) WHERE submitted_at <> '';
-- A worklist page read in order (oldest change first) from one index, of one project and
-- state or not: on SQLite the rows skipped to reach a deep page are read from the index
-- alone.
CREATE INDEX tasks_worklist ON tasks (user_id, updated_at, task_id, project_id, state);
DROP INDEX tasks_user;
-- (project_id, image_id) is the start of tasks_one_per_user_and_image.
DROP INDEX tasks_image;
