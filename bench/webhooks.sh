#!/usr/bin/env bash
# Webhook cost and throughput on one `tracker run` (the in-process log, or
# the Redis one when REDIS_URL is given) under the simulator, with the trip
# watcher on (its estimates are most of the hooked events), and a receiver
# (webhooks/examples/receiver.rs) that checks every signature.
#
# Runs of the same load, off, on, off, on:
#   off   no webhook: the process's CPU per second over a steady window;
#   on    the webhook to the receiver: CPU per second, events sent per second;
#         the extra CPU per event sent is (on - off) / sent, over both pairs.
# Then the sender's throughput alone (webhooks/examples/drain.rs): 20,000
# events of 2000 orders queued, drained to the receiver, with its CPU per
# event and the CPU per append with the webhook off and on (the hub's side).
#
# usage: [REDIS_URL=redis://127.0.0.1:6379] bench/webhooks.sh [RIDERS=2000] [INTERVAL_MS=1000] [SECONDS=40]
set -euo pipefail
cd "$(dirname "$0")/.."
RIDERS="${1:-2000}"
INTERVAL_MS="${2:-1000}"
SECS="${3:-40}"
WARMUP=$(( SECS / 4 ))
HTTP_PORT=18580
MQTT_PORT=18583
HOOK_PORT=18590
. bench/lib.sh
hook_secret=bench-webhook-secret-0123456789
if $build; then
  cargo build --release --quiet --bin tracker --bin tracker-sim
  cargo build --release --quiet -p tracker-webhooks --examples
fi
RECEIVER="${RECEIVER:-target/release/examples/receiver}"
DRAIN="${DRAIN:-target/release/examples/drain}"
extra=()
prefix="bench-$$"
if [ -n "${REDIS_URL:-}" ]; then
  extra=(TRACKER_REDIS_URL="$REDIS_URL")
fi
receiver=""
start_receiver() {
  "$RECEIVER" "127.0.0.1:$HOOK_PORT" "$hook_secret" &
  receiver=$!
  for _ in $(seq 50); do curl -sf "localhost:$HOOK_PORT/count" >/dev/null && return 0; sleep 0.1; done
  echo "the receiver did not start" >&2; return 1
}
stop_receiver() { [ -n "$receiver" ] && kill "$receiver" 2>/dev/null && wait "$receiver" 2>/dev/null; receiver=""; }
on_exit() {
  stop_receiver || true
  [ -n "${REDIS_URL:-}" ] && redis-cli -u "$REDIS_URL" --scan --pattern "$prefix-*" | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null
  return 0
}
hooked() { # events the webhook takes: order changes through the outbox, and estimates
  local o e
  o=$(metric $HTTP_PORT '^tracker_events_appended_total\\{source="outbox"\\}'); e=$(metric $HTTP_PORT '^tracker_trips_etas_total')
  echo $(( ${o:-0} + ${e:-0} ))
}
sent() { local s; s=$(metric $HTTP_PORT '^tracker_webhooks_sent_total'); echo "${s:-0}"; }
sim() {
  "$BIN/tracker-sim" --url "http://127.0.0.1:$HTTP_PORT" --mqtt "mqtt://127.0.0.1:$MQTT_PORT" \
    --jwt-secret $secret --riders "$RIDERS" --interval-ms "$INTERVAL_MS" --speed 6 --watchers 0 \
    --offline-share 0 --duration-secs "$SECS" --quiet >"$dir/sim" 2>"$dir/sim.err" &
  simpid=$!
}
# run MODE: one run; prints "MODE cpu_per_s=… hooked_per_s=… sent_per_s=…".
run() {
  local mode=$1 hook=()
  [ "$mode" = on ] && hook=(TRACKER_WEBHOOK_URL="http://127.0.0.1:$HOOK_PORT/hook" TRACKER_WEBHOOK_SECRET=$hook_secret)
  [ "$mode" = on ] && start_receiver
  start_tracker $HTTP_PORT $MQTT_PORT "${extra[@]}" TRACKER_REDIS_PREFIX="$prefix-$mode" "${hook[@]}"
  sim
  sleep "$WARMUP"
  local c0 h0 s0 t0 c1 h1 s1 t1
  c0=$(cpu_seconds "$pid"); h0=$(hooked); s0=$(sent); t0=$(date +%s.%N)
  measure_window $(( SECS - WARMUP - 2 ))
  c1=$(cpu_seconds "$pid"); h1=$(hooked); s1=$(sent); t1=$(date +%s.%N)
  wait $simpid || { cat "$dir/sim.err"; exit 1; }
  awk -v m="$mode" -v c0="$c0" -v c1="$c1" -v h0="$h0" -v h1="$h1" -v s0="$s0" -v s1="$s1" -v t0="$t0" -v t1="$t1" 'BEGIN {
    dt = t1 - t0; printf "%s cpu_per_s=%.4f hooked_per_s=%.0f sent_per_s=%.0f\n", m, (c1 - c0) / dt, (h1 - h0) / dt, (s1 - s0) / dt }'
  [ "$mode" = on ] && curl -s "localhost:$HOOK_PORT/count" | awk '{print "receiver accepted=" $1 " bad_signatures=" $2}'
  kill "$pid"; wait "$pid" 2>/dev/null || true
  stop_receiver || true
  rm -rf "$dir"
}
log=in-process; [ -n "${REDIS_URL:-}" ] && log=redis
echo "webhooks log=$log riders=$RIDERS interval_ms=$INTERVAL_MS seconds=$SECS"
out=$( { run off; run on; run off; run on; } | tee /dev/stderr )
awk '/^off /{split($2,a,"="); off+=a[2]} /^on /{split($2,a,"="); on+=a[2]; split($4,b,"="); s+=b[2]}
  END { if (s > 0) printf "extra_cpu_us_per_event=%.1f (over both pairs; noise is about 0.01 CPU-s/s)\n", (on - off) * 1e6 / s }' <<<"$out"
start_receiver
"$DRAIN" "http://127.0.0.1:$HOOK_PORT/hook" $hook_secret 2000 10 64
stop_receiver
