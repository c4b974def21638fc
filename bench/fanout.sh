#!/usr/bin/env bash
# Fan-out on one `tracker run` process (embedded broker, in-process log, SQLite):
# W watchers over O orders (one rider each) at R fixes/s, from tracker-sim in a
# second process. Prints hub CPU per delivered message (utime+stime from /proc
# over a steady window, divided by the hub's own tracker_events_delivered_total
# over the same window), deliveries/s, and the simulator's delay percentiles
# and lost / duplicated counts.
#
# usage: bench/fanout.sh [RATE=1000] [ORDERS=2000] [WATCHERS_PER_ORDER=5] [SECONDS=60]
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
start_tracker $HTTP_PORT $MQTT_PORT
cpu() { cpu_seconds "$pid"; }
delivered() { metric $HTTP_PORT '^tracker_events_delivered_total'; }

target/release/tracker-sim --url "http://127.0.0.1:$HTTP_PORT" --mqtt "mqtt://127.0.0.1:$MQTT_PORT" \
  --jwt-secret $secret --riders "$ORDERS" --interval-ms "$INTERVAL_MS" --speed 6 --watchers "$PER" \
  --watch-as operator --sse-share 0 --poll-share 0 --offline-share 0 --mqtt-connections 8 \
  --duration-secs "$SECS" --warmup-secs "$WARMUP" --quiet >"$dir/sim" 2>"$dir/sim.err" &
sim=$!
sleep "$WARMUP"
c0=$(cpu); d0=$(delivered); t0=$(date +%s.%N)
if [ "${PERF:-0}" = 1 ]; then
  mkdir -p target/bench
  perf record -q -F 499 -g -p "$pid" -o "$dir/perf.data" -- sleep $(( SECS - WARMUP - 2 )) 2>/dev/null
else
  sleep $(( SECS - WARMUP - 2 ))
fi
c1=$(cpu); d1=$(delivered); t1=$(date +%s.%N)
wait $sim || { cat "$dir/sim.err"; exit 1; }
rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
# The hub's own view: fix ts -> socket flush (tracker_delivery_latency_ms), so a
# saturated load generator's lag can be told apart from the hub's.
hub_p99=$(curl -s "localhost:$HTTP_PORT/metrics" | awk -F'[{}" ]+' '
  /^tracker_delivery_latency_ms_bucket/ { for (i = 1; i <= NF; i++) if ($i == "le=") le = $(i + 1); n[++k] = $NF; b[k] = le }
  /^tracker_delivery_latency_ms_count/ { total = $NF }
  END { for (i = 1; i <= k; i++) if (n[i] >= 0.99 * total) { print b[i]; exit } }')
json=$(tail -1 "$dir/sim")
cat "$dir/sim" | sed '$d'
awk -v c0="$c0" -v c1="$c1" -v d0="$d0" -v d1="$d1" -v t0="$t0" -v t1="$t1" -v rss="$rss" -v hub_p99="$hub_p99" \
  -v rate="$RATE" -v orders="$ORDERS" -v per="$PER" 'BEGIN {
  dd = d1 - d0; dt = t1 - t0;
  printf "fanout rate=%d/s orders=%d watchers=%d window_s=%.1f deliveries_per_s=%.0f hub_cpu_us_per_delivery=%.2f hub_cpu_share=%.2f hub_rss_mib=%.1f hub_p99_ms_le=%s\n",
    rate, orders, orders * per, dt, dd / dt, (c1 - c0) * 1e6 / dd, (c1 - c0) / dt, rss / 1024, hub_p99 }'
echo "$json"
if [ "${PERF:-0}" = 1 ]; then
  cp "$dir/perf.data" "target/bench/fanout-$RATE.perf.data"
  { perf report -i "$dir/perf.data" --no-children --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9]'
    perf report -i "$dir/perf.data" --children --sort symbol --percent-limit 3 --stdio -g none 2>/dev/null | grep -E '^ +[0-9]'
  } | sed -E 's/ {2,}/ /g' > "target/bench/fanout-$RATE.perf.txt" || true
  echo "profile: target/bench/fanout-$RATE.perf.txt"
fi
