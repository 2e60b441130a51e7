-- Accounts, browser sessions and API tokens. Secrets are never stored: passwords as
-- argon2id PHC strings, session and API tokens as BLAKE3 hashes of the random token.

CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    -- 'admin' or 'user'
    site_role     TEXT NOT NULL,
    disabled      BIGINT NOT NULL,
    created_at    TEXT NOT NULL
);

CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (user_id),
    csrf_token  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    -- seconds since the Unix epoch
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    token_hash   TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (user_id),
    name         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    revoked      BIGINT NOT NULL
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);
