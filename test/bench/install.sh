#!/usr/bin/env bash
# Streaming install throughput: Slate's image.WriteImage (as the agent calls it: digest pinned,
# read-back verification, GPT repair; driven by internal/cmd/installbench) vs dd of the same
# uncompressed GPT image onto the same loop device (--direct-io=on over a file in /var/tmp).
# Target: Slate's write >= 0.9x dd.
#   write phase:  WriteImage up to the end of its flush   vs  dd bs=4M oflag=direct conv=fsync
#   write+verify: WriteImage whole (adds read-back, GPT)  vs  the same dd, then cmp of the device
#                 against the image (dropping the device's page cache first, so both read the disk)
# Rounds alternate which tool goes first. Printed: the median of each column, and the median of
# the per-round ratios (each round pairs two runs seconds apart, so it cancels most of the
# shared disk's swings, which reach 2x between rounds).
# Usage: test/bench/install.sh   (SIZE_MIB=1024 ROUNDS=5 to tune; needs root, util-linux, fdisk)
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOFLAGS=-mod=mod CGO_ENABLED=0
SIZE_MIB=${SIZE_MIB:-1024}
ROUNDS=${ROUNDS:-5}
[ "$(id -u)" = 0 ] || { echo "install bench: needs root (loop devices)"; exit 1; }
for c in losetup dd cmp sfdisk sha256sum blockdev; do command -v $c >/dev/null || { echo "install bench: $c missing: make deps"; exit 1; }; done
tmp=$(mktemp -d /var/tmp/slate-install-bench.XXXXXX)
dev=""
cleanup() { [ -n "$dev" ] && losetup -d "$dev" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
go build -o "$tmp/installbench" ./internal/cmd/installbench

# The image: random data (nothing compresses or dedups it) with a GPT and one partition.
head -c $((SIZE_MIB << 20)) /dev/urandom > "$tmp/image.raw"
printf 'label: gpt\n,,L\n' | sfdisk --quiet "$tmp/image.raw" >/dev/null
digest="sha256:$(sha256sum "$tmp/image.raw" | cut -d' ' -f1)"
fallocate -l "${SIZE_MIB}M" "$tmp/disk.img"
dev=$(losetup --direct-io=on -f --show "$tmp/disk.img")
bytes=$((SIZE_MIB << 20))
cat "$tmp/image.raw" > /dev/null   # the source is read from the page cache by both tools
echo "install: ${SIZE_MIB} MiB GPT image onto $dev (same size, direct I/O); $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

now() { date +%s.%N; }
el() { awk -v a="$1" -v b="$2" 'BEGIN { print b - a }'; }
mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
wipe_dev() { dd if=/dev/zero of="$dev" bs=4M count=1 oflag=direct conv=fsync status=none; blockdev --flushbufs "$dev"; }

dd_round() {
  wipe_dev
  local t0 t1 t2
  t0=$(now)
  dd if="$tmp/image.raw" of="$dev" bs=4M oflag=direct conv=fsync status=none
  t1=$(now)
  blockdev --flushbufs "$dev"   # cmp must read the disk, not pages left in the cache
  cmp -n "$bytes" "$tmp/image.raw" "$dev"
  t2=$(now)
  echo "$(el "$t0" "$t1") $(el "$t0" "$t2")"
}
slate_round() {
  wipe_dev
  local out
  out=$("$tmp/installbench" -image "$tmp/image.raw" -dev "$dev" -digest "$digest")
  echo "$out" | awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } print v["write_s"], v["total_s"] }'
}

: > "$tmp/rounds"
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then s=$(slate_round); d=$(dd_round); else d=$(dd_round); s=$(slate_round); fi
  read -r sw st <<<"$s"; read -r dw dt <<<"$d"
  echo "install round $r: slate write $(mbps "$sw") MB/s, write+verify $(mbps "$st") MB/s; dd write $(mbps "$dw") MB/s, dd+cmp $(mbps "$dt") MB/s"
  echo "$(mbps "$sw") $(mbps "$st") $(mbps "$dw") $(mbps "$dt")" >> "$tmp/rounds"
done
med() { awk -v c="$1" '{print $c}' "$tmp/rounds" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
met() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t) ? "MET" : "NOT MET" }'; }
SW=$(med 1); ST=$(med 2); DW=$(med 3); DT=$(med 4)
awk '{ printf "%.3f %.3f\n", $1 / $3, $2 / $4 }' "$tmp/rounds" > "$tmp/ratios"
rmed() { awk -v c="$1" '{print $c}' "$tmp/ratios" | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]}'; }
RW=$(rmed 1); RT=$(rmed 2)
echo "install: ${SIZE_MIB} MiB, median of $ROUNDS rounds, load now $(cut -d' ' -f1-3 /proc/loadavg)"
echo "install dd bs=4M oflag=direct conv=fsync   $DW MB/s"
echo "install dd + cmp read-back                  $DT MB/s"
echo "install slate write (to end of flush)       $SW MB/s   ratio of medians $(ratio "$SW" "$DW"), median per-round ratio $RW (target >= 0.9) $(met "$RW" 0.9)"
echo "install slate write+verify+GPT              $ST MB/s   ratio of medians vs dd+cmp $(ratio "$ST" "$DT"), median per-round ratio $RT"
