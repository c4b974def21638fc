#!/usr/bin/env bash
# Ingest throughput: fixes/s from MQTT publishes into the event log, on one
# `tracker run` with its own MQTT listener and, when REDIS_URL is given, the Redis
# log (else the in-process one). tracker-sim publishes from O riders at R
# fixes/s with no watchers; the log's appends are read from the hub's
# tracker_events_appended_total{source="ingest"} over a steady window, with
# the process's CPU per appended fix.
#
# PERF=1 also profiles the process over the window (target/bench/ingest-RATE.perf.txt).
#
# REDIS_URL may be a Redis Cluster's comma-separated seed list
# (scripts/redis-cluster start DIR prints one). The CPU of the redis-server
# processes on this machine that serve it (found by port) is reported too.
#
# REAL=1 runs it on the real backends: riders publish to Mosquitto (MQTT_URL,
# default mqtt://127.0.0.1:1883) and the process consumes on a shared
# subscription, the log on Redis (REDIS_URL, default the local one), the store
# on a fresh PostgreSQL database (PG_ADMIN names the server); the CPU of
# mosquitto and of the run's PostgreSQL backends is reported beside Redis's.
# TRACKER_TRACK_QUEUE=redis (passed through) sends track points through Redis.
#
# usage: [REDIS_URL=redis://127.0.0.1:6379] [REAL=1] bench/ingest.sh [RATE=20000] [RIDERS=2000] [SECONDS=40]
set -euo pipefail
cd "$(dirname "$0")/.."
RATE="${1:-20000}"
RIDERS="${2:-2000}"
SECS="${3:-40}"
WARMUP=$(( SECS / 4 ))
INTERVAL_MS=$(( RIDERS * 1000 / RATE ))
HTTP_PORT=18480
MQTT_PORT=18483
. bench/lib.sh
extra=()
sim_mqtt="mqtt://127.0.0.1:$MQTT_PORT"
others=() # processes of the backends other than Redis whose CPU is reported
if [ "${REAL:-0}" = 1 ]; then
  real_backends ingest
  extra=(TRACKER_MQTT_URL="$sim_mqtt" TRACKER_MQTT_SHARE_GROUP="bench$$" TRACKER_MQTT_CLIENT_ID="bench-ingest-$$"
    TRACKER_DATABASE_URL="$db_url")
fi
[ -n "${REDIS_URL:-}" ] && extra+=(TRACKER_REDIS_URL="$REDIS_URL" TRACKER_REDIS_PREFIX="bench-$$")
seeds=()
[ -n "${REDIS_URL:-}" ] && IFS=, read -r -a seeds <<<"$REDIS_URL"
on_exit() { # the run's orders never end, so their Redis keys never expire
  local s
  [ -n "${db:-}" ] && drop_real_db && forget_mqtt_session "$sim_mqtt" "bench-ingest-$$"
  for s in "${seeds[@]}"; do # on a cluster each node scans and deletes its own keys
    redis-cli -u "$s" --scan --pattern "bench-$$:*" | xargs -r -n 500 redis-cli -u "$s" del >/dev/null
  done
}
# The redis-server processes behind the seeds, by their port.
redis_pids=()
for s in "${seeds[@]}"; do
  port=${s##*:}; port=${port%%/*}
  p=$(pgrep -f "^redis-server [^ ]*:$port( |$)" | head -1 || true)
  [ -n "$p" ] && redis_pids+=("$p")
done
redis_cpu() { pids_cpu "${redis_pids[@]}"; }
start_tracker $HTTP_PORT $MQTT_PORT "${extra[@]}"
cpu() { cpu_seconds "$pid"; }
if [ "${REAL:-0}" = 1 ]; then
  others=($(pgrep -x mosquitto | head -1) $(pgrep -f "postgres: .*$db" | tr '\n' ' '))
fi
others_cpu() { pids_cpu "${others[@]}"; }
appended() { metric $HTTP_PORT '^tracker_events_appended_total\\{source="ingest"\\}'; }

"$BIN/tracker-sim" --url "http://127.0.0.1:$HTTP_PORT" --mqtt "$sim_mqtt" \
  --jwt-secret $secret --riders "$RIDERS" --interval-ms "$INTERVAL_MS" --speed 6 --watchers 0 \
  --offline-share 0 --mqtt-connections 8 --duration-secs "$SECS" --quiet >"$dir/sim" 2>"$dir/sim.err" &
sim=$!
sleep "$WARMUP"
c0=$(cpu); r0=$(redis_cpu); o0=$(others_cpu); a0=$(appended); t0=$(date +%s.%N)
measure_window $(( SECS - WARMUP - 2 ))
c1=$(cpu); r1=$(redis_cpu); o1=$(others_cpu); a1=$(appended); t1=$(date +%s.%N)
wait $sim || { cat "$dir/sim.err"; exit 1; }
published=$(tail -1 "$dir/sim" | sed -E 's/.*"fixes_per_s":([0-9.]+).*/\1/')
backend=in-process
[ -n "${REDIS_URL:-}" ] && backend="redis(${#seeds[@]} seeds, ${#redis_pids[@]} servers here)"
[ "${REAL:-0}" = 1 ] && backend="$backend+mosquitto+postgres track_queue=${TRACKER_TRACK_QUEUE:-redis}"
awk -v c0="$c0" -v c1="$c1" -v r0="$r0" -v r1="$r1" -v a0="${a0:-0}" -v a1="${a1:-0}" -v t0="$t0" -v t1="$t1" \
  -v o0="$o0" -v o1="$o1" -v pub="$published" -v backend="$backend" 'BEGIN {
  dt = t1 - t0; da = a1 - a0; n = (da > 0 ? da : 1);
  printf "ingest log=%s published_per_s=%.0f appended_per_s=%.0f cpu_us_per_fix=%.2f cpu_share=%.2f redis_cpu_us_per_fix=%.2f mosquitto_postgres_cpu_us_per_fix=%.2f\n",
    backend, pub, da / dt, (c1 - c0) * 1e6 / n, (c1 - c0) / dt, (r1 - r0) * 1e6 / n, (o1 - o0) * 1e6 / n }'
perf_report "ingest-$RATE${REDIS_URL:+-redis}"
