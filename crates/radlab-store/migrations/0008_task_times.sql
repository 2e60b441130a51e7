-- When a task was started and submitted (RFC 3339; '' until then), for throughput and time
-- per image.

ALTER TABLE tasks ADD COLUMN started_at TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN submitted_at TEXT NOT NULL DEFAULT '';
