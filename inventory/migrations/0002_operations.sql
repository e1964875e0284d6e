-- What machines report and what Slate runs on them: facts, tasks, leases, releases.
CREATE TABLE facts (
    machine_id TEXT NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    doc        TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (machine_id, version)
);

CREATE TABLE tasks (
    id          TEXT PRIMARY KEY,
    machine_id  TEXT NOT NULL REFERENCES machines(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    params      TEXT NOT NULL DEFAULT '{}',
    state       TEXT NOT NULL CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    progress    REAL NOT NULL DEFAULT 0,
    message     TEXT NOT NULL DEFAULT '',
    result      TEXT NOT NULL DEFAULT '',
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    started_at  INTEGER NOT NULL DEFAULT 0,
    finished_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tasks_machine ON tasks(machine_id, created_at);
CREATE INDEX tasks_state ON tasks(state);

CREATE TABLE task_logs (
    task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    line    TEXT NOT NULL,
    PRIMARY KEY (task_id, seq)
);

CREATE TABLE leases (
    mac        TEXT PRIMARY KEY,
    ip         TEXT NOT NULL,
    iface      TEXT NOT NULL DEFAULT '',
    hostname   TEXT NOT NULL DEFAULT '',
    state      TEXT NOT NULL DEFAULT 'offered',
    expires_at INTEGER NOT NULL,
    relay_info TEXT NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX leases_ip ON leases(iface, ip);

CREATE TABLE releases (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    version          TEXT NOT NULL,
    kind             TEXT NOT NULL DEFAULT 'bootc',
    image_ref        TEXT NOT NULL DEFAULT '',
    image_digest     TEXT NOT NULL DEFAULT '',
    bios_profile     TEXT NOT NULL DEFAULT '{}',
    firmware_baseline TEXT NOT NULL DEFAULT '{}',
    kernel_args      TEXT NOT NULL DEFAULT '',
    notes            TEXT NOT NULL DEFAULT '',
    state            TEXT NOT NULL DEFAULT 'draft',
    created_by       TEXT NOT NULL DEFAULT '',
    approved_by      TEXT NOT NULL DEFAULT '',
    created_at       INTEGER NOT NULL,
    UNIQUE (name, version)
);

ALTER TABLE machines ADD COLUMN desired_release TEXT NOT NULL DEFAULT '';
ALTER TABLE machines ADD COLUMN booted_release TEXT NOT NULL DEFAULT '';
