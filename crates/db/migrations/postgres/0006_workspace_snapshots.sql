-- Workspaces that follow the session. `sandbox_instance` names the instance whose sandbox
-- holds the session's workspace (its worker id): runs of the session are claimed there
-- first. The latest snapshot of each session's workspace is one row; replacing it moves the
-- old archive's key to blob_garbage in the same transaction, and deleting the session does
-- the same (see delete_session).
ALTER TABLE sessions ADD COLUMN sandbox_instance TEXT;

CREATE TABLE workspace_snapshots (
    session_id      UUID PRIMARY KEY NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    version         BIGINT NOT NULL CHECK (version >= 1),
    storage_key     TEXT NOT NULL,
    size            BIGINT NOT NULL CHECK (size >= 0),
    sha256          TEXT NOT NULL,
    files           BIGINT NOT NULL,
    bytes           BIGINT NOT NULL,
    left_out_files  BIGINT NOT NULL,
    left_out_bytes  BIGINT NOT NULL,
    instance        TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);
