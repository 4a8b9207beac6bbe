-- Accounts, tokens, one-time codes and subscriptions (SQLite).
CREATE TABLE users (
    id             BLOB PRIMARY KEY NOT NULL,
    email          TEXT NOT NULL UNIQUE,
    fullname       TEXT NOT NULL,
    password_hash  TEXT,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'user')),
    is_active      BOOLEAN NOT NULL DEFAULT 1,
    token_version  BIGINT NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    last_login_at  TEXT
);
CREATE INDEX users_created_at ON users (created_at DESC);

-- Claimed once, by the first account ever created: that account (unless it was given a
-- role explicitly) becomes admin. A primary key makes the claim race-free on both backends.
CREATE TABLE first_account (
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    user_id    BLOB NOT NULL
);

-- One row per login; every refresh token rotated from it belongs to it. Revoking the family
-- (logout, reuse detected, password change…) kills all its tokens at once, and rotation locks
-- this row so a rotation can never slip a live token past a revocation.
CREATE TABLE refresh_families (
    id            BLOB PRIMARY KEY NOT NULL,
    user_id       BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT NOT NULL,
    revoked_at    TEXT,
    -- The user's token version when the family last got a token: a family whose version
    -- is behind the user's (logout-all, password change or reset, deactivation) is dead.
    token_version BIGINT NOT NULL
);
CREATE INDEX refresh_families_user ON refresh_families (user_id);

CREATE TABLE refresh_tokens (
    id          BLOB PRIMARY KEY NOT NULL,
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   BLOB NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    rotated_at  TEXT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

CREATE TABLE verification_codes (
    id           BLOB PRIMARY KEY NOT NULL,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose      TEXT NOT NULL,
    code_hash    TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    consumed_at  TEXT
);
CREATE INDEX verification_codes_user ON verification_codes (user_id, purpose);
CREATE INDEX verification_codes_expires ON verification_codes (expires_at);

CREATE TABLE subscriptions (
    id                        BLOB PRIMARY KEY NOT NULL,
    user_id                   BLOB NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    plan                      TEXT NOT NULL,
    status                    TEXT NOT NULL,
    monthly_agent_runs        BIGINT NOT NULL DEFAULT 0,
    monthly_agent_runs_limit  BIGINT NOT NULL,
    current_period_start      TEXT NOT NULL,
    current_period_end        TEXT NOT NULL,
    cancel_at_period_end      BOOLEAN NOT NULL DEFAULT 0,
    is_trial                  BOOLEAN NOT NULL DEFAULT 0,
    trial_end                 TEXT,
    trial_used                BOOLEAN NOT NULL DEFAULT 0,
    stripe_customer_id        TEXT UNIQUE,
    stripe_subscription_id    TEXT UNIQUE,
    created_at                TEXT NOT NULL,
    updated_at                TEXT NOT NULL
);
