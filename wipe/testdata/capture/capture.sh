#!/usr/bin/env bash
# Re-captures what nvme-cli, hdparm and sg3_utils hand to the kernel for each sanitization
# command Slate builds (wipe/testdata/*.capture; the Go tests compare Slate's bytes with them).
# No drive is touched: ioctlcap.so (LD_PRELOAD) records each NVMe admin / SG_IO ioctl and answers
# "success" itself, so the tools run against a scratch loop device. Needs root, gcc, nvme-cli,
# hdparm, sg3-utils. Run: bash wipe/testdata/capture/capture.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(dirname "$here")
tmp=$(mktemp -d)
gcc -shared -fPIC -O1 -o "$tmp/ioctlcap.so" "$here/ioctlcap.c" -ldl
truncate -s 64M "$tmp/disk.img"
dev=$(losetup -f --show "$tmp/disk.img")
trap 'losetup -d "$dev"; rm -rf "$tmp"' EXIT
head -c 4 /dev/zero >"$tmp/pattern"
Y=--yes-i-know-what-i-am-doing
versions=$(dpkg-query -W -f='${Package} ${Version}, ' nvme-cli hdparm sg3-utils)
cap() { # cap NAME command...
  local name=$1; shift
  rm -f "$tmp/o"
  { echo "# $(echo "$*" | sed "s#$dev#DEV#g; s#$tmp/#TMP/#g")"; echo "# $versions"; } >"$out/$name.capture"
  CAPTURE_OUT="$tmp/o" LD_PRELOAD="$tmp/ioctlcap.so" "$@" >/dev/null 2>&1 || true
  cat "$tmp/o" >>"$out/$name.capture"
}
cap nvme-id-ctrl nvme id-ctrl "$dev"
cap nvme-id-ns nvme id-ns "$dev" -n 1
cap nvme-sanitize-crypto nvme sanitize "$dev" --sanact=4
cap nvme-sanitize-block nvme sanitize "$dev" --sanact=2
cap nvme-sanitize-overwrite nvme sanitize "$dev" --sanact=3 --ovrpat=0
cap nvme-sanitize-log nvme sanitize-log "$dev"
cap nvme-format-ses1 nvme format "$dev" --ses=1 --force
cap nvme-format-ses2 nvme format "$dev" --ses=2 --force
cap ata-identify hdparm -I "$dev"
cap ata-security-set-pass hdparm --user-master u --security-set-pass slate "$dev"
cap ata-security-erase-enhanced hdparm --user-master u --security-erase-enhanced slate "$dev"
cap ata-security-erase hdparm --user-master u --security-erase slate "$dev"
cap ata-security-disable hdparm --user-master u --security-disable slate "$dev"
cap ata-sanitize-crypto hdparm $Y --sanitize-crypto-scramble "$dev"
cap ata-sanitize-block hdparm $Y --sanitize-block-erase "$dev"
cap ata-sanitize-overwrite hdparm $Y --sanitize-overwrite hex:00000000 "$dev"
cap ata-sanitize-status hdparm --sanitize-status "$dev"
cap scsi-sanitize-block timeout 5 sg_sanitize --block --quick --early "$dev"
cap scsi-sanitize-crypto timeout 5 sg_sanitize --crypto --quick --early "$dev"
cap scsi-sanitize-overwrite timeout 5 sg_sanitize --overwrite --pattern="$tmp/pattern" --quick --early "$dev"
cap scsi-rsoc-overwrite sg_opcodes --opcode=0x48,1 "$dev"
cap scsi-rsoc-block sg_opcodes --opcode=0x48,2 "$dev"
cap scsi-rsoc-crypto sg_opcodes --opcode=0x48,3 "$dev"
echo "captures written to $out"
