-- Users' own connectors (MCP servers). The operator's come from the configuration and are
-- not stored. `settings` is JSON text ({command, args, url, description}); `secrets` the
-- sealed JSON of the environment and headers (AES-256-GCM, see core::mcp::SecretSealer).
CREATE TABLE mcp_servers (
    user_id     BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    transport   TEXT NOT NULL CHECK (transport IN ('stdio', 'sse', 'streamable-http')),
    settings    TEXT NOT NULL,
    secrets     TEXT NOT NULL,
    enabled     BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, name)
);
