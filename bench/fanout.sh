#!/usr/bin/env bash
# Fan-out on one `tracker run` process (its own riders' MQTT listener, in-process log, SQLite):
# W watchers over O orders (one rider each) at R fixes/s, from tracker-sim in a
# second process. Prints hub CPU per delivered message (utime+stime from /proc
# over a steady window, divided by the hub's own tracker_events_delivered_total
# over the same window), deliveries/s, and the simulator's delay percentiles
# and lost / duplicated counts.
#
# usage: bench/fanout.sh [RATE=1000] [ORDERS=2000] [WATCHERS_PER_ORDER=5] [SECONDS=60]
# REAL=1 runs the same on the real backends: riders publish to Mosquitto
# (MQTT_URL, default mqtt://127.0.0.1:1883), the log on Redis (REDIS_URL), the
# store on a fresh PostgreSQL database (PG_ADMIN names the server).
# LIMITS=on keeps the connection and fix limits on, at levels that refuse
# nothing, to measure what checking them costs (they are off by default here).
# CHURN=N also creates N orders a second through the API and cancels each at
# once, and moves them to the archive a second or two later
# (TRACKER_ARCHIVE_AFTER_SECS=1, TRACKER_ARCHIVE_EVERY_SECS=1); ARCHIVE=off
# runs the same churn with the archive off, so the two runs' hub CPU per
# delivery shows what the mover costs beside the fan-out.
# PERF=1 also samples the hub with `perf record -g` over the window and writes
# the flat profile to target/bench/fanout-RATE.perf.txt.
# Loopback only; bounded by SECONDS (+ set-up and a 2 s drain).
set -euo pipefail
cd "$(dirname "$0")/.."
RATE="${1:-1000}"
ORDERS="${2:-2000}"
PER="${3:-5}"
SECS="${4:-60}"
WARMUP=$(( SECS / 4 ))
INTERVAL_MS=$(( ORDERS * 1000 / RATE ))
HTTP_PORT=18280
MQTT_PORT=18283
. bench/lib.sh
extra=()
sim_mqtt="mqtt://127.0.0.1:$MQTT_PORT"
if [ "${REAL:-0}" = 1 ]; then
  real_backends fanout
  extra=(TRACKER_MQTT_URL="$sim_mqtt" TRACKER_MQTT_SHARE_GROUP="bench$$" TRACKER_MQTT_CLIENT_ID="bench-ingest-$$"
    TRACKER_REDIS_URL="$REDIS_URL" TRACKER_REDIS_PREFIX="bench-$$" TRACKER_DATABASE_URL="$db_url")
  on_exit() {
    drop_real_db
    forget_mqtt_session "$sim_mqtt" "bench-ingest-$$"
    redis-cli -u "$REDIS_URL" --scan --pattern "bench-$$:*" | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null
  }
fi
if [ "${LIMITS:-off}" = on ]; then
  extra+=(TRACKER_CONNECT_RATE=100000/100000 TRACKER_FIX_RATE=100000/100000 TRACKER_MAX_CONNECTIONS_PER_USER=100000)
fi
if [ "${CHURN:-0}" != 0 ]; then
  extra+=(TRACKER_ARCHIVE="${ARCHIVE:-on}" TRACKER_ARCHIVE_AFTER_SECS=1 TRACKER_ARCHIVE_EVERY_SECS=1)
fi
start_tracker $HTTP_PORT $MQTT_PORT "${extra[@]}"
cpu() { cpu_seconds "$pid"; }
delivered() { metric $HTTP_PORT '^tracker_events_delivered_total'; }

"$BIN/tracker-sim" --url "http://127.0.0.1:$HTTP_PORT" --mqtt "$sim_mqtt" \
  --jwt-secret $secret --riders "$ORDERS" --interval-ms "$INTERVAL_MS" --speed 6 --watchers "$PER" \
  --watch-as operator --sse-share 0 --poll-share 0 --offline-share 0 --mqtt-connections 8 \
  --duration-secs "$SECS" --warmup-secs "$WARMUP" $(sim_drain) --quiet >"$dir/sim" 2>"$dir/sim.err" &
