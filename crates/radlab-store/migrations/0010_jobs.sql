-- Long jobs (imports, label exports, fusion) queued in the database, so that any of several
-- `radlab serve` processes on one catalog may run them, each exactly once.

CREATE TABLE jobs (
    job_id           TEXT PRIMARY KEY,
    -- 'import', 'export_labels' or 'fuse'
    kind             TEXT NOT NULL,
    -- '' when the job belongs to no project
    project_id       TEXT NOT NULL,
    -- the job's parameters, a JSON object
    params           TEXT NOT NULL,
    -- 'queued', 'running', 'done', 'failed' or 'cancelled'
    state            TEXT NOT NULL,
    -- 1 once someone asked a running job to stop (its worker stops at its next progress)
    cancel_requested BIGINT NOT NULL,
    done             BIGINT NOT NULL,
    total            BIGINT NOT NULL,
    message          TEXT NOT NULL,
    -- the result, a JSON object ('' until done)
    result           TEXT NOT NULL,
    -- the content hash of a result file in the blob store, or ''
    result_blob      TEXT NOT NULL,
    created_by       TEXT NOT NULL REFERENCES users (user_id),
    -- times as fixed-width UTC text (YYYY-MM-DDTHH:MM:SS.ffffffZ), so text order is time
    -- order; '' when not yet
    created_at       TEXT NOT NULL,
    started_at       TEXT NOT NULL,
    finished_at      TEXT NOT NULL,
    heartbeat_at     TEXT NOT NULL,
    -- the worker running (or that ran) the job
    worker           TEXT NOT NULL,
    -- how many times a worker took it (more than 1 only after a worker died)
    attempts         BIGINT NOT NULL
);
-- The queue in order (and the few running jobs, by state).
CREATE INDEX jobs_queue ON jobs (state, created_at, job_id);
-- A user's jobs, newest first.
CREATE INDEX jobs_creator ON jobs (created_by, created_at);
