#!/usr/bin/env bash
# Chaos under a steady load: two `tracker hub`, two `tracker ingest`, a
# private Redis (AOF, as compose.yaml runs it), a private Mosquitto (the
# persistence lines of docs/brokers/mosquitto.conf) and a database of its own
# on the machine's PostgreSQL. tracker-sim rides RIDERS riders with watchers
# spread over both hubs (a watcher moves to the other hub after a drop) while
# this script, at fixed times:
#    8 s  kill -9 hub B (the relay of its order changes, its watchers), 4 s later start it again
#   20 s  kill -9 ingest 1, 4 s later start it again
#   32 s  Redis stopped (SIGTERM) and started again (its AOF keeps the data)
#   44 s  Mosquitto stopped (SIGTERM) and started again
# Reported: the simulator's counts (events lost and duplicated at the
# watchers, reconnects, resumes with a replay) and, from the store, fixes
# published against track points stored (a fix lost between phone and store).
# WEBHOOK=1 also sends every order event to a receiver
# (webhooks/examples/receiver.rs) from both hubs and reports the log's
# events but fixes that it never got, and how many it got twice.
#
# usage: [WEBHOOK=1] bench/chaos.sh [RIDERS=40] [INTERVAL_MS=500] [SECONDS=60]
# Needs: redis-server, mosquitto, psql, jq and PostgreSQL on 127.0.0.1:5432 (user postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
RIDERS="${1:-40}"
INTERVAL_MS="${2:-500}"
SECS="${3:-60}"
. bench/lib.sh
if $build; then cargo build --release --quiet --bin tracker --bin tracker-sim; fi
if [ "${WEBHOOK:-0}" = 1 ] && $build; then cargo build --release --quiet -p tracker-webhooks --example receiver; fi
ulimit -n "$(ulimit -Hn)"

