#!/usr/bin/env bash
# Registry throughput: push and pull of a 1 GiB single-layer OCI image through `slate serve`'s
# embedded registry (skopeo, loopback, an operator's credentials) vs cp of the same 1 GiB file
# on the same disk. Every figure includes a sync of the file system, so what was written is on
# the disk for both. The layer is random bytes with --preserve-digests: skopeo moves it as is
# (no recompression), so the comparison is transport + storage, not gzip.
# For Slate's own share, the same layer also goes up and down as one blob with curl, and
# skopeo copies it without any registry (oci: → dir:), its own floor.
# Rounds alternate which side goes first; the median round counts.
# Usage: test/bench/registry.sh   (SIZE_MIB=1024 ROUNDS=3 to tune; needs skopeo)
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOFLAGS=-mod=mod CGO_ENABLED=0
SIZE_MIB=${SIZE_MIB:-1024}
ROUNDS=${ROUNDS:-3}
for c in skopeo curl sha256sum; do command -v $c >/dev/null || { echo "registry bench: $c missing: make deps"; exit 1; }; done
W=$(mktemp -d /var/tmp/slate-registry-bench.XXXXXX)   # the data dir, the image and the copies: one disk
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
go build -o "$W/slate" ./cmd/slate

# A single-layer OCI image layout, written by hand: config, one raw layer, manifest, index.
oci=$W/oci
mkdir -p "$oci/blobs/sha256"
head -c $((SIZE_MIB << 20)) /dev/urandom > "$W/layer"
lsum=$(sha256sum "$W/layer" | cut -d' ' -f1)
mv "$W/layer" "$oci/blobs/sha256/$lsum"
layer=$oci/blobs/sha256/$lsum
bytes=$((SIZE_MIB << 20))
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$lsum" > "$W/config"
csum=$(sha256sum "$W/config" | cut -d' ' -f1); csize=$(stat -c %s "$W/config"); mv "$W/config" "$oci/blobs/sha256/$csum"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}' \
  "$csum" "$csize" "$lsum" "$bytes" > "$W/manifest"
msum=$(sha256sum "$W/manifest" | cut -d' ' -f1); msize=$(stat -c %s "$W/manifest"); mv "$W/manifest" "$oci/blobs/sha256/$msum"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"bench"}}]}' "$msum" "$msize" > "$oci/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' > "$oci/oci-layout"

# slate serve on loopback with a fresh data dir, and an operator to push as.
SLATE_ADMIN_PASSWORD=bench-pw-0001 "$W/slate" serve --listen 127.0.0.1:0 --data-dir "$W/data" > "$W/serve.log" 2>&1 & pid=$!
addr=""
for _ in $(seq 200); do
  addr=$(grep -o 'listen=127\.0\.0\.1:[0-9]*' "$W/serve.log" | head -1 | cut -d= -f2) || true
  [ -n "$addr" ] && curl -sf "http://$addr/healthz" >/dev/null && break
  sleep 0.05
done
[ -n "$addr" ] && curl -sf "http://$addr/healthz" >/dev/null || { echo "registry bench: slate serve did not start:"; cat "$W/serve.log"; exit 1; }
export XDG_CONFIG_HOME=$W/cfg SLATE_SERVER=http://$addr
echo bench-pw-0001 > "$W/pw"; "$W/slate" login --username admin --password-file "$W/pw" >/dev/null
echo bench-operator-1 > "$W/pw"; "$W/slate" user add bencher --role operator --password-file "$W/pw" >/dev/null
creds=bencher:bench-operator-1
cat "$layer" > /dev/null   # both sides read the source from the page cache
echo "registry: ${SIZE_MIB} MiB single-layer image, slate serve on $addr, data in $W (same disk as the copies); $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

now() { date +%s.%N; }
el() { awk -v a="$1" -v b="$2" 'BEGIN { print b - a }'; }
mbps() { awk -v b="$bytes" -v s="$1" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }

