-- Password lockout: consecutive failed logins per account, and when the account was locked
-- (0: not locked). Stored here, not in memory, so a restart does not unlock an account an
-- attacker was guessing; only an admin unlocks it.
ALTER TABLE users ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_at INTEGER NOT NULL DEFAULT 0;
