-- Per-boot agent tokens: handed to the deploy environment on its kernel command line, bound
-- to one machine, expiring. Only their SHA-256 is stored.
CREATE TABLE agent_tokens (
    token_hash TEXT PRIMARY KEY,
    machine_id TEXT NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX agent_tokens_machine ON agent_tokens(machine_id);
