#!/usr/bin/env bash
# Builds the deploy environment as a hybrid BIOS+UEFI bootable ISO (El Torito for CD/virtual
# media, MBR/GPT for a USB stick) from the deploy kernel and initrd, for machines whose segment
# cannot network-boot: a BMC inserts it as virtual media (see docs/netboot.md, "Booting from
# virtual media").
#
# The ISO is generic: it carries no Slate URL and no agent token. Its GRUB menu passes
# slate.media and a fixed-size placeholder that Slate overwrites, byte for byte, with
# "slate.url=<its public URL> <kernel_args>" while serving /boot/deploy/deploy.iso (pxe/iso.go).
# The agent then asks Slate for a per-boot token by its MAC, which Slate gives only to a boot it
# expects, as for a network boot. A token is never written into an image.
#
#   KERNEL            deploy kernel   (default $DEPLOYENV_OUT/vmlinuz)
#   INITRD            deploy initrd   (default $DEPLOYENV_OUT/initrd.gz)
#   DEPLOYISO_OUT     the ISO         (default $DEPLOYENV_OUT/deploy.iso; DEPLOYENV_OUT default assets/deployenv)
#   DEPLOYENV_INSTALL also copy the ISO here (e.g. /var/lib/slate/deployenv; default none)
#   SOURCE_DATE_EPOCH timestamps in the image (default: the kernel's mtime), for reproducibility
set -euo pipefail
cd "$(dirname "$0")/.."
DE=${DEPLOYENV_OUT:-assets/deployenv}
KERNEL=${KERNEL:-$DE/vmlinuz}
INITRD=${INITRD:-$DE/initrd.gz}
OUT=${DEPLOYISO_OUT:-$DE/deploy.iso}
for f in "$KERNEL" "$INITRD"; do
  [ -f "$f" ] || { echo "deploy-iso: $f not found: run make deploy-env first (or set KERNEL and INITRD)" >&2; exit 1; }
done
for t in grub-mkrescue xorriso mformat; do
  command -v "$t" >/dev/null || { echo "deploy-iso: $t not found: run make deps (Debian packages grub-common grub-pc-bin grub-efi-amd64-bin xorriso mtools)" >&2; exit 1; }
done
for d in /usr/lib/grub/i386-pc /usr/lib/grub/x86_64-efi; do
  [ -d "$d" ] || { echo "deploy-iso: $d missing: install grub-pc-bin and grub-efi-amd64-bin (make deps)" >&2; exit 1; }
done
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(stat -c %Y "$KERNEL")}

# The placeholder Slate patches: this exact prefix, padded with '_' to 512 bytes. Keep in step
# with pxe.ISOArgsMarker and pxe.ISOArgsLen.
MARKER='slate.iso.args=SLATE-PATCHES-THIS-'
LEN=512
pad=$(printf '%*s' $((LEN - ${#MARKER})) '' | tr ' ' '_')
ARGS="$MARKER$pad"

tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/boot/grub" "$tree/slate"
cp "$KERNEL" "$tree/slate/vmlinuz"
cp "$INITRD" "$tree/slate/initrd.gz"
# One entry, no wait: a BMC's one-time CD boot must reach the agent unattended. Serial and VGA
# both get GRUB's menu, as the kernel args Slate patches in choose the kernel console.
cat > "$tree/boot/grub/grub.cfg" <<CFG
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
set default=0
menuentry "Slate deploy environment" {
  echo "Slate: booting the deploy environment from virtual media"
  linux /slate/vmlinuz slate.media $ARGS
  initrd /slate/initrd.gz
}
CFG
find "$tree" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$(dirname "$OUT")"
grub-mkrescue -o "$OUT.tmp" "$tree" -- -volid SLATE_DEPLOY >"$tree.log" 2>&1 || { cat "$tree.log" >&2; rm -f "$tree.log"; exit 1; }
rm -f "$tree.log"
n=$(grep -c -a -o "$MARKER" "$OUT.tmp" || true)
[ "$n" -ge 1 ] || { echo "deploy-iso: the placeholder is not in the ISO's bytes; Slate could not patch it" >&2; exit 1; }
mv "$OUT.tmp" "$OUT"
printf 'deploy-iso: %s %.1f MiB (placeholder found %s times)\n' "$OUT" "$(echo "$(stat -c %s "$OUT")/1048576" | bc -l)" "$n"
if [ -n "${DEPLOYENV_INSTALL:-}" ]; then
  mkdir -p "$DEPLOYENV_INSTALL"
  cp "$OUT" "$DEPLOYENV_INSTALL/deploy.iso.tmp" && mv "$DEPLOYENV_INSTALL/deploy.iso.tmp" "$DEPLOYENV_INSTALL/deploy.iso"
  echo "deploy-iso: installed into $DEPLOYENV_INSTALL"
fi
