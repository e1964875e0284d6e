#!/usr/bin/env bash
# HTTP benchmark: Slate's /boot/ handler (pxe/, sendfile through net/http) vs nginx (sendfile
# on), 200 parallel downloads of the same 64 MiB file on loopback: aggregate MB/s and Slate's
# peak RSS. Targets: Slate ≥ 0.95 × nginx, RSS < 100 MiB.
# Usage: test/bench/http.sh   (ROUNDS=5 PAR=200 CLIENTS=4 to tune; the median round counts,
# servers alternating each round so load from elsewhere hits both alike)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-5}; PAR=${PAR:-200}; CLIENTS=${CLIENTS:-4}
for c in curl nginx; do command -v $c >/dev/null || { echo "http bench: $c missing: run make deps"; exit 1; }; done

W=$(mktemp -d /tmp/slate-bench-http.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
chmod 755 "$W"   # nginx workers run as nobody
mkdir -p "$W/data/artifacts" "$W/www" "$W/nginx"
head -c $((64 << 20)) /dev/urandom > "$W/data/artifacts/big.bin"
ln "$W/data/artifacts/big.bin" "$W/www/big.bin"   # the very same file (and page cache) for both
SIZE=$((64 << 20))

go build -o "$W/benchserve" ./internal/cmd/benchserve
"$W/benchserve" -http 127.0.0.1:8091 -data "$W/data" -log "$W/slate.log" & pids+=($!)
SLATE_PID=${pids[0]}
cat > "$W/nginx.conf" <<NGINX
daemon off;
worker_processes auto;
pid $W/nginx.pid;
error_log $W/nginx.err;
events { worker_connections 1024; }
http {
  sendfile on; tcp_nopush on; access_log off;
  default_type application/octet-stream;
  client_body_temp_path $W/nginx/body; proxy_temp_path $W/nginx/proxy;
  fastcgi_temp_path $W/nginx/fastcgi; uwsgi_temp_path $W/nginx/uwsgi; scgi_temp_path $W/nginx/scgi;
  server { listen 127.0.0.1:8092; root $W/www; }
}
NGINX
nginx -c "$W/nginx.conf" -p "$W/nginx" & pids+=($!)
sleep 1
for u in http://127.0.0.1:8091/boot/artifacts/big.bin http://127.0.0.1:8092/big.bin; do
  [ "$(curl -sf -o /dev/null -w '%{size_download}' "$u")" = "$SIZE" ] || { echo "http bench: $u not served"; exit 1; }
done

# run URL → aggregate MB/s of PAR downloads (CLIENTS curl processes, each PAR/CLIENTS at once).
run() {
  local url=$1 per=$((PAR / CLIENTS)) start end args=()
  for i in $(seq $per); do args+=(-o /dev/null "$url"); done
  start=$(date +%s.%N)
  for c in $(seq "$CLIENTS"); do
    curl -sf --no-progress-meter --parallel --parallel-max "$per" -w '%{http_code} %{size_download}\n' "${args[@]}" > "$W/out.$c" 2> "$W/err.$c" &
  done
  wait_clients
  end=$(date +%s.%N)
  local ok; ok=$(cat "$W"/out.* | grep -c "^200 $SIZE\$" || true)
  [ "$ok" = "$((per * CLIENTS))" ] || { echo "http bench: only $ok of $((per * CLIENTS)) downloads of $url completed" >&2; return 1; }
  echo "scale=1; $ok * $SIZE / 1000000 / ($end - $start)" | bc
}
wait_clients() { for j in $(jobs -p); do case " ${pids[*]} " in *" $j "*) ;; *) wait "$j" ;; esac; done; }

: > "$W/rounds"
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then
    s=$(run http://127.0.0.1:8091/boot/artifacts/big.bin); n=$(run http://127.0.0.1:8092/big.bin)
  else
    n=$(run http://127.0.0.1:8092/big.bin); s=$(run http://127.0.0.1:8091/boot/artifacts/big.bin)
  fi
  echo "http round $r: slate $s MB/s, nginx $n MB/s"
  echo "$s $n" >> "$W/rounds"
done
med() { awk -v c="$1" '{print $c}' "$W/rounds" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
best() { awk -v c="$1" '{print $c}' "$W/rounds" | sort -n | tail -1; }
med_s=$(med 1); med_n=$(med 2)
rss=$(awk '/VmHWM/ {printf "%.1f", $2/1024}' /proc/$SLATE_PID/status)
ratio=$(echo "scale=3; $med_s / $med_n" | bc)
echo "http: $PAR parallel downloads of a 64 MiB file, loopback, $CLIENTS curl processes, median of $ROUNDS rounds"
printf "http slate  %8s MB/s aggregate (best %s)   peak RSS %s MiB (target < 100)\n" "$med_s" "$(best 1)" "$rss"
printf "http nginx  %8s MB/s aggregate (best %s)\n" "$med_n" "$(best 2)"
printf "http ratio slate/nginx %s (target >= 0.95) %s\n" "$ratio" "$(echo "$ratio >= 0.95" | bc | sed 's/1/MET/;s/0/NOT MET/')"
printf "http slate RSS target %s\n" "$(echo "$rss < 100" | bc | sed 's/1/MET/;s/0/NOT MET/')"
