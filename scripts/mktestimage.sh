#!/bin/bash
# Builds a small bootable raw disk image for the lab: a release Slate can install and that
# reports itself once booted from the disk.
#
#   scripts/mktestimage.sh OUT.img NAME@VERSION
#
# Layout (GPT, 48 MiB):
#   p1 "ESP"           40 MiB FAT16, legacy-BIOS-bootable: syslinux for BIOS (gptmbr.bin in
#                      the MBR), systemd-boot as \EFI\BOOT\BOOTX64.EFI for UEFI; both load
#                      the Debian kernel of the deploy environment and initrd.img
#   p2 "slate-config"  1 MiB, empty: Slate's installer writes the node's record there
# initrd.img = the deploy environment's initramfs (kernel modules) + an overlay whose /init
# is a busybox script that execs `slate-agent node` (which loads drivers, brings the network
# up and reports /etc/slate/release.json = {"release": NAME@VERSION} to Slate).
# Everything is built in files (mtools, sfdisk, dd): no loop device, no mount.
set -euo pipefail
out=${1:?usage: mktestimage.sh OUT.img NAME@VERSION}
release=${2:?usage: mktestimage.sh OUT.img NAME@VERSION}
DEPLOYENV=${DEPLOYENV:-assets/deployenv}
AGENT=${AGENT:-bin/slate-agent}
SYSLINUX=${SYSLINUX:-/usr/lib/syslinux}
SDBOOT=${SDBOOT:-/usr/lib/systemd/boot/efi/systemd-bootx64.efi}
for f in "$DEPLOYENV/vmlinuz" "$DEPLOYENV/initrd.gz" "$AGENT" /bin/busybox "$SYSLINUX/mbr/gptmbr.bin" \
  "$SYSLINUX/modules/bios/ldlinux.c32" "$SDBOOT"; do
  [ -e "$f" ] || { echo "mktestimage: $f missing (make build; make deps installs syslinux, systemd-boot-efi, busybox-static)" >&2; exit 1; }
done
export MTOOLS_SKIP_CHECK=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The initramfs overlay: busybox init, the agent, the release the system carries.
root=$work/root
mkdir -p "$root/bin" "$root/usr/bin" "$root/etc/slate"
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
cp "$AGENT" "$root/usr/bin/slate-agent"
printf '{"release":"%s"}\n' "$release" >"$root/etc/slate/release.json"
cat >"$root/init" <<'EOF'
#!/bin/busybox sh
# The test image's init: a real system would start its services; this one only reports.
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev
echo "slate test image: $(/bin/busybox cat /etc/slate/release.json) booted from the local disk"
exec /usr/bin/slate-agent node -release-file /etc/slate/release.json
EOF
chmod 755 "$root/init"
(cd "$root" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | gzip -9n) >"$work/overlay.gz"
# The kernel unpacks concatenated archives in order; the overlay's /init replaces the agent's.
cat "$DEPLOYENV/initrd.gz" "$work/overlay.gz" >"$work/initrd.img"

# The ESP, built as a file and copied into the image at 1 MiB.
esp=$work/esp.img
mkfs.fat -C -F 16 -n SLATE "$esp" $((40 * 1024)) >/dev/null
mmd -i "$esp" ::/syslinux ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i "$esp" "$DEPLOYENV/vmlinuz" ::/vmlinuz
mcopy -i "$esp" "$work/initrd.img" ::/initrd.img
args="console=ttyS0,115200 panic=10"
printf 'DEFAULT node\nPROMPT 0\nTIMEOUT 0\nLABEL node\n  LINUX /vmlinuz\n  INITRD /initrd.img\n  APPEND %s\n' "$args" >"$work/syslinux.cfg"
mcopy -i "$esp" "$work/syslinux.cfg" ::/syslinux/syslinux.cfg
mcopy -i "$esp" "$SYSLINUX/modules/bios/ldlinux.c32" ::/syslinux/ldlinux.c32
syslinux --install --directory /syslinux "$esp"
mcopy -i "$esp" "$SDBOOT" ::/EFI/BOOT/BOOTX64.EFI
printf 'default slate.conf\ntimeout 0\n' >"$work/loader.conf"
printf 'title Slate test image %s\nlinux /vmlinuz\ninitrd /initrd.img\noptions %s\n' "$release" "$args" >"$work/slate.conf"
mcopy -i "$esp" "$work/loader.conf" ::/loader/loader.conf
mcopy -i "$esp" "$work/slate.conf" ::/loader/entries/slate.conf

img=$work/disk.img
truncate -s 48M "$img"
sfdisk --quiet "$img" <<'EOF'
label: gpt
start=2048, size=40MiB, type=uefi, name="ESP", attrs="LegacyBIOSBootable"
size=1MiB, type=linux, name="slate-config"
EOF
dd if="$esp" of="$img" bs=1M seek=1 conv=notrunc status=none
dd if="$SYSLINUX/mbr/gptmbr.bin" of="$img" bs=440 count=1 conv=notrunc status=none
mv "$img" "$out"
echo "mktestimage: $out ($release, $(($(stat -c %s "$out") / 1048576)) MiB)"
