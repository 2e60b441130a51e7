-- Triage verdicts: one per image of a project, from the latest run of a model ('rules' for
-- the rules on metadata), and an administrator's overrule, which a new run keeps.
CREATE TABLE triage_verdicts (
    project_id    TEXT NOT NULL REFERENCES projects (project_id),
    image_id      TEXT NOT NULL,
    sop_instance_uid TEXT NOT NULL,
    -- what judged: 'rules', or a network's name and version
    model         TEXT NOT NULL,
    -- 1 valid, 0 not
    valid         BIGINT NOT NULL,
    -- the network's class ('' from the rules alone)
    class         TEXT NOT NULL,
    -- the network's probability of that class, shortest round-trip text ('' from the rules)
    probability   TEXT NOT NULL,
    -- JSON array of {"code", "reason"}
    findings      TEXT NOT NULL,
    judged_at     TEXT NOT NULL,
    -- -1 none, 0 overruled to invalid, 1 overruled to valid
    overruled     BIGINT NOT NULL,
    overruled_by  TEXT NOT NULL,
    overruled_at  TEXT NOT NULL,
    PRIMARY KEY (project_id, image_id)
);
