-- /readyz commits a small write here (at most every few seconds) to learn whether the data
-- directory still accepts writes: a full disk must make Slate not-ready, not silently lossy.
CREATE TABLE write_probe (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	at INTEGER NOT NULL
);
