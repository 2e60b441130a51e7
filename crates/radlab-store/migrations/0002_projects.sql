-- Projects and their annotations. Annotations are an append-only log: every change is a new
-- row (op 'add' or 'delete' of an annotation id); the current labels are derived from it.
-- Coordinates and scores are text in their shortest round-trip form (no float columns: the
-- sqlx Any driver mistypes NULL doubles on PostgreSQL, and text keeps every digit as given).

CREATE TABLE projects (
    project_id   TEXT PRIMARY KEY,
    label_schema TEXT NOT NULL,
    created_at   TEXT NOT NULL
);

CREATE TABLE annotation_log (
    project_id    TEXT NOT NULL REFERENCES projects (project_id),
    seq           BIGINT NOT NULL,
    op            TEXT NOT NULL,
    annotation_id TEXT NOT NULL,
    image_id      TEXT NOT NULL,
    -- 'reader' (one reader's own labels), 'consensus' (reviewed or fused), 'model'
    layer         TEXT NOT NULL,
    -- the reader (rad_id) of a reader layer; '' otherwise
    reader        TEXT NOT NULL,
    label         TEXT NOT NULL,
    -- '' for an image-level mark
    x_min         TEXT NOT NULL,
    y_min         TEXT NOT NULL,
    x_max         TEXT NOT NULL,
    y_max         TEXT NOT NULL,
    -- '' when none
    score         TEXT NOT NULL,
    -- who or what wrote the row (an account, or "import:<file name>")
    author        TEXT NOT NULL,
    recorded_at   TEXT NOT NULL,
    PRIMARY KEY (project_id, seq)
);
CREATE INDEX annotation_log_image ON annotation_log (project_id, image_id);
CREATE INDEX annotation_log_id ON annotation_log (project_id, annotation_id);
