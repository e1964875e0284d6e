-- Certificates of sanitization (one per drive) and decommission reports (one per wipe), as
-- signed files. Immutable: the database refuses edits and deletions.
CREATE TABLE certificates (
    id           TEXT PRIMARY KEY,
    machine_id   TEXT NOT NULL REFERENCES machines(id),
    task_id      TEXT NOT NULL,
    drive_serial TEXT NOT NULL DEFAULT '',
    drive_path   TEXT NOT NULL DEFAULT '',
    key_id       TEXT NOT NULL,
    signature    TEXT NOT NULL,
    file         BLOB NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX certificates_machine ON certificates(machine_id);
CREATE TABLE decommission_reports (
    id          TEXT PRIMARY KEY,
    machine_id  TEXT NOT NULL REFERENCES machines(id),
    task_id     TEXT NOT NULL UNIQUE,
    plan_digest TEXT NOT NULL,
    complete    INTEGER NOT NULL,
    file        BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE TRIGGER certificates_no_update BEFORE UPDATE ON certificates
BEGIN SELECT RAISE(ABORT, 'certificates are immutable'); END;
CREATE TRIGGER certificates_no_delete BEFORE DELETE ON certificates
BEGIN SELECT RAISE(ABORT, 'certificates are immutable'); END;
CREATE TRIGGER reports_no_update BEFORE UPDATE ON decommission_reports
BEGIN SELECT RAISE(ABORT, 'decommission reports are immutable'); END;
CREATE TRIGGER reports_no_delete BEFORE DELETE ON decommission_reports
BEGIN SELECT RAISE(ABORT, 'decommission reports are immutable'); END;
