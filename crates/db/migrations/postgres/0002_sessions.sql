-- Sessions, their event log, the run queue, the agent's memory and job locks (PostgreSQL).
-- Every time column is integer Unix milliseconds, so SQL compares them numerically. JSON
-- is kept as text, as on SQLite: jsonb would refuse `\u0000`, which tool output may hold.
CREATE TABLE sessions (
    id                    UUID PRIMARY KEY,
    user_id               UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title                 TEXT,
    status                TEXT NOT NULL
        CHECK (status IN ('pending', 'running', 'waiting', 'completed', 'failed')),
    latest_message        TEXT,
    latest_message_at     BIGINT,
    unread_message_count  BIGINT NOT NULL DEFAULT 0,
    is_shared             BOOLEAN NOT NULL DEFAULT FALSE,
    -- The sequence number of the session's last event: appends take last_seq + 1 under
    -- the row's lock, so numbers are gap-free even under concurrent appends.
    last_seq              BIGINT NOT NULL DEFAULT 0,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX sessions_user_updated ON sessions (user_id, updated_at DESC, id DESC);
CREATE INDEX sessions_updated ON sessions (updated_at);

CREATE TABLE session_events (
    session_id  UUID NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    event       TEXT NOT NULL,
    data        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE TABLE runs (
    id                 UUID PRIMARY KEY,
    session_id         UUID NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    user_id            UUID NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('task', 'reply')),
    status             TEXT NOT NULL CHECK (status IN
        ('queued', 'running', 'waiting', 'completed', 'failed', 'cancelled', 'interrupted')),
    message            TEXT NOT NULL,
    attachments        TEXT NOT NULL,
    client_message_id  TEXT,
    attempts           INTEGER NOT NULL DEFAULT 0,
    cancel_requested   BOOLEAN NOT NULL DEFAULT FALSE,
    lease_owner        TEXT,
    lease_expires_at   BIGINT,
    created_at         BIGINT NOT NULL,
    started_at         BIGINT,
    finished_at        BIGINT
);
-- A client's retry of the same message finds the run it already started.
CREATE UNIQUE INDEX runs_client_message ON runs (session_id, client_message_id)
    WHERE client_message_id IS NOT NULL;
-- At most one queued or running run per session, enforced even under races.
CREATE UNIQUE INDEX runs_one_active ON runs (session_id) WHERE status IN ('queued', 'running');
CREATE INDEX runs_claim ON runs (status, created_at);
CREATE INDEX runs_session ON runs (session_id, created_at DESC);

CREATE TABLE agent_memory (
    session_id  UUID PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    memory      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Cluster-wide locks of background jobs: held by `holder` until `expires_at`.
CREATE TABLE job_locks (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
