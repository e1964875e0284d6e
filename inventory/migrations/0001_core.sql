-- Core system of record: machines, their identities, BMCs, users, tokens and the audit log.
CREATE TABLE machines (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    system_uuid   TEXT NOT NULL DEFAULT '',
    serial        TEXT NOT NULL DEFAULT '',
    vendor        TEXT NOT NULL DEFAULT '',
    model         TEXT NOT NULL DEFAULT '',
    arch          TEXT NOT NULL DEFAULT '',
    firmware_mode TEXT NOT NULL DEFAULT '',
    site          TEXT NOT NULL DEFAULT '',
    segment       TEXT NOT NULL DEFAULT '',
    labels        TEXT NOT NULL DEFAULT '{}',
    state         TEXT NOT NULL,
    failed_reason TEXT NOT NULL DEFAULT '',
    failed_task   TEXT NOT NULL DEFAULT '',
    failed_from   TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX machines_serial ON machines(serial) WHERE serial <> '';
CREATE INDEX machines_state ON machines(state);

CREATE TABLE machine_macs (
    mac        TEXT PRIMARY KEY,
    machine_id TEXT NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    position   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX machine_macs_machine ON machine_macs(machine_id);

CREATE TABLE bmcs (
    machine_id      TEXT PRIMARY KEY REFERENCES machines(id) ON DELETE CASCADE,
    address         TEXT NOT NULL,
    vendor_profile  TEXT NOT NULL DEFAULT 'generic',
    username        TEXT NOT NULL DEFAULT '',
    password_enc    BLOB,
    tls_fingerprint TEXT NOT NULL DEFAULT '',
    updated_at      INTEGER NOT NULL
);

CREATE TABLE users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'operator', 'auditor')),
    full_name     TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
);

-- Only the SHA-256 of a token is kept: a stolen database gives no usable token.
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    username   TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    kind       TEXT NOT NULL DEFAULT 'api',
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE audit_events (
    seq       INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    details   TEXT NOT NULL,
    outcome   TEXT NOT NULL DEFAULT 'ok',
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_subject ON audit_events(subject);
-- Append-only: the database itself refuses edits and deletions, so no code path can.
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
