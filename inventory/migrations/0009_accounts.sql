-- Account management: a disabled account cannot log in and its tokens stop working; the last
-- login is shown to admins; a session token's last use drives the UI's idle timeout.
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN last_login_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER NOT NULL DEFAULT 0;
