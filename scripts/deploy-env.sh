#!/usr/bin/env bash
# Builds the deploy environment (kernel + initramfs with slate-agent as /init) from Debian's
# kernel package, without installing it on the host. Reproducible: same kernel package, same
# agent source and same SOURCE_DATE_EPOCH give byte-identical files (see docs/agent.md).
#
#   DEPLOYENV_OUT      output directory            (default assets/deployenv)
#   DEPLOYENV_CACHE    kernel package cache        (default .cache/deployenv)
#   DEPLOYENV_INSTALL  also copy the result here   (e.g. /var/lib/slate/deployenv; default none)
#   KERNEL_PACKAGE     e.g. linux-image-6.1.0-56-amd64 (default: what linux-image-amd64 depends on)
#   SOURCE_DATE_EPOCH  mtime of every initramfs entry (default: the kernel package's changelog date)
#   DEPLOYENV_MODULES  extra modules, comma-separated
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${DEPLOYENV_OUT:-assets/deployenv}
CACHE=${DEPLOYENV_CACHE:-.cache/deployenv}
GO=${GO:-go}
export GOFLAGS=-mod=mod
mkdir -p "$OUT" "$CACHE"

# Storage and network drivers of common servers (plus virtio for VMs, USB storage, efivarfs),
# and what `bootc install to-disk` formats and mounts (ext4, xfs, vfat, dm-crypt: the deploy
# environment has no modprobe for the kernel to load them on demand, so the agent loads them
# at start); their dependencies are added by the builder from each module's modinfo.
MODULES="nvme,ahci,megaraid_sas,mpt3sas,virtio_blk,virtio_scsi,virtio_pci,sd_mod,\
e1000,e1000e,igb,ixgbe,i40e,ice,bnxt_en,mlx5_core,tg3,virtio_net,\
xhci_pci,usb_storage,virtio_rng,efivarfs,crc32c_generic,ext4,xfs,vfat,nls_cp437,nls_iso8859_1,dm_crypt\
${DEPLOYENV_MODULES:+,$DEPLOYENV_MODULES}"

pkg=${KERNEL_PACKAGE:-}
if [ -z "$pkg" ]; then
  pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  if [ -z "$pkg" ]; then
    apt-get update >/dev/null
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  fi
fi
[ -n "$pkg" ] || { echo "deploy-env: cannot find the kernel package (apt-cache depends linux-image-amd64)" >&2; exit 1; }
release=${pkg#linux-image-}

deb=$(ls "$CACHE"/"${pkg}"_*.deb 2>/dev/null | sort | tail -n1 || true)
if [ -z "$deb" ]; then
  echo "deploy-env: downloading $pkg into $CACHE"
  (cd "$CACHE" && apt-get download "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  deb=$(ls "$CACHE"/"${pkg}"_*.deb 2>/dev/null | sort | tail -n1 || true)
  [ -n "$deb" ] || { echo "deploy-env: apt-get download $pkg failed" >&2; exit 1; }
fi
tree="$CACHE/$(basename "$deb" .deb)"
if [ ! -d "$tree/lib/modules/$release" ]; then
  rm -rf "$tree.tmp" && mkdir -p "$tree.tmp"
  dpkg-deb -x "$deb" "$tree.tmp"
  mv "$tree.tmp" "$tree"
fi

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  # The kernel package's own date: changes only when the kernel does.
  SOURCE_DATE_EPOCH=$(stat -c %Y "$tree/boot/vmlinuz-$release")
fi
export SOURCE_DATE_EPOCH

VERSION=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}
CGO_ENABLED=0 $GO build -trimpath -buildvcs=false -ldflags "-s -w -buildid= -X main.version=$VERSION" \
  -o "$CACHE/slate-agent" ./cmd/slate-agent
$GO run ./internal/cmd/mkinitramfs -modules-dir "$tree/lib/modules/$release" -agent "$CACHE/slate-agent" \
  -modules "$MODULES" -epoch "$SOURCE_DATE_EPOCH" -out "$OUT/initrd.gz"
cp "$tree/boot/vmlinuz-$release" "$OUT/vmlinuz.tmp" && mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
echo "$pkg $(basename "$deb")" > "$OUT/KERNEL"
(cd "$OUT" && sha256sum vmlinuz initrd.gz > SHA256SUMS)

size() { stat -c %s "$1"; }
printf 'deploy-env: %s  vmlinuz %.1f MiB  initrd.gz %.1f MiB (target <= 40 MiB)  agent %.1f MiB\n' "$release" \
  "$(echo "$(size "$OUT/vmlinuz")/1048576" | bc -l)" "$(echo "$(size "$OUT/initrd.gz")/1048576" | bc -l)" \
  "$(echo "$(size "$CACHE/slate-agent")/1048576" | bc -l)"
cat "$OUT/SHA256SUMS"
if [ "$(size "$OUT/initrd.gz")" -gt $((40 * 1024 * 1024)) ]; then
  echo "deploy-env: initrd.gz is over the 40 MiB target" >&2
  exit 1
fi
if [ -n "${DEPLOYENV_INSTALL:-}" ]; then
  mkdir -p "$DEPLOYENV_INSTALL"
  for f in vmlinuz initrd.gz SHA256SUMS KERNEL; do cp "$OUT/$f" "$DEPLOYENV_INSTALL/$f.tmp" && mv "$DEPLOYENV_INSTALL/$f.tmp" "$DEPLOYENV_INSTALL/$f"; done
  echo "deploy-env: installed into $DEPLOYENV_INSTALL"
fi
