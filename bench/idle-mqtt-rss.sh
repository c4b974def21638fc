#!/usr/bin/env bash
# RSS per idle MQTT rider connection: N riders, each logged in with its own
# rider token (keep-alive 60 s), on one `tracker run` (its own listener), and
# the same N on a private Mosquitto (anonymous: Mosquitto checks no token)
# in the same session.
# usage: [BIN=dir] bench/idle-mqtt-rss.sh [N=10000]
# BIN: a folder holding prebuilt `tracker` and `idle_riders` (default: build
# them into target/release). Loopback only; each side held about 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
HTTP_PORT=18580
MQTT_PORT=18583
MOSQ_PORT=18584
ulimit -n "$(ulimit -Hn)"
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --bin tracker --example idle_riders
  BIN=target/release
  cp target/release/examples/idle_riders "$BIN/" 2>/dev/null || true
fi
. bench/lib.sh
dir=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$dir"' EXIT
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# measure NAME PID ADDR SECRET: RSS of PID before and 2 s after N riders connected.
measure() {
  local name=$1 pid=$2 addr=$3 sec=$4 before after cpid
  before=$(rss "$pid")
  "$BIN/idle_riders" "$addr" "$sec" "$N" 30 >"$dir/$name.clients" 2>&1 &
  cpid=$!
  for _ in $(seq 1200); do grep -q ready "$dir/$name.clients" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$dir/$name.clients" || { cat "$dir/$name.clients"; exit 1; }
  sleep 2
  after=$(rss "$pid")
  kill $cpid 2>/dev/null || true
  wait $cpid 2>/dev/null || true
  echo "$name riders=$N rss_before_kib=$before rss_after_kib=$after kib_per_connection=$(awk "BEGIN{printf \"%.2f\", ($after-$before)/$N}")"
}

# Riders log in with their own tokens here (that is what is measured); only
# the connect rate is off, since every rider comes from 127.0.0.1.
connect_rate=()
if "$BIN/tracker" default-config | grep -q '^TRACKER_CONNECT_RATE='; then connect_rate=(TRACKER_CONNECT_RATE=off); fi
env "${connect_rate[@]}" TRACKER_HTTP_ADDR=127.0.0.1:$HTTP_PORT TRACKER_MQTT_ADDR=127.0.0.1:$MQTT_PORT TRACKER_DATA_DIR="$dir" \
  TRACKER_JWT_SECRET=$secret TRACKER_TILE_URL=off RUST_LOG=warn "$BIN/tracker" run >"$dir/out" 2>&1 &
pids+=($!)
wait_healthy $HTTP_PORT "$dir/out"
measure tracker "${pids[0]}" "127.0.0.1:$MQTT_PORT" "$secret"

if command -v mosquitto >/dev/null; then
  printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_connections -1\npersistence false\n' "$MOSQ_PORT" >"$dir/mosquitto.conf"
  mosquitto -c "$dir/mosquitto.conf" >"$dir/mosquitto.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$MOSQ_PORT" 2>/dev/null && break; sleep 0.1; done
  measure mosquitto "${pids[1]}" "127.0.0.1:$MOSQ_PORT" -
fi
