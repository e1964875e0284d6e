#!/usr/bin/env bash
# Overwrite + verify throughput of Slate's wipe vs `dd oflag=direct bs=4M` and nwipe, on the
# same 2 GiB loop device (--direct-io=on) in one run; plus the AES-CTR stream alone.
# Target: Slate's overwrite and verify >= 0.95x dd. Needs root, nwipe, util-linux.
# Prints one line per tool and the ratio vs dd. SIZE_MIB overrides the device size.
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOFLAGS=-mod=mod CGO_ENABLED=0
SIZE_MIB=${SIZE_MIB:-2048}
ROUNDS=${ROUNDS:-2}
[ "$(id -u)" = 0 ] || { echo "wipe bench: needs root (loop devices)"; exit 1; }
for c in losetup dd nwipe; do command -v $c >/dev/null || { echo "wipe bench: $c missing: make deps"; exit 1; }; done
tmp=$(mktemp -d /var/tmp/slate-wipe-bench.XXXXXX)
dev=""
cleanup() { [ -n "$dev" ] && losetup -d "$dev" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
go build -o "$tmp/wipebench" ./internal/cmd/wipebench
fallocate -l "${SIZE_MIB}M" "$tmp/disk.img"
dev=$(losetup --direct-io=on -f --show "$tmp/disk.img")
bytes=$((SIZE_MIB * 1024 * 1024))
echo "device: $dev, ${SIZE_MIB} MiB, direct I/O; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
now() { date +%s.%N; }
el() { awk -v a="$1" -v b="$2" 'BEGIN { print b - a }'; }
best() { tr ' ' '\n' | sort -n | tail -1; }

ddw=() ddf=() ddr=() sz=() szv=() sa=() sav=()
for r in $(seq "$ROUNDS"); do
  t0=$(now); dd if=/dev/zero of="$dev" bs=4M count=$((SIZE_MIB / 4)) oflag=direct status=none; t1=$(now)
  ddw+=("$(mbps "$(el "$t0" "$t1")")")
  # Slate flushes the drive's cache before it verifies (data must be on the media, not in a
  # cache, for a Clear to count): dd with conv=fsync is the like-for-like write.
  t0=$(now); dd if=/dev/zero of="$dev" bs=4M count=$((SIZE_MIB / 4)) oflag=direct conv=fsync status=none; t1=$(now)
  ddf+=("$(mbps "$(el "$t0" "$t1")")")
  t0=$(now); dd if="$dev" of=/dev/null bs=4M count=$((SIZE_MIB / 4)) iflag=direct status=none; t1=$(now)
  ddr+=("$(mbps "$(el "$t0" "$t1")")")
  out=$("$tmp/wipebench" -dev "$dev" -pattern zero -verify full)
  sz+=("$(echo "$out" | awk '/ overwrite:/ { print $(NF-1) }')")
  szv+=("$(echo "$out" | awk '/ verify:/ { print $(NF-1) }')")
  out=$("$tmp/wipebench" -dev "$dev" -pattern aes-ctr -verify full)
  sa+=("$(echo "$out" | awk '/ overwrite:/ { print $(NF-1) }')")
  sav+=("$(echo "$out" | awk '/ verify:/ { print $(NF-1) }')")
done
DDW=$(echo "${ddw[*]}" | best); DDR=$(echo "${ddr[*]}" | best); DDF=$(echo "${ddf[*]}" | best)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "dd bs=4M oflag=direct write:           $DDW MB/s   (runs: ${ddw[*]})"
echo "dd bs=4M oflag=direct conv=fsync:      $DDF MB/s   (runs: ${ddf[*]})"
echo "dd bs=4M iflag=direct read:            $DDR MB/s   (runs: ${ddr[*]})"
SZ=$(echo "${sz[*]}" | best); SZV=$(echo "${szv[*]}" | best)
SA=$(echo "${sa[*]}" | best); SAV=$(echo "${sav[*]}" | best)
echo "slate overwrite zeros:                 $SZ MB/s   ratio vs dd write $(ratio "$SZ" "$DDW"), vs dd+fsync $(ratio "$SZ" "$DDF")   (runs: ${sz[*]})"
echo "slate verify zeros (full read-back):   $SZV MB/s   ratio vs dd read $(ratio "$SZV" "$DDR")   (runs: ${szv[*]})"
echo "slate overwrite AES-256-CTR:           $SA MB/s   ratio vs dd write $(ratio "$SA" "$DDW"), vs dd+fsync $(ratio "$SA" "$DDF")   (runs: ${sa[*]})"
echo "slate verify AES-256-CTR (full):       $SAV MB/s   ratio vs dd read $(ratio "$SAV" "$DDR")   (runs: ${sav[*]})"

t0=$(now)
nwipe --autonuke --nogui --method=zero --verify=off --noblank --nowait "$dev" >"$tmp/nwipe.log" 2>&1 || { echo "nwipe failed:"; tail -5 "$tmp/nwipe.log"; exit 1; }
t1=$(now)
NW=$(mbps "$(el "$t0" "$t1")")
echo "nwipe --method=zero (one pass):        $NW MB/s   ratio slate/nwipe $(ratio "$SZ" "$NW")"

aes=$(go test -run XXX -bench BenchmarkAESCTRStream -benchtime 2s ./wipe | awk '/BenchmarkAESCTRStream/ { print $(NF-1) }')
echo "AES-256-CTR stream alone (8 MiB fills): $aes MB/s   ratio vs dd write $(ratio "$aes" "$DDW")"