work=$(mktemp -d)
chmod 777 "$work" # Mosquitto started as root writes as the user `mosquitto`
REDIS_PORT=17379 MQTT_PORT=17883 HUB_A=17080 HUB_B=17081 OPS_1=17091 OPS_2=17092 HOOK_PORT=17095
db="chaos_$$"
pids=()
# crash PID: kill -9, and reap it quietly.
crash() { kill -9 "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
cleanup() {
  for p in "${pids[@]}"; do crash "$p"; done
  [ -n "${redis_pid:-}" ] && crash "$redis_pid"
  [ -n "${mqtt_pid:-}" ] && crash "$mqtt_pid"
  [ -n "${hook_pid:-}" ] && crash "$hook_pid"
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

start_redis() {
  redis-server --port $REDIS_PORT --bind 127.0.0.1 --save "" --appendonly yes --appendfsync everysec \
    --dir "$work" --logfile "$work/redis.log" &
  redis_pid=$!
  for _ in $(seq 100); do redis-cli -p $REDIS_PORT ping >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "redis did not start" >&2; return 1
}
start_mosquitto() {
  { printf 'listener %s 127.0.0.1\nallow_anonymous true\n' $MQTT_PORT
    grep -E '^(persist|autosave|max_queued)' docs/brokers/mosquitto.conf | sed "s#/var/lib/mosquitto/#$work/#"
  } >"$work/mosquitto.conf"
  mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
  mqtt_pid=$!
  for _ in $(seq 100); do timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$MQTT_PORT" 2>/dev/null && return 0; sleep 0.05; done
  echo "mosquitto did not start" >&2; return 1
}

psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $db" >/dev/null
start_redis
start_mosquitto
mapfile -t load < <(load_settings)
common=("${load[@]}" TRACKER_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" TRACKER_REDIS_PREFIX=chaos
  TRACKER_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" TRACKER_JWT_SECRET=$secret
  TRACKER_MQTT_URL="mqtt://127.0.0.1:$MQTT_PORT" TRACKER_ARCHIVE=off TRACKER_TILE_URL=off RUST_LOG=warn)
hook_secret=chaos-webhook-secret-0123456789
if [ "${WEBHOOK:-0}" = 1 ]; then
  RECEIVER_PRINT=1 "${RECEIVER:-target/release/examples/receiver}" "127.0.0.1:$HOOK_PORT" $hook_secret >"$work/hooks.out" &
  hook_pid=$!
  common+=(TRACKER_WEBHOOK_URL="http://127.0.0.1:$HOOK_PORT/hook" TRACKER_WEBHOOK_SECRET=$hook_secret TRACKER_WEBHOOK_TIMEOUT_SECS=2)
fi

# start NAME MODE HTTP_PORT [KEY=VALUE ...]: one process; its pid in the variable NAME.
start() {
  local name=$1 mode=$2 port=$3
  shift 3
  env "${common[@]}" TRACKER_HTTP_ADDR="127.0.0.1:$port" "$@" "$BIN/tracker" "$mode" >>"$work/$name.log" 2>&1 &
  printf -v "$name" '%s' $!
  pids+=($!)
  wait_healthy "$port" "$work/$name.log"
}
start hub_a hub $HUB_A
start hub_b hub $HUB_B
start ingest_1 ingest $OPS_1 TRACKER_MQTT_CLIENT_ID=chaos-ingest-1
start ingest_2 ingest $OPS_2 TRACKER_MQTT_CLIENT_ID=chaos-ingest-2

TRACKER_JWT_SECRET=$secret "$BIN/tracker-sim" --url "http://127.0.0.1:$HUB_A" \
  --watch-url "http://127.0.0.1:$HUB_A,http://127.0.0.1:$HUB_B" \
  --mqtt "mqtt://127.0.0.1:$MQTT_PORT" --riders "$RIDERS" --interval-ms "$INTERVAL_MS" \
  --watchers 4 --sse-share 0.25 --poll-share 0.25 --watch-as operator \
  --duration-secs "$SECS" >"$work/sim.out" 2>"$work/sim.err" &
sim=$!
started_ms=$(date +%s%3N) # the faults' times below are from here

at() { sleep "$1"; }
at 8;  echo "t=8s   kill -9 hub B";        crash "$hub_b"
at 4;  echo "t=12s  hub B back";           start hub_b hub $HUB_B
at 8;  echo "t=20s  kill -9 ingest 1";     crash "$ingest_1"
at 4;  echo "t=24s  ingest 1 back";        start ingest_1 ingest $OPS_1 TRACKER_MQTT_CLIENT_ID=chaos-ingest-1
at 8;  echo "t=32s  Redis restarted";      kill -TERM "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; start_redis
at 12; echo "t=44s  Mosquitto restarted";  kill -TERM "$mqtt_pid"; wait "$mqtt_pid" 2>/dev/null || true; start_mosquitto

wait "$sim" || { cat "$work/sim.err" >&2; exit 1; }
sleep 3 # the last track points reach the store
report=$(tail -n 1 "$work/sim.out")
stored=$(psql -tA -h 127.0.0.1 -U postgres -d "$db" -c "SELECT count(*) FROM track_points")
jq -r --argjson stored "$stored" '
  "published fixes=\(.fixes) stored track points=\($stored) (missing \(.fixes - $stored))",
  "watchers: \(.watchers | to_entries | map("\(.value) \(.key)") | join(", ")), without a snapshot \(.watchers_without_snapshot)",
  "events expected=\(.expected) delivered=\(.delivered) lost=\(.lost) duplicated=\(.duplicated)",
  "reconnects=\(.reconnects) resumed with a replay=\(.resumed) api errors=\(.api_errors) publish errors=\(.publish_errors)",
  "delay ms p50=\(.delay_ms.p50) p99=\(.delay_ms.p99) max=\(.delay_ms.max)",
  "recovery (a drop to the next answer) ms p50=\(.recover_ms.p50) p99=\(.recover_ms.p99) max=\(.recover_ms.max) over \(.recover_ms.count) reconnects"' <<<"$report"
# Where each loss was: the order, the transport, the seqs missed and when
# (seconds from the start, to set beside the faults' times above), or a
# watcher that stopped before its order's last events.
jq -r --argjson t0 "$started_ms" '.losses[] |
  "lost: order \(.order) over \(.transport) (watched from seq \(.first_seen)): " +
  ([.gaps[] | "seqs \(.from)-\(.to) found at t=\(((.at_ms - $t0) / 100 | round) / 10)s \(if .announced then "(announced: a recovered:false snapshot)" else "(skipped silently)" end)"] | join(", ")) +
  (if (.final_seq // 0) > (.last_seen // 0) then " ; stopped at seq \(.last_seen) of \(.final_seq)" else "" end)' <<<"$report"


if [ "${WEBHOOK:-0}" = 1 ]; then
  # Every event but fixes in the log against what the receiver got, once the
  # senders had time to catch up (a retry waits at most 10 min; here the
  # faults are over long before the end).
  python3 - "$REDIS_PORT" "$work/hooks.out" "${WEBHOOK_WAIT:-60}" <<'PY'
import collections, json, subprocess, sys, time
port, path, wait = sys.argv[1], sys.argv[2], float(sys.argv[3])
def cli(*a):
    return subprocess.run(["redis-cli", "-p", port, "--raw", *a], capture_output=True, text=True).stdout.splitlines()
want = set()
for key in cli("--scan", "--pattern", "chaos:{*}:log"):
    lines = cli("XRANGE", key, "-", "+")
    for i, l in enumerate(lines):
        if l == "j":
            f = json.loads(lines[i + 1])
            if f.get("t") != "pos":
                want.add((f["order"], f["seq"]))
deadline = time.time() + wait
while True:
    got = collections.Counter()
    for l in open(path):
        f = json.loads(l)
        got[(f["order"], f["seq"])] += 1
    missing = want - set(got)
    if not missing or time.time() > deadline:
        break
    time.sleep(1)
dups = sum(n - 1 for n in got.values())
extra = set(got) - want
print(f"webhook: events but fixes in the log={len(want)} received={len(set(got))} missing={len(missing)} received twice or more={dups} not in the log={len(extra)}")
for o, s in sorted(missing)[:20]:
    print(f"webhook missing: order {o} seq {s}")
PY
fi
