-- The catalog: patient / study / series / instance, the quarantine list and import runs.
-- Portable SQL: the same file runs on SQLite and PostgreSQL. Integers are BIGINT so that
-- both drivers decode them as i64; times are RFC 3339 text.

CREATE TABLE patients (
    patient_key        TEXT PRIMARY KEY,
    patient_id         TEXT NOT NULL,
    patient_name       TEXT NOT NULL,
    patient_sex        TEXT NOT NULL,
    patient_birth_date TEXT NOT NULL
);

CREATE TABLE studies (
    study_instance_uid TEXT PRIMARY KEY,
    patient_key        TEXT NOT NULL REFERENCES patients (patient_key),
    study_date         TEXT NOT NULL,
    study_time         TEXT NOT NULL,
    accession_number   TEXT NOT NULL,
    study_description  TEXT NOT NULL
);
CREATE INDEX studies_patient ON studies (patient_key);

CREATE TABLE series (
    series_instance_uid TEXT PRIMARY KEY,
    study_instance_uid  TEXT NOT NULL REFERENCES studies (study_instance_uid),
    modality            TEXT NOT NULL,
    body_part_examined  TEXT NOT NULL,
    series_number       BIGINT,
    series_description  TEXT NOT NULL
);
CREATE INDEX series_study ON series (study_instance_uid);

CREATE TABLE instances (
    sop_instance_uid     TEXT PRIMARY KEY,
    series_instance_uid  TEXT NOT NULL REFERENCES series (series_instance_uid),
    sop_class_uid        TEXT NOT NULL,
    instance_number      BIGINT,
    -- hash of the file as it was given (a PNG for wrapped pictures) and of the stored object
    content_hash         TEXT NOT NULL,
    blob_hash            TEXT NOT NULL,
    -- hash of the decoded stored values of all frames: equal for any lossless re-encoding
    pixel_hash           TEXT NOT NULL,
    size_bytes           BIGINT NOT NULL,
    transfer_syntax_uid  TEXT NOT NULL,
    modality             TEXT NOT NULL,
    body_part_examined   TEXT NOT NULL,
    view_position        TEXT NOT NULL,
    laterality           TEXT NOT NULL,
    photometric          TEXT NOT NULL,
    rows                 BIGINT NOT NULL,
    columns              BIGINT NOT NULL,
    frames               BIGINT NOT NULL,
    samples_per_pixel    BIGINT NOT NULL,
    bits_allocated       BIGINT NOT NULL,
    bits_stored          BIGINT NOT NULL,
    pixel_representation BIGINT NOT NULL,
    -- "row\column" in mm (Pixel Spacing, else Imager Pixel Spacing), '' when unknown.
    -- Text, as DS is: no float columns (sqlx's Any driver mistypes NULL doubles on PostgreSQL).
    pixel_spacing        TEXT NOT NULL,
    manufacturer         TEXT NOT NULL,
    model_name           TEXT NOT NULL,
    burned_in_annotation TEXT,
    source_kind          TEXT NOT NULL,
    source_path          TEXT NOT NULL,
    source_name          TEXT NOT NULL,
    import_id            TEXT NOT NULL,
    imported_at          TEXT NOT NULL
);
CREATE UNIQUE INDEX instances_content ON instances (content_hash);
CREATE INDEX instances_series ON instances (series_instance_uid);

-- Every file that brought an instance: the first one, and later copies or re-encodings of
-- the same instance (same SOP Instance UID and the same decoded pixels).
CREATE TABLE instance_sources (
    content_hash     TEXT NOT NULL,
    source_path      TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL REFERENCES instances (sop_instance_uid),
    transfer_syntax_uid TEXT NOT NULL,
    size_bytes       BIGINT NOT NULL,
    import_id        TEXT NOT NULL,
    recorded_at      TEXT NOT NULL,
    PRIMARY KEY (content_hash, source_path)
);
CREATE INDEX instance_sources_instance ON instance_sources (sop_instance_uid);

-- Files that could not be used, with why. One row per distinct (path, content).
CREATE TABLE quarantine (
    quarantine_id TEXT PRIMARY KEY,
    source_path   TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    reason_code   TEXT NOT NULL,
    reason        TEXT NOT NULL,
    import_id     TEXT NOT NULL,
    recorded_at   TEXT NOT NULL
);
CREATE INDEX quarantine_content ON quarantine (content_hash);

CREATE TABLE imports (
    import_id       TEXT PRIMARY KEY,
    started_at      TEXT NOT NULL,
    finished_at     TEXT,
    paths           TEXT NOT NULL,
    files_seen      BIGINT NOT NULL,
    imported        BIGINT NOT NULL,
    already_present BIGINT NOT NULL,
    quarantined     BIGINT NOT NULL
);
