-- The machine list of a plant floor: sorted and paged in SQL over 10,000 machines. Each sort
-- key has an index ending in name (the tie-break), so ORDER BY … LIMIT walks an index instead
-- of sorting the table for every page.
CREATE INDEX machines_state_name ON machines(state, name);
CREATE INDEX machines_desired_name ON machines(desired_release, name);
CREATE INDEX machines_updated_name ON machines(updated_at, name);
CREATE INDEX machines_ip_name ON machines(json_extract(labels, '$.ip'), name);

-- A technician's saved filters of the machine list (per user; query is the list's URL query).
CREATE TABLE saved_filters (
    username   TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    query      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (username, name)
);
