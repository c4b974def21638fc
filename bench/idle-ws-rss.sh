#!/usr/bin/env bash
# RSS per idle, subscribed WebSocket on one `tracker run` process (embedded defaults).
# usage: [BIN=dir] bench/idle-ws-rss.sh [N=10000]
# BIN: a folder holding prebuilt `tracker` and `idle_watchers` (default: build
# them into target/release).
# Loopback only; bounded by N and a 120 s hold. Prints one line of results.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
PORT=18180
ulimit -n "$(ulimit -Hn)"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin tracker --example idle_watchers
  BIN=target/release
  cp target/release/examples/idle_watchers "$BIN/" 2>/dev/null || true
fi
. bench/lib.sh
dir=$(mktemp -d)
mapfile -t load < <(load_settings)
env "${load[@]}" TRACKER_HTTP_ADDR=127.0.0.1:$PORT TRACKER_MQTT_ADDR=127.0.0.1:0 TRACKER_DATA_DIR="$dir" \
  TRACKER_JWT_SECRET=$secret RUST_LOG=warn "$BIN/tracker" run >"$dir/out" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$dir"' EXIT
wait_healthy $PORT "$dir/out"
admin=$(admin_token)
order=$(curl -s -XPOST "localhost:$PORT/v1/orders" -H "Authorization: Bearer $admin" -H 'content-type: application/json' \
  -d '{"biz_order_no":"B-1","biz_type":"bench","customer_id":"c","pickup":{"lat":1,"lon":1},"dropoff":{"lat":1,"lon":1}}' |
  sed -E 's/.*"id":"([0-9]+)".*/\1/')
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
before=$(rss)
"$BIN/idle_watchers" "ws://127.0.0.1:$PORT/v1/ws" "$admin" "$order" "$N" 120 >"$dir/clients" 2>&1 &
cpid=$!
for _ in $(seq 1200); do grep -q ready "$dir/clients" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$dir/clients" || { cat "$dir/clients"; exit 1; }
sleep 2
after=$(rss)
kill $cpid 2>/dev/null || true
echo "connections=$N rss_before_kib=$before rss_after_kib=$after kib_per_connection=$(awk "BEGIN{printf \"%.2f\", ($after-$before)/$N}")"
