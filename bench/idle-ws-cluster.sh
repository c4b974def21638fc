#!/usr/bin/env bash
# RSS per idle, subscribed WebSocket across several `tracker hub` processes that
# share one Redis (event log) and one PostgreSQL database (store), as in
# compose.yaml. One order is created; each hub gets PER_HUB watchers of it from
# its own client process bound to its own 127.0.0.x source address (one
# process may hold at most ~19,900 sockets here, and each source address has
# its own range of ephemeral ports). Prints each hub's RSS before and after
# and the total per connection.
#
# usage: bench/idle-ws-cluster.sh [HUBS=3] [PER_HUB=16667]
# env: REDIS_URL (redis://127.0.0.1:6379), PG_ADMIN (postgres://postgres@127.0.0.1:5432/test)
# Loopback only; bounded by the connection count and a hold of 300 s.
set -euo pipefail
cd "$(dirname "$0")/.."
HUBS="${1:-3}"
PER="${2:-16667}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
PG_ADMIN="${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/test}"
BASE_PORT=18600
. bench/lib.sh
ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet --bin tracker --example idle_watchers
dir=$(mktemp -d)
db="bench_idle_$$"
prefix="bench-idle-$$"
pids=()
clients=()
cleanup() {
  kill "${clients[@]}" "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  redis-cli -u "$REDIS_URL" --scan --pattern "$prefix:*" | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
psql -q "$PG_ADMIN" -c "CREATE DATABASE $db" >/dev/null
db_url="${PG_ADMIN%/*}/$db"
BIN=target/release
mapfile -t load < <(load_settings)
for i in $(seq 1 "$HUBS"); do
  env "${load[@]}" TRACKER_HTTP_ADDR="127.0.0.1:$((BASE_PORT + i))" TRACKER_REDIS_URL="$REDIS_URL" \
    TRACKER_REDIS_PREFIX="$prefix" TRACKER_DATABASE_URL="$db_url" TRACKER_JWT_SECRET=$secret \
    TRACKER_NODE_ID="$i" TRACKER_TILE_URL=off RUST_LOG=warn \
    target/release/tracker hub >"$dir/hub$i" 2>&1 &
  pids+=($!)
done
for i in $(seq 1 "$HUBS"); do
  for _ in $(seq 100); do curl -sf "localhost:$((BASE_PORT + i))/healthz" >/dev/null && break; sleep 0.2; done
  curl -sf "localhost:$((BASE_PORT + i))/healthz" >/dev/null || { cat "$dir/hub$i"; exit 1; }
done
admin=$(admin_token)
order=$(curl -sf -XPOST "localhost:$((BASE_PORT + 1))/v1/orders" -H "Authorization: Bearer $admin" \
  -H 'content-type: application/json' \
  -d '{"biz_order_no":"B-1","biz_type":"bench","customer_id":"c","pickup":{"lat":1,"lon":1},"dropoff":{"lat":1,"lon":1}}' |
  sed -E 's/.*"id":"([0-9]+)".*/\1/')
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
before=()
for i in $(seq 1 "$HUBS"); do before+=("$(rss "${pids[$((i - 1))]}")"); done
start=$(date +%s)
for i in $(seq 1 "$HUBS"); do
  target/release/examples/idle_watchers "ws://127.0.0.1:$((BASE_PORT + i))/v1/ws" "$admin" "$order" "$PER" 300 \
    "127.0.0.$((i + 1))" >"$dir/clients$i" 2>&1 &
  clients+=($!)
done
for i in $(seq 1 "$HUBS"); do
  for _ in $(seq 3000); do grep -q ready "$dir/clients$i" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$dir/clients$i" || { cat "$dir/clients$i"; exit 1; }
done
ready_s=$(( $(date +%s) - start ))
sleep 2
total_before=0 total_after=0
for i in $(seq 1 "$HUBS"); do
  b=${before[$((i - 1))]} a=$(rss "${pids[$((i - 1))]}")
  total_before=$((total_before + b)) total_after=$((total_after + a))
  echo "hub$i connections=$PER rss_before_kib=$b rss_after_kib=$a kib_per_connection=$(awk "BEGIN{printf \"%.2f\", ($a-$b)/$PER}")"
done
n=$((HUBS * PER))
open_now=0
for i in $(seq 1 "$HUBS"); do
  open_now=$((open_now + $(curl -s "localhost:$((BASE_PORT + i))/metrics" | awk '/^tracker_ws_connections / {print int($2)}')))
done
echo "cluster hubs=$HUBS connections=$n open_at_measure=$open_now connect_s=$ready_s rss_before_mib=$((total_before / 1024)) rss_after_mib=$((total_after / 1024)) kib_per_connection=$(awk "BEGIN{printf \"%.2f\", ($total_after-$total_before)/$n}") machine_used_mib=$(free -m | awk '/Mem:/ {print $3}')"
