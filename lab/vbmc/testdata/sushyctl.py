#!/usr/bin/python3
"""One sushy operation against a Redfish service, for Slate's lab tests.

Usage: sushyctl.py URL USER PASSWORD OP [ARGS...]
  power                      print the system's power state
  reset TYPE                 ComputerSystem.Reset (On, ForceOff, ...)
  boot TARGET ENABLED        set the boot override (e.g. UefiHttp Once)
  bios-get                   print the BIOS attributes as JSON
  bios-set NAME=VALUE...     stage BIOS attributes (applied at next reset)
  update IMAGE_URI           UpdateService.SimpleUpdate, wait for the task, print its state
Exits non-zero (with the sushy error) when the operation fails.
"""
import json
import sys

import sushy
from sushy.resources.updateservice import constants as upd


def main():
    url, user, password, op, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
    conn = sushy.Sushy(url + "/redfish/v1", username=user, password=password)
    system = conn.get_system("/redfish/v1/Systems/1")
    if op == "power":
        print(system.power_state.value)
    elif op == "reset":
        system.reset_system(sushy.ResetType(args[0]))
    elif op == "boot":
        system.set_system_boot_options(
            target=sushy.BootSource(args[0]),
            enabled=sushy.BootSourceOverrideEnabled(args[1]))
        system.refresh()
        print(system.boot.target.value, system.boot.enabled.value)
    elif op == "bios-get":
        print(json.dumps(system.bios.attributes, sort_keys=True))
    elif op == "bios-set":
        system.bios.set_attributes(dict(a.split("=", 1) for a in args))
        system.bios.refresh()
        print(json.dumps(system.bios.pending_attributes, sort_keys=True))
    elif op == "update":
        svc = conn.get_update_service()
        monitor = svc.simple_update(args[0], transfer_protocol=upd.UpdateTransferProtocolType.HTTP)
        monitor.wait(60)
        task = monitor.get_task()
        print(task.task_state.value)
        if task.task_state.value != "Completed":
            sys.exit("task ended " + task.task_state.value)
    else:
        sys.exit("unknown operation " + op)


if __name__ == "__main__":
    main()
