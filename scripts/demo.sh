#!/usr/bin/env bash
# `make demo`: the QEMU lab with Slate in it — `make` has already installed the packages and
# built bin/slate (and the deploy environment). This starts `slate lab up --vms 2`, prints the
# UI address and the admin password, and waits; Ctrl-C (or `make demo-down` from another
# terminal) removes the lab again.
#
# Environment: SLATE (binary, default bin/slate), SLATE_LAB_VMS (2), SLATE_LAB_FIRMWARE (mixed),
# SLATE_LAB_STATE_DIR (/var/lib/slate-lab), SLATE_LAB_UI (127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
SLATE=${SLATE:-bin/slate}
STATE_DIR=${SLATE_LAB_STATE_DIR:-/var/lib/slate-lab}
VMS=${SLATE_LAB_VMS:-2}
FIRMWARE=${SLATE_LAB_FIRMWARE:-mixed}
UI=${SLATE_LAB_UI:-127.0.0.1:8080}

lab_down() { "$SLATE" lab down --state-dir "$STATE_DIR"; }

if [ "$(id -u)" != 0 ]; then
  echo "the demo needs root (network namespace, taps, QEMU): sudo make demo" >&2
  exit 1
fi
if [ ! -x "$SLATE" ]; then
  echo "$SLATE is missing: run make build" >&2
  exit 1
fi

if [ "${1:-}" = down ]; then
  lab_down
  exit 0
fi

if [ -e "$STATE_DIR/lab.json" ]; then
  echo "a lab from an earlier demo is still there: removing it first"
  lab_down || true
fi

# The deploy environment (Debian kernel + initramfs with slate-agent) is built by `make build`
# once its target exists; hand it to the Slate running in the lab.
if [ -s assets/deployenv/initrd.gz ] && [ -s assets/deployenv/vmlinuz ]; then
  mkdir -p "$STATE_DIR/slate/deployenv"
  for f in vmlinuz initrd.gz SHA256SUMS KERNEL; do
    [ -e "assets/deployenv/$f" ] && cp "assets/deployenv/$f" "$STATE_DIR/slate/deployenv/$f"
  done
  echo "deploy environment: assets/deployenv → $STATE_DIR/slate/deployenv"
else
  echo "deploy environment: not built (assets/deployenv is empty); VMs will netboot to iPXE only"
fi

stopping=0
cleanup() {
  [ "$stopping" = 1 ] && return
  stopping=1
  echo
  echo "stopping the demo: removing the lab…"
  lab_down || true
  exit 0
}
trap cleanup INT TERM

# The VMs stay off: Slate powers a machine on itself once you enrol it by its BMC address
# (a machine that is already running is left alone, as on a plant; see docs/redfish.md).
"$SLATE" lab up --vms "$VMS" --firmware "$FIRMWARE" --state-dir "$STATE_DIR" --ui "$UI" --power-on=false

pwfile="$STATE_DIR/slate/initial-admin-password"
for _ in $(seq 1 60); do
  [ -s "$pwfile" ] && break
  sleep 0.5
done
echo
echo "================================================================"
echo " Slate UI:        http://$UI"
if [ -s "$pwfile" ]; then
  echo " Login:           admin / $(head -n1 "$pwfile")"
else
  echo " Login:           admin / (no $pwfile yet: see $STATE_DIR/slate.log)"
fi
echo " Lab status:      $SLATE lab status --state-dir $STATE_DIR   (the VMs' BMC addresses)"
echo " Try next:        enrol a VM by its BMC address (UI: Enroll; CLI: slate machine enroll --bmc-address …):"
echo "                  Slate powers it on, inspects it and shows its hardware"
echo " Stop:            Ctrl-C here, or: make demo-down"
echo "================================================================"

# Wait until interrupted, or until someone else removed the lab (make demo-down).
while [ -e "$STATE_DIR/lab.json" ]; do
  sleep 2 &
  wait $! || true
done
echo "the lab was removed"
