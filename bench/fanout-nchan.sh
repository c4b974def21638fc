#!/usr/bin/env bash
# The fan-out run of bench/fanout.sh against nginx + Nchan (Debian's
# nginx + libnginx-mod-nchan): W WebSocket subscribers over O channels, R
# messages/s published by HTTP POST, from `tracker-sim nchan`. Prints nginx CPU
# (master and workers, utime+stime from /proc) per delivered message over the
# publishing window, deliveries/s, delay percentiles, lost / duplicated.
#
# REDIS_URL=redis://host:port stores the channels in that Redis instead
# (bench/nchan-redis.conf, `nchan_redis_pass` on both locations, keys under a
# namespace of the run's, deleted at the end), and the CPU of its
# redis-server (found by port on this machine) is reported per delivery too.
#
# usage: [REDIS_URL=…] bench/fanout-nchan.sh [RATE=1000] [CHANNELS=2000] [WATCHERS_PER_CHANNEL=5] [SECONDS=60]
set -euo pipefail
cd "$(dirname "$0")/.."
RATE="${1:-1000}"
CHANNELS="${2:-2000}"
PER="${3:-5}"
SECS="${4:-60}"
PORT=18380
command -v nginx >/dev/null && [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] || {
  echo "needs nginx and Nchan: apt-get install nginx libnginx-mod-nchan" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"
# BIN: where a prebuilt tracker-sim is (as in bench/lib.sh); unset: built here.
if [ -z "${BIN:-}" ]; then cargo build --release --quiet --bin tracker-sim; BIN=target/release; fi
dir=$(mktemp -d)
ns="bench-nchan-$$"
redis_pid=""
if [ -n "${REDIS_URL:-}" ]; then
  rport=${REDIS_URL##*:}; rport=${rport%%/*}
  redis_pid=$(pgrep -f "^redis-server [^ ]*:$rport( |$)" | head -1 || true)
  sed -e "s|PREFIX|$dir|g" -e "s|PORT|$PORT|g" -e "s|REDIS|$REDIS_URL|g" -e "s|NAMESPACE|$ns|g" \
    bench/nchan-redis.conf >"$dir/nginx.conf"
else
  sed -e "s|PREFIX|$dir|g" -e "s|PORT|$PORT|g" bench/nchan.conf >"$dir/nginx.conf"
fi
nginx -c "$dir/nginx.conf" -p "$dir" -g 'daemon on;'
cleanup() {
  kill "$(cat "$dir/nginx.pid")" 2>/dev/null; sleep 1; rm -rf "$dir"
  if [ -n "${REDIS_URL:-}" ]; then
    redis-cli -u "$REDIS_URL" --scan --pattern "$ns*" | xargs -r -n 500 redis-cli -u "$REDIS_URL" del >/dev/null
  fi
}
trap cleanup EXIT
for _ in $(seq 50); do [ -s "$dir/nginx.pid" ] && break; sleep 0.1; done
master=$(cat "$dir/nginx.pid")
ticks=$(getconf CLK_TCK)
cpu() { # master and its workers
  local total=0
  for p in $master $(pgrep -P "$master"); do
    total=$(awk -v t="$total" '{print t + $14 + $15}' "/proc/$p/stat")
  done
  awk -v t="$total" -v k="$ticks" 'BEGIN {printf "%.6f", t / k}'
}
redis_cpu() { # 0 without Redis
  [ -n "$redis_pid" ] || { echo 0; return; }
  awk -v k="$ticks" '{printf "%.6f", ($14 + $15) / k}' "/proc/$redis_pid/stat"
}
"$BIN/tracker-sim" nchan --quiet --url "http://127.0.0.1:$PORT" --channels "$CHANNELS" \
  --watchers "$PER" --rate "$RATE" --duration-secs "$SECS" >"$dir/sim" 2>"$dir/sim.err" &
sim=$!
want=$(( CHANNELS * PER ))
for _ in $(seq 1200); do
  n=$(ss -Htn state established "( sport = :$PORT )" | wc -l)
  [ "$n" -ge "$want" ] && break
  sleep 0.1
done
sleep 1
c0=$(cpu); r0=$(redis_cpu); t0=$(date +%s.%N)
sleep $(( SECS - 2 ))
c1=$(cpu); r1=$(redis_cpu); t1=$(date +%s.%N)
wait $sim || { cat "$dir/sim.err"; exit 1; }
rss=0
for p in $(pgrep -P "$master"); do rss=$(( rss + $(awk '/VmRSS/ {print $2}' "/proc/$p/status") )); done
json=$(tail -1 "$dir/sim")
sed '$d' "$dir/sim"
dps=$(echo "$json" | sed -E 's/.*"delivered_per_s":([0-9.]+).*/\1/')
awk -v c0="$c0" -v c1="$c1" -v r0="$r0" -v r1="$r1" -v t0="$t0" -v t1="$t1" -v dps="$dps" -v rss="$rss" \
  -v rate="$RATE" -v ch="$CHANNELS" -v per="$PER" 'BEGIN {
  dt = t1 - t0;
  printf "nchan rate=%d/s channels=%d watchers=%d window_s=%.1f deliveries_per_s=%.0f nginx_cpu_us_per_delivery=%.2f nginx_cpu_share=%.2f workers_rss_mib=%.1f redis_cpu_us_per_delivery=%.2f\n",
    rate, ch, ch * per, dt, dps, (c1 - c0) * 1e6 / (dps * dt), (c1 - c0) / dt, rss / 1024, (r1 - r0) * 1e6 / (dps * dt) }'
echo "$json"
