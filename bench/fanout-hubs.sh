#!/usr/bin/env bash
# Fan-out split over HUBS `tracker hub` processes on the real backends: riders
# publish to Mosquitto, one `tracker ingest` appends to Redis (one server, or
# a cluster: REDIS_URL may be a seed list), the store is a fresh PostgreSQL
# database. tracker-sim puts all of an order's watchers on one hub, chosen
# by the order id (--watchers-by-order, a balancer with order affinity), so
# each hub holds about 1/HUBS of the orders. Prints, per hub, the events its
# tail received, the deliveries it made and its CPU over a steady window,
# then the sum, and the simulator's delays and lost / duplicated counts.
# The orders API (set-up, riders' status changes) is served by hub 1.
#
# usage: bench/fanout-hubs.sh [HUBS=2] [RATE=1000] [ORDERS=1000] [WATCHERS_PER_ORDER=5] [SECONDS=40]
# env: REDIS_URL (redis://127.0.0.1:6379), MQTT_URL (mqtt://127.0.0.1:1883),
#      PG_ADMIN (postgres://postgres@127.0.0.1:5432/test), BIN (prebuilt binaries)
# Loopback only; bounded by SECONDS (+ set-up and a 2 s drain).
set -euo pipefail
cd "$(dirname "$0")/.."
HUBS="${1:-2}"
RATE="${2:-1000}"
ORDERS="${3:-1000}"
PER="${4:-5}"
SECS="${5:-40}"
WARMUP=$(( SECS / 4 ))
INTERVAL_MS=$(( ORDERS * 1000 / RATE ))
BASE_PORT=18700
MQTT_URL="${MQTT_URL:-mqtt://127.0.0.1:1883}"
. bench/lib.sh
ulimit -n "$(ulimit -Hn)"
if $build; then cargo build --release --quiet --bin tracker --bin tracker-sim; fi
dir=$(mktemp -d)
real_backends hubs
prefix="bench-hubs-$$"
pids=()
IFS=, read -r -a seeds <<<"$REDIS_URL"
cleanup() {
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  drop_real_db
  forget_mqtt_session "$MQTT_URL" "bench-ingest-$$"
  local s
  for s in "${seeds[@]}"; do
    redis-cli -u "$s" --scan --pattern "$prefix:*" | xargs -r -n 500 redis-cli -u "$s" del >/dev/null
  done
  rm -rf "$dir"
}
trap cleanup EXIT
mapfile -t load < <(load_settings)
common=("${load[@]}" TRACKER_REDIS_URL="$REDIS_URL" TRACKER_REDIS_PREFIX="$prefix"
  TRACKER_DATABASE_URL="$db_url" TRACKER_JWT_SECRET=$secret TRACKER_ARCHIVE=off
  TRACKER_TRIP_WATCHER=off RUST_LOG=warn)

urls=()
for i in $(seq 1 "$HUBS"); do
  port=$((BASE_PORT + i))
  env "${common[@]}" TRACKER_HTTP_ADDR="127.0.0.1:$port" TRACKER_NODE_ID="$i" \
    "$BIN/tracker" hub >"$dir/hub$i.out" 2>&1 &
  pids+=($!)
  wait_healthy "$port" "$dir/hub$i.out"
  urls+=("http://127.0.0.1:$port")
done
ingest_port=$((BASE_PORT + 50))
env "${common[@]}" TRACKER_HTTP_ADDR="127.0.0.1:$ingest_port" TRACKER_NODE_ID=60 \
  TRACKER_MQTT_URL="$MQTT_URL" TRACKER_MQTT_SHARE_GROUP="bench$$" TRACKER_MQTT_CLIENT_ID="bench-ingest-$$" \
  "$BIN/tracker" ingest >"$dir/ingest.out" 2>&1 &
ingest=$!
pids+=($ingest)
wait_healthy "$ingest_port" "$dir/ingest.out"

watch_urls=$(IFS=,; echo "${urls[*]}")
"$BIN/tracker-sim" --url "${urls[0]}" --watch-url "$watch_urls" --watchers-by-order --mqtt "$MQTT_URL" \
  --jwt-secret $secret --riders "$ORDERS" --interval-ms "$INTERVAL_MS" --speed 6 --watchers "$PER" \
  --watch-as operator --sse-share 0 --poll-share 0 --offline-share 0 --mqtt-connections 8 \
  --duration-secs "$SECS" --warmup-secs "$WARMUP" $(sim_drain) --quiet >"$dir/sim" 2>"$dir/sim.err" &
sim=$!
sleep "$WARMUP"
snapshot() { # one line per hub: cpu tail_entries delivered
  local i
  for i in $(seq 0 $((HUBS - 1))); do
    local port=$((BASE_PORT + i + 1))
    echo "$(cpu_seconds "${pids[$i]}") $(metric "$port" '^tracker_tail_entries_total') $(metric "$port" '^tracker_events_delivered_total')"
  done
}
s0=$(snapshot); t0=$(date +%s.%N); i0=$(cpu_seconds "$ingest")
sleep $(( SECS - WARMUP - 2 ))
s1=$(snapshot); t1=$(date +%s.%N); i1=$(cpu_seconds "$ingest")
wait $sim || { cat "$dir/sim.err"; exit 1; }
paste -d' ' <(echo "$s0") <(echo "$s1") | awk -v t0="$t0" -v t1="$t1" -v hubs="$HUBS" -v i0="$i0" -v i1="$i1" \
  -v redis="${#seeds[@]}" -v rate="$RATE" -v orders="$ORDERS" -v per="$PER" '{
  dt = t1 - t0; cpu = $4 - $1; tail = $5 - $2; del = $6 - $3;
  printf "hub %d: tail_entries_per_s=%.0f deliveries_per_s=%.0f cpu_share=%.3f cpu_us_per_delivery=%.2f\n",
    NR, tail / dt, del / dt, cpu / dt, cpu * 1e6 / (del > 0 ? del : 1);
  C += cpu; D += del; T += tail
} END {
  printf "fanout-hubs hubs=%d redis_seeds=%d rate=%d/s orders=%d watchers=%d deliveries_per_s=%.0f hub_cpu_share_total=%.3f hub_cpu_share_mean=%.3f hub_cpu_us_per_delivery=%.2f tail_entries_per_s_total=%.0f ingest_cpu_share=%.3f\n",
    hubs, redis, rate, orders, orders * per, D / dt, C / dt, C / dt / hubs, C * 1e6 / (D > 0 ? D : 1), T / dt, (i1 - i0) / dt }'
tail -1 "$dir/sim"