push() {
  local t0 t1
  t0=$(now)
  skopeo copy -q --preserve-digests --dest-tls-verify=false --dest-creds "$creds" "oci:$oci:bench" "docker://$addr/bench/disk:1"
  sync -f "$W/data"
  t1=$(now)
  el "$t0" "$t1"
}
pull() {
  local t0 t1
  rm -rf "$W/pulled"
  t0=$(now)
  skopeo copy -q --preserve-digests --src-tls-verify=false --src-creds "$creds" "docker://$addr/bench/disk:1" "dir:$W/pulled"
  sync -f "$W/pulled"
  t1=$(now)
  [ "$(stat -c %s "$W/pulled/$lsum")" = "$bytes" ] || { echo "registry bench: the pulled layer has the wrong size" >&2; return 1; }
  el "$t0" "$t1"
}
local_copy() {   # skopeo without a registry: oci: → dir:, the client's own floor
  local t0 t1
  rm -rf "$W/local"
  t0=$(now)
  skopeo copy -q --preserve-digests "oci:$oci:bench" "dir:$W/local"
  sync -f "$W/local"
  t1=$(now)
  rm -rf "$W/local"
  el "$t0" "$t1"
}
# The registry without skopeo: one monolithic blob upload (POST, then PUT of the whole layer)
# and one blob download with curl, so the figure is Slate's, not the client's.
curl_push() {
  local t0 t1 loc
  t0=$(now)
  loc=$(curl -sf -u "$creds" -X POST -D - -o /dev/null "http://$addr/v2/bench/raw/blobs/uploads/" | tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
  case $loc in http*) ;; *) loc="http://$addr$loc" ;; esac
  case $loc in *\?*) loc="$loc&" ;; *) loc="$loc?" ;; esac
  curl -sf -u "$creds" -X PUT -H 'Content-Type: application/octet-stream' -T "$layer" -o /dev/null "${loc}digest=sha256:$lsum"
  sync -f "$W/data"
  t1=$(now)
  el "$t0" "$t1"
}
curl_pull() {
  local t0 t1
  rm -f "$W/pulled.raw"
  t0=$(now)
  curl -sf -u "$creds" -o "$W/pulled.raw" "http://$addr/v2/bench/raw/blobs/sha256:$lsum"
  sync -f "$W/pulled.raw"
  t1=$(now)
  [ "$(stat -c %s "$W/pulled.raw")" = "$bytes" ] || { echo "registry bench: the downloaded blob has the wrong size" >&2; return 1; }
  rm -f "$W/pulled.raw"
  el "$t0" "$t1"
}
curl_null() {   # the registry's read path alone: nothing written on the client's side
  local t0 t1
  t0=$(now)
  curl -sf -u "$creds" -o /dev/null "http://$addr/v2/bench/raw/blobs/sha256:$lsum"
  t1=$(now)
  el "$t0" "$t1"
}
# Each round starts from an empty registry, so that a push uploads the whole layer rather
# than finding it there: the image is deleted and garbage-collected (timed, as a figure too).
collect() {
  local t0 t1
  [ "${1:-}" = orphan ] || skopeo delete --tls-verify=false --creds "$creds" "docker://$addr/bench/disk:1"
  t0=$(now)
  "$W/slate" registry gc > "$W/gc.out"
  t1=$(now)
  grep -q "blobs*, freeing.*kept 0 manifests and 0 blobs" "$W/gc.out" || { echo "registry bench: gc did not empty the registry:" >&2; cat "$W/gc.out" >&2; return 1; }
  el "$t0" "$t1"
}
copy() {
  local t0 t1
  rm -f "$W/copy"
  t0=$(now)
  cp "$layer" "$W/copy"
  sync -f "$W/copy"
  t1=$(now)
  el "$t0" "$t1"
}

: > "$W/rounds"
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then p=$(push); c1=$(copy); l=$(pull); c2=$(copy)
  else c1=$(copy); p=$(push); c2=$(copy); l=$(pull); fi
  g=$(collect); k=$(local_copy); cu=$(curl_push); dl=$(curl_pull); dn=$(curl_null); collect orphan >/dev/null
  echo "registry round $r: push $(mbps "$p") MB/s, pull $(mbps "$l") MB/s, cp $(mbps "$c1") / $(mbps "$c2") MB/s, skopeo oci:→dir: $(mbps "$k") MB/s, curl upload $(mbps "$cu") MB/s, curl download $(mbps "$dl") MB/s (to /dev/null $(mbps "$dn")); gc of the deleted image $g s"
  echo "$(mbps "$p") $(mbps "$l") $(mbps "$c1") $(mbps "$c2") $(mbps "$k") $(mbps "$cu") $(mbps "$dl") $(mbps "$dn")" >> "$W/rounds"
done
med() { awk -v c="$1" '{print $c}' "$W/rounds" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
P=$(med 1); L=$(med 2); C=$(cat <(awk '{print $3}' "$W/rounds") <(awk '{print $4}' "$W/rounds") | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "registry: ${SIZE_MIB} MiB, median of $ROUNDS rounds, load now $(cut -d' ' -f1-3 /proc/loadavg)"
echo "registry cp + sync            $C MB/s"
echo "registry push (skopeo) + sync $P MB/s   ratio vs cp $(ratio "$P" "$C")"
echo "registry pull (skopeo) + sync $L MB/s   ratio vs cp $(ratio "$L" "$C")"
K=$(med 5)
echo "registry skopeo oci:→dir: + sync (no registry: the client's floor) $K MB/s   push/floor $(ratio "$P" "$K"), pull/floor $(ratio "$L" "$K")"
U=$(med 6); D=$(med 7)
echo "registry curl blob upload + sync   $U MB/s   ratio vs cp $(ratio "$U" "$C")"
echo "registry curl blob download + sync $D MB/s   ratio vs cp $(ratio "$D" "$C")"
echo "registry curl blob download to /dev/null $(med 8) MB/s (the registry's read path alone)"
