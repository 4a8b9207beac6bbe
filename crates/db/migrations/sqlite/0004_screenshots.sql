-- Browser screenshots are files of their session (source 'screenshot'). SQLite cannot
-- change a CHECK, so `files` is rebuilt with the same columns and data and 0003's indexes,
-- inside the migration's transaction. Safe only while no table, view or trigger refers
-- to `files` (none does); one that does must be rebuilt with it.
CREATE TABLE files_new (
    id            BLOB PRIMARY KEY NOT NULL,
    user_id       BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Not a foreign key: deleting a session moves its files' keys to blob_garbage first.
    session_id    BLOB,
    filename      TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL CHECK (size >= 0),
    sha256        TEXT NOT NULL,
    storage_key   TEXT NOT NULL UNIQUE,
    source        TEXT NOT NULL CHECK (source IN ('upload', 'agent', 'screenshot')),
    sandbox_path  TEXT,
    created_at    BIGINT NOT NULL
);
INSERT INTO files_new (id, user_id, session_id, filename, content_type, size, sha256,
                       storage_key, source, sandbox_path, created_at)
SELECT id, user_id, session_id, filename, content_type, size, sha256,
       storage_key, source, sandbox_path, created_at
FROM files;
DROP TABLE files;
ALTER TABLE files_new RENAME TO files;
CREATE INDEX files_user ON files (user_id);
CREATE INDEX files_session ON files (session_id, created_at);
-- One record per sandbox path and session: a file the agent rewrites replaces its copy.
CREATE UNIQUE INDEX files_session_path ON files (session_id, sandbox_path)
    WHERE sandbox_path IS NOT NULL;
