-- Expected boots: a per-boot agent token is handed out only for a network boot Slate itself
-- started (a BMC power-on, a reboot task it queued) or a technician announced, within a
-- window. One row per machine; issuing a token consumes it.
CREATE TABLE boot_expectations (
    machine_id TEXT PRIMARY KEY REFERENCES machines(id) ON DELETE CASCADE,
    armed_at   INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT ''
);
-- A boot token is bound to the address that fetched the script (bound_addr), must be used
-- within a short activation window (expires_at until activated_at is set), and then lives
-- until created_at + lifetime_s. Node tokens are unbound and active from their issue.
ALTER TABLE agent_tokens ADD COLUMN bound_addr TEXT NOT NULL DEFAULT '';
ALTER TABLE agent_tokens ADD COLUMN activated_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE agent_tokens ADD COLUMN lifetime_s INTEGER NOT NULL DEFAULT 0;
-- Tokens issued before this migration were active from their issue, as before.
UPDATE agent_tokens SET activated_at = created_at;
