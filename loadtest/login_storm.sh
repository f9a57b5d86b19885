#!/usr/bin/env bash
# A login storm next to logged-in users: how many logins/s the API verifies (argon2id with the
# configured OWASP parameters, off the event loop, bounded), and what the storm does to the p99 of
# GET /api/v1/me for candidates who are already logged in.
#
#   loadtest/login_storm.sh [WORKERS] [LOGIN_CONNECTIONS] [SECONDS]
#
# Phase 1: a login storm alone, at saturation (LOGIN_CONNECTIONS connections, more than the hash
# slots and queue admit, so the excess is shed with 503 + Retry-After): logins/s and per core.
# Phase 2: GET /api/v1/me for logged-in users alone, paced (ME_CONNECTIONS users, ME_PAUSE_MS
# between clicks). Phase 3: both at once: the p99 of GET /api/v1/me during the storm.
# Needs wrk (Debian package `wrk`; installed with apt when missing and possible). Everything runs
# on loopback in a temporary data directory and is stopped at the end; each wrk run is bounded by
# SECONDS. Run it on an otherwise idle machine: it reports the load average it started with.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=${1:-2}
LOGIN_CONNECTIONS=${2:-128}
SECONDS_PER_RUN=${3:-20}
ME_CONNECTIONS=${ME_CONNECTIONS:-64}
ME_PAUSE_MS=${ME_PAUSE_MS:-100}  # per connection: ~64 users clicking every 0.1 s, ≈600 req/s
LOAD_BEFORE=$(cut -d' ' -f1 /proc/loadavg)
source loadtest/common.sh
API_PORT=18110
setup_services logins
# One shared argon2id hash (same parameters as real ones): verifying costs what a real login costs.
"$BIN/examreg" seed --candidates 5000 --credentials-out "$DIR/logins.csv" \
  --load-test-password Load-test-2026 >/dev/null 2>&1
spawn api.log "$BIN/examreg" serve --workers "$WORKERS" --port $API_PORT
wait_ready "http://127.0.0.1:$API_PORT/readyz"
# The logged-in users: 200 sessions opened before the storm (their forms are not needed).
"$BIN/python" -m loadtest.prepare_accept "http://127.0.0.1:$API_PORT" "$DIR/logins.csv" \
  "$DIR/sessions.tsv" --limit 200 2>/dev/null
me() { wrk -t1 -c"$ME_CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency \
  -s loadtest/me.lua "http://127.0.0.1:$API_PORT" -- "$DIR/sessions.tsv" "$ME_PAUSE_MS" 2>&1; }
storm() { wrk -t1 -c"$LOGIN_CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s loadtest/login.lua \
  "http://127.0.0.1:$API_PORT" -- "$1" 2>&1; }
pct() { echo "$1" | awk -v p="$2%" '$1 == p {print $2}'; }
rate() { echo "$1" | awk '/Requests\/sec/ {print $2}'; }
field() { echo "$1" | awk -v k="$2" '/^logins / {for (i = 1; i <= NF; i++) {split($i, kv, "=");
  if (kv[1] == k) print kv[2]}}'; }
per_s() { awk -v n="$(field "$1" ok)" -v s="$(field "$1" seconds)" 'BEGIN {printf "%.1f", n / s}'; }
cores=$(nproc)
per_core() { awk -v r="$1" -v c="$cores" 'BEGIN {printf "%.1f", r / c}'; }

# The storm logs in accounts other than the 200 logged-in users, half of them in each phase.
tail -n +202 "$DIR/logins.csv" | awk 'NR % 2 == 1' >"$DIR/storm-alone.csv"
tail -n +202 "$DIR/logins.csv" | awk 'NR % 2 == 0' >"$DIR/storm-mixed.csv"

alone=$(storm "$DIR/storm-alone.csv")                   # 1. logins at saturation, nothing else
baseline=$(me)                                          # 2. logged-in users, no storm
storm "$DIR/storm-mixed.csv" >"$DIR/mixed.txt" &        # 3. both at once
storm_pid=$!
sleep 1  # the storm reaches saturation before the logged-in users are measured
during=$(me)
wait "$storm_pid"
mixed=$(cat "$DIR/mixed.txt")
hash_ms=$(curl -s "http://127.0.0.1:$API_PORT/metrics" | awk '
  /^examreg_password_hash_seconds_sum\{.*operation="verify"/ {s += $2}
  /^examreg_password_hash_seconds_count\{.*operation="verify"/ {n += $2}
  END {if (n) printf "%.1f", 1000 * s / n; else print "n/a"}')

echo "login storm: $LOGIN_CONNECTIONS connections, ${SECONDS_PER_RUN}s per phase," \
  "$WORKERS API workers, $cores cores, load average before: $LOAD_BEFORE"
echo "  argon2id ${EXAMREG_ARGON2_MEMORY_KIB:-19456} KiB, ${EXAMREG_ARGON2_TIME_COST:-2} passes," \
  "${EXAMREG_ARGON2_PARALLELISM:-1} lane; mean verify ${hash_ms} ms (in a slot, CPU waits included)"
printf '%-34s %10s %10s %10s %10s %10s\n' "logins (POST /api/v1/auth/login)" "ok/s" "per core" \
  "503 shed" "p50" "p99"
for phase in alone mixed; do
  out=${!phase}
  label=$([ "$phase" = alone ] && echo "  storm alone" || echo "  storm + logged-in users")
  printf '%-34s %10s %10s %10s %10s %10s\n' "$label" "$(per_s "$out")" \
    "$(per_core "$(per_s "$out")")" "$(field "$out" shed)" "$(pct "$out" 50)" "$(pct "$out" 99)"
done
printf '%-34s %10s %10s %10s\n' "GET /api/v1/me ($ME_CONNECTIONS users)" "req/s" p50 p99
printf '%-34s %10s %10s %10s\n' "  alone" "$(rate "$baseline")" "$(pct "$baseline" 50)" \
  "$(pct "$baseline" 99)"
printf '%-34s %10s %10s %10s\n' "  during the login storm" "$(rate "$during")" "$(pct "$during" 50)" \
  "$(pct "$during" 99)"
