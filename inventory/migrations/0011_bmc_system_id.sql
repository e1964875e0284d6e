-- The computer system a machine is behind its BMC: a blade chassis or multi-node server lists
-- several Systems behind one Redfish service, and every later BMC call of the machine (power,
-- boot, BIOS, firmware, inventory) must reach this one, not the first. '' = the service's
-- only (or vendor-picked) system, as before.
ALTER TABLE bmcs ADD COLUMN system_id TEXT NOT NULL DEFAULT '';
