# Shared by the bench scripts (sourced): one release `tracker run` on fixed
# loopback ports, and its CPU and metrics read from outside.

secret=bench-secret-0123456789
# BIN: where the binaries are. Unset: target/release, built first; set (say, to
# a copy of an earlier commit's binaries, for a before/after pair): used as is.
if [ -n "${BIN:-}" ]; then build=false; else BIN=target/release; build=true; fi

# load_settings: the settings a load run needs, as KEY=VALUE lines, for the
# binary in $BIN: riders' logins off (the simulator's phones share a few
# connections for thousands of riders, a trusted network) and the limits off
# (one loopback address opens every connection and sends every fix). Only
# keys the binary knows are printed, so binaries of earlier commits run too.
load_settings() {
  local known
  known=$("$BIN/tracker" default-config)
  # The simulator's set-up is a burst of every rider's API calls at once: the
  # API's load shedding (TRACKER_HTTP_MAX_IN_FLIGHT) is lifted too.
  for kv in TRACKER_MQTT_AUTH=none TRACKER_CONNECT_RATE=off TRACKER_FIX_RATE=off \
    TRACKER_MAX_CONNECTIONS_PER_USER=off TRACKER_HTTP_MAX_IN_FLIGHT=1000000; do
    if grep -q "^${kv%%=*}=" <<<"$known"; then echo "$kv"; fi
  done
}

# sim_drain: `--drain-secs 5` when the simulator in $BIN knows it (earlier
# binaries do not): on the real backends a fix can be in flight for a few
# seconds at the end of a run, and what arrives after the drain counts as lost.
sim_drain() {
  if "$BIN/tracker-sim" --help 2>/dev/null | grep -q -- --drain-secs; then echo "--drain-secs 5"; fi
}

# wait_healthy PORT LOG: waits until the process on PORT answers /healthz;
# prints LOG and fails if it never does.
wait_healthy() {
  for _ in $(seq 150); do curl -sf "localhost:$1/healthz" >/dev/null && return 0; sleep 0.1; done
  cat "$2" >&2
  return 1
}

# start_tracker HTTP_PORT MQTT_PORT [KEY=VALUE ...]: builds, starts `tracker run`
# with a fresh data dir, tiles and limits off, waits until it serves; sets
# $pid and $dir and removes both at exit (plus whatever `on_exit` does, if defined).
start_tracker() {
  local http=$1 mqtt=$2
  shift 2
  ulimit -n "$(ulimit -Hn)"
  if $build; then cargo build --release --quiet --bin tracker --bin tracker-sim; fi
  dir=$(mktemp -d)
  local load
  mapfile -t load < <(load_settings)
  env "${load[@]}" TRACKER_HTTP_ADDR="127.0.0.1:$http" TRACKER_MQTT_ADDR="127.0.0.1:$mqtt" TRACKER_DATA_DIR="$dir" \
    TRACKER_JWT_SECRET=$secret TRACKER_TILE_URL=off RUST_LOG=warn "$@" \
    "$BIN/tracker" run >"$dir/out" 2>&1 &
  pid=$!
  trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; declare -F on_exit >/dev/null && on_exit; rm -rf "$dir"' EXIT
  wait_healthy "$http" "$dir/out"
}

# cpu_seconds PID: utime+stime of the process so far, seconds.
cpu_seconds() {
  awk -v t="$(getconf CLK_TCK)" '{printf "%.6f", ($14 + $15) / t}' "/proc/$1/stat"
}

# pids_cpu PID...: cpu_seconds summed over the processes (one gone counts 0).
pids_cpu() {
  local t=0 p
  for p in "$@"; do t=$(awk -v t="$t" -v c="$(cpu_seconds "$p" 2>/dev/null || echo 0)" 'BEGIN{printf "%.6f", t+c}'); done
  echo "$t"
}

# real_backends TAG: the real backends of a REAL=1 run: REDIS_URL (default the
# local Redis), sim_mqtt (MQTT_URL, default the local Mosquitto), and a fresh
# PostgreSQL database `bench_TAG_<pid>` on PG_ADMIN's server, named in $db
# and $db_url; drop_real_db removes it.
real_backends() {
  REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
  PG_ADMIN="${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/test}"
  sim_mqtt="${MQTT_URL:-mqtt://127.0.0.1:1883}"
  db="bench_$1_$$"
  db_url="${PG_ADMIN%/*}/$db"
  psql -q "$PG_ADMIN" -c "CREATE DATABASE $db" >/dev/null
}
drop_real_db() {
  psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
}

# forget_mqtt_session MQTT_URL CLIENT_ID: ends the persistent session a run's
# ingest left on the broker (one clean connect under its client id). Left
# alone, the broker keeps queueing every fix for it, and a later run under the
# same id would inherit its subscriptions (a share group of another run
# included) and receive each fix twice.
forget_mqtt_session() {
  local hostport=${1#mqtt://}
  command -v mosquitto_sub >/dev/null || { echo "mosquitto_sub missing: session $2 stays on the broker" >&2; return 0; }
  mosquitto_sub -h "${hostport%:*}" -p "${hostport##*:}" -i "$2" -t tracker-bench/forget -E -W 5 >/dev/null 2>&1 || true
}

# metric PORT PATTERN: the value of the first /metrics line matching PATTERN (awk regex).
metric() {
  curl -s "localhost:$1/metrics" | awk -v p="$2" '$0 ~ p {print $NF; exit}'
}

# admin_token: an HS256 admin token for $secret, valid one day (for processes
# that print none, such as `tracker hub`).
admin_token() {
  local b64='openssl base64 -A | tr "+/" "-_" | tr -d "="' now
  now=$(date +%s)
  local h p
  h=$(printf '{"alg":"HS256","typ":"JWT"}' | eval "$b64")
  p=$(printf '{"sub":"bench","role":"admin","exp":%d}' $((now + 86400)) | eval "$b64")
  printf '%s.%s.%s' "$h" "$p" "$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -hmac "$secret" -binary | eval "$b64")"
}

# measure_window SECONDS: waits SECONDS; with PERF=1, samples $pid with
# `perf record -g` meanwhile (499 Hz) and keeps the data for perf_report.
measure_window() {
  if [ "${PERF:-0}" = 1 ]; then
    perf record -q -F 499 -g -p "$pid" -o "$dir/perf.data" -- sleep "$1" 2>/dev/null
  else
    sleep "$1"
  fi
}

# perf_report NAME: with PERF=1, writes the window's profile by thread and by
# symbol (children, above 3 %) to target/bench/NAME.perf.txt.
perf_report() {
  [ "${PERF:-0}" = 1 ] || return 0
  mkdir -p target/bench
  cp "$dir/perf.data" "target/bench/$1.perf.data"
  { perf report -i "$dir/perf.data" --no-children --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9]'
    perf report -i "$dir/perf.data" --children --sort symbol --percent-limit 3 --stdio -g none 2>/dev/null | grep -E '^ +[0-9]'
  } | sed -E 's/ {2,}/ /g' > "target/bench/$1.perf.txt" || true
  echo "profile: target/bench/$1.perf.txt"
}
