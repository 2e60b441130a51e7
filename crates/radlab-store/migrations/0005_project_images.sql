-- The images of a project: catalogued instances, each with the id labels use (the
-- VinDr-CXR name, md5 of the SOP Instance UID), its split and its state.

CREATE TABLE project_images (
    project_id       TEXT NOT NULL REFERENCES projects (project_id),
    sop_instance_uid TEXT NOT NULL REFERENCES instances (sop_instance_uid),
    image_id         TEXT NOT NULL,
    -- 'train', 'test' or 'unassigned'
    split            TEXT NOT NULL,
    -- 'waiting', 'in_reading', 'in_review', 'done' or 'archived'
    state            TEXT NOT NULL,
    added_at         TEXT NOT NULL,
    PRIMARY KEY (project_id, sop_instance_uid)
);
CREATE UNIQUE INDEX project_images_image ON project_images (project_id, image_id);
CREATE INDEX project_images_split ON project_images (project_id, split);
