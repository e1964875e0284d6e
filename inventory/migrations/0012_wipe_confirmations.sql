-- Who performs a wipe (NIST SP 800-88 Appendix G: name, title, organisation, location, phone),
-- given when the technician confirms the plan. Kept beside the wipe task, not in its params:
-- the agent decodes those strictly and has no use for a person. The certificates of that wipe
-- print it; wipes confirmed before this table have no row and take the configured person.
CREATE TABLE wipe_confirmations (
    task_id TEXT PRIMARY KEY REFERENCES tasks(id) ON DELETE CASCADE,
    person TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
