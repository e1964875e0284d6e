-- Identity an operator entered (at enrollment or by an edit) is not the agent's to change:
-- inspection that disagrees fails the machine instead of overwriting it. Machines enrolled
-- before this migration count as operator-entered when they were never inspected (the value
-- can only have come from a person or the BMC).
ALTER TABLE machines ADD COLUMN serial_by_operator INTEGER NOT NULL DEFAULT 0;
ALTER TABLE machines ADD COLUMN system_uuid_by_operator INTEGER NOT NULL DEFAULT 0;
UPDATE machines SET serial_by_operator = 1 WHERE serial != '' AND id NOT IN (SELECT machine_id FROM facts);
UPDATE machines SET system_uuid_by_operator = 1 WHERE system_uuid != '' AND id NOT IN (SELECT machine_id FROM facts);
-- A node token names the install task it was issued to: only a node whose install Slate ran
-- (and saw succeed) may report the release it booted.
ALTER TABLE agent_tokens ADD COLUMN task_id TEXT NOT NULL DEFAULT '';