sim=$!
# churn: one order created and cancelled every 1/CHURN s until the run ends.
churn() {
  local tok pause i=0 id
  tok=$(admin_token)
  pause=$(awk -v r="$CHURN" 'BEGIN { print 1 / r }')
  while kill -0 "$sim" 2>/dev/null; do
    i=$((i + 1))
    id=$(curl -s -H "authorization: Bearer $tok" -H 'content-type: application/json' \
      -d "{\"biz_order_no\":\"churn-$$-$i\",\"biz_type\":\"bench\",\"customer_id\":\"c$((i % 100))\",\"pickup\":{\"lat\":23.1,\"lon\":113.2},\"dropoff\":{\"lat\":23.2,\"lon\":113.3}}" \
      "localhost:$HTTP_PORT/v1/orders" | sed -n 's/^{"id":"\([0-9]*\)".*/\1/p')
    [ -n "$id" ] && curl -s -o /dev/null -H "authorization: Bearer $tok" -H 'content-type: application/json' \
      -d '{"to":"cancelled","version":1}' "localhost:$HTTP_PORT/v1/orders/$id/status"
    sleep "$pause"
  done
}
[ "${CHURN:-0}" != 0 ] && { churn & }
sleep "$WARMUP"
# On the real backends the broker's, Redis's and PostgreSQL's CPU is not the
# hub's: it is reported beside it.
others=()
[ "${REAL:-0}" = 1 ] && others=($(pgrep -x mosquitto | head -1) $(pgrep -x redis-server | head -1) $(pgrep -f 'postgres: .*bench_fanout_' | tr '\n' ' '))
others_cpu() { pids_cpu "${others[@]}"; }
c0=$(cpu); d0=$(delivered); t0=$(date +%s.%N); o0=$(others_cpu)
measure_window $(( SECS - WARMUP - 2 ))
c1=$(cpu); d1=$(delivered); t1=$(date +%s.%N); o1=$(others_cpu)
wait $sim || { cat "$dir/sim.err"; exit 1; }
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
# The hub's own view: fix ts -> socket flush (tracker_delivery_latency_seconds), so a
# saturated load generator's lag can be told apart from the hub's.
hub_p99=$(curl -s "localhost:$HTTP_PORT/metrics" | awk -F'[{}" ]+' '
  /^tracker_delivery_latency_seconds_bucket/ { for (i = 1; i <= NF; i++) if ($i == "le=") le = $(i + 1) * 1000; n[++k] = $NF; b[k] = le }
  /^tracker_delivery_latency_seconds_count/ { total = $NF }
  END { for (i = 1; i <= k; i++) if (n[i] >= 0.99 * total) { print b[i]; exit } }')
json=$(tail -1 "$dir/sim")
cat "$dir/sim" | sed '$d'
awk -v c0="$c0" -v c1="$c1" -v d0="$d0" -v d1="$d1" -v t0="$t0" -v t1="$t1" -v rss="$rss" -v hub_p99="$hub_p99" \
  -v rate="$RATE" -v orders="$ORDERS" -v per="$PER" -v backends="$([ "${REAL:-0}" = 1 ] && echo mosquitto+redis+postgres || echo embedded)" 'BEGIN {
  dd = d1 - d0; dt = t1 - t0;
  printf "fanout backends=%s rate=%d/s orders=%d watchers=%d window_s=%.1f deliveries_per_s=%.0f hub_cpu_us_per_delivery=%.2f hub_cpu_share=%.2f hub_rss_mib=%.1f hub_p99_ms_le=%s\n",
    backends, rate, orders, orders * per, dt, dd / dt, (c1 - c0) * 1e6 / dd, (c1 - c0) / dt, rss / 1024, hub_p99 }'
echo "$json"
[ "${CHURN:-0}" != 0 ] && echo "churn=${CHURN}/s archive=${ARCHIVE:-on} archived=$(metric $HTTP_PORT '^tracker_archive_orders_total' || true) created=$(metric $HTTP_PORT '^tracker_orders_created_total')"
[ "${REAL:-0}" = 1 ] && awk -v o0="$o0" -v o1="$o1" -v d0="$d0" -v d1="$d1" 'BEGIN {
  printf "backends (mosquitto, redis-server, postgres backends of the run) cpu_us_per_delivery=%.2f\n", (o1 - o0) * 1e6 / (d1 - d0) }'
perf_report "fanout-$RATE"
