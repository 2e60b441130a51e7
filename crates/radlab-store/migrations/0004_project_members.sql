-- Who takes part in a project, and as what: 'owner', 'annotator' or 'reviewer' (a user may
-- hold several roles in one project).

CREATE TABLE project_members (
    project_id TEXT NOT NULL REFERENCES projects (project_id),
    user_id    TEXT NOT NULL REFERENCES users (user_id),
    role       TEXT NOT NULL,
    added_at   TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id, role)
);
CREATE INDEX project_members_user ON project_members (user_id);
