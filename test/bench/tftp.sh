#!/usr/bin/env bash
# TFTP benchmark: Slate's TFTP server (pxe/) vs tftpd-hpa and dnsmasq's TFTP, same run, same
# file (Debian's ipxe.efi), all on loopback.
#  - transfers/s: 50 parallel tftp-hpa clients (plain RFC 1350, 512-byte blocks) for DUR s
#  - MB/s: one curl client at blksize 1468 (tftp-hpa's client cannot ask for a blksize),
#    median of RUNS transfers each, servers taken in turn
# Usage: test/bench/tftp.sh   (root; DUR=10 RUNS=7 PAR=50 to tune)
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${DUR:-10}; RUNS=${RUNS:-15}; PAR=${PAR:-50}
FILE=/usr/lib/ipxe/ipxe.efi
for c in tftp curl in.tftpd dnsmasq; do command -v $c >/dev/null || { echo "tftp bench: $c missing: run make deps"; exit 1; }; done
[ -e $FILE ] || { echo "tftp bench: $FILE missing: run make deps (package ipxe)"; exit 1; }

W=$(mktemp -d /tmp/slate-bench-tftp.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$W/root" && cp -L $FILE "$W/root/ipxe.efi"
SIZE=$(stat -c %s "$W/root/ipxe.efi")

go build -o "$W/benchserve" ./internal/cmd/benchserve
make -s ipxe-assets >/dev/null   # Slate serves its embedded copy: make sure it is the same file
cmp -s assets/ipxe/ipxe.efi "$W/root/ipxe.efi" || { echo "tftp bench: embedded ipxe.efi differs from $FILE"; exit 1; }

# Slate (port 6901), tftpd-hpa (6902), dnsmasq (69: its TFTP port is not configurable).
"$W/benchserve" -tftp 127.0.0.1:6901 -log "$W/slate.log" & pids+=($!)
in.tftpd -L -a 127.0.0.1:6902 -s "$W/root" -u root -B 1468 & pids+=($!)
dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --listen-address=127.0.0.1 --bind-interfaces --user=root \
  --enable-tftp --tftp-root="$W/root" --pid-file="$W/dnsmasq.pid" --log-facility="$W/dnsmasq.log" & pids+=($!)
SLATE_PID=${pids[0]}
sleep 1

ports=(6901 6902 69); names=(slate tftpd-hpa dnsmasq)
for i in 0 1 2; do
  curl -sf -m 20 -o "$W/check" "tftp://127.0.0.1:${ports[$i]}/ipxe.efi" && cmp -s "$W/check" "$W/root/ipxe.efi" \
    || { echo "tftp bench: ${names[$i]} did not serve ipxe.efi correctly"; exit 1; }
done

# parallel PORT → transfers/s with PAR tftp-hpa clients looping for DUR seconds.
parallel() {
  local port=$1 end start
  start=$(date +%s.%N); end=$(( $(date +%s) + DUR ))
  for i in $(seq "$PAR"); do
    ( n=0
      while [ "$(date +%s)" -lt $end ]; do
        out=$(tftp -m binary 127.0.0.1 "$port" -c get ipxe.efi /dev/null 2>&1) && [ -z "$out" ] && n=$((n+1))
      done
      echo $n > "$W/count.$port.$i" ) &
  done
  wait_children
  local total; total=$(cat "$W"/count."$port".* | paste -sd+ | bc)
  echo "scale=1; $total / ($(date +%s.%N) - $start)" | bc
}
wait_children() { for j in $(jobs -p); do case " ${pids[*]} " in *" $j "*) ;; *) wait "$j" ;; esac; done; }

# singles → median MB/s per server of RUNS transfers with curl at blksize 1468, the servers
# taken in turn each round so load from elsewhere on the machine hits all three alike.
singles() {
  for r in $(seq "$RUNS"); do
    for i in 0 1 2; do
      echo "${names[$i]} $(curl -sf -o /dev/null --tftp-blksize 1468 -w '%{speed_download}' "tftp://127.0.0.1:${ports[$i]}/ipxe.efi")"
    done
  done > "$W/singles"
}
median() { awk -v n="$1" '$1 == n {print $2}' "$W/singles" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1e6}'; }

declare -A tps mbs
for i in 0 1 2; do tps[${names[$i]}]=$(parallel "${ports[$i]}"); done
singles
for n in "${names[@]}"; do mbs[$n]=$(median "$n"); done
rss=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/$SLATE_PID/status)

echo "tftp: ipxe.efi ($SIZE bytes), loopback, $PAR parallel tftp-hpa clients for ${DUR}s; 1 curl client at blksize 1468 (median of $RUNS)"
for n in "${names[@]}"; do printf "tftp %-10s %7s transfers/s (%d parallel)   %6s MB/s (1 client, blksize 1468)\n" "$n" "${tps[$n]}" "$PAR" "${mbs[$n]}"; done
for peer in tftpd-hpa dnsmasq; do
  printf "tftp ratio slate/%-10s transfers/s %.2f   MB/s %.2f\n" "$peer" \
    "$(echo "scale=4; ${tps[slate]} / ${tps[$peer]}" | bc)" "$(echo "scale=4; ${mbs[slate]} / ${mbs[$peer]}" | bc)"
done
echo "tftp slate peak RSS ${rss} MiB; transfer log lines: $(grep -c 'msg="tftp transfer"' "$W/slate.log")"
