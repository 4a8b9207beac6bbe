-- Files, the blob garbage list, processed payment events, and the subscription's period
-- version (sqlite). Times are integer Unix milliseconds.
CREATE TABLE files (
    id            BLOB PRIMARY KEY NOT NULL,
    user_id       BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Not a foreign key: deleting a session moves its files' keys to blob_garbage first.
    session_id    BLOB,
    filename      TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL CHECK (size >= 0),
    sha256        TEXT NOT NULL,
    storage_key   TEXT NOT NULL UNIQUE,
    source        TEXT NOT NULL CHECK (source IN ('upload', 'agent')),
    sandbox_path  TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX files_user ON files (user_id);
CREATE INDEX files_session ON files (session_id, created_at);
-- One record per sandbox path and session: a file the agent rewrites replaces its copy.
CREATE UNIQUE INDEX files_session_path ON files (session_id, sandbox_path)
    WHERE sandbox_path IS NOT NULL;

-- Keys of blobs whose records are gone; removed from the blob store after commit.
CREATE TABLE blob_garbage (
    storage_key  TEXT PRIMARY KEY NOT NULL,
    created_at   BIGINT NOT NULL
);

-- Each payment provider event is applied once: its id is stored in the transaction that
-- applies it.
CREATE TABLE payment_events (
    id           TEXT PRIMARY KEY NOT NULL,
    event_type   TEXT NOT NULL,
    received_at  BIGINT NOT NULL
);

-- Moves on with every new period, so a run metered against an old period is refused.
ALTER TABLE subscriptions ADD COLUMN period_version BIGINT NOT NULL DEFAULT 0;
