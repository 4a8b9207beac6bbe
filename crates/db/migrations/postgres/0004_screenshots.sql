-- Browser screenshots are files of their session (source 'screenshot'): the source check
-- admits them. `files_source_check` is the name PostgreSQL gave 0003's inline CHECK.
-- One statement: one lock, one pass over the rows.
ALTER TABLE files
    DROP CONSTRAINT files_source_check,
    ADD CONSTRAINT files_source_check CHECK (source IN ('upload', 'agent', 'screenshot'));
