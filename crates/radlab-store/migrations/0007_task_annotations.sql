-- Annotations written through tasks: the task that wrote a log row and a note on each
-- annotation; a comment per task.

ALTER TABLE annotation_log ADD COLUMN task_id TEXT NOT NULL DEFAULT '';
ALTER TABLE annotation_log ADD COLUMN note TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN comment TEXT NOT NULL DEFAULT '';
CREATE INDEX annotation_log_layer ON annotation_log (project_id, image_id, layer, reader);
