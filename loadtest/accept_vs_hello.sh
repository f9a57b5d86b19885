#!/usr/bin/env bash
# Side by side on this machine: PUT /api/v1/me/registration (full path: session, validation,
# durable enqueue; a writer draining at the same time) vs a bare hello-world endpoint on the same
# server stack (Starlette on uvicorn+uvloop+httptools), same worker count, same load generator.
#
#   loadtest/accept_vs_hello.sh [WORKERS] [CONNECTIONS] [SECONDS]
#
# Needs wrk (Debian package `wrk`; installed with apt when missing and possible). Everything runs
# on loopback, in a temporary data directory, and is stopped at the end; each wrk run is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=${1:-2}
CONNECTIONS=${2:-64}
SECONDS_PER_RUN=${3:-15}
source loadtest/common.sh
API_PORT=18100
HELLO_PORT=18101
setup_services accept
"$BIN/examreg" seed --candidates 1000 --credentials-out "$DIR/logins.csv" \
  --load-test-password Load-test-2026 >/dev/null 2>&1
spawn api.log "$BIN/examreg" serve --workers "$WORKERS" --port $API_PORT
spawn writer.log "$BIN/examreg" writer --processes 1
spawn hello.log "$BIN/uvicorn" loadtest.hello_app:app --loop uvloop --http httptools \
  --workers "$WORKERS" --no-access-log --log-level warning --port $HELLO_PORT
wait_ready "http://127.0.0.1:$API_PORT/readyz" "http://127.0.0.1:$HELLO_PORT/hello"
"$BIN/python" -m loadtest.prepare_accept "http://127.0.0.1:$API_PORT" "$DIR/logins.csv" \
  "$DIR/accept.tsv" --limit 1000 2>/dev/null
run() { wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency "$@" 2>&1; }
hello=$(run "http://127.0.0.1:$HELLO_PORT/hello")
accept=$(run -s loadtest/accept.lua "http://127.0.0.1:$API_PORT" -- "$DIR/accept.tsv")
rate() { echo "$1" | awk '/Requests\/sec/ {print $2}'; }
pct() { echo "$1" | awk -v p="$2%" '$1 == p {print $2}'; }
errors() { echo "$1" | awk '/Non-2xx/ {print $5}'; }
printf '%-34s %12s %10s %10s %8s\n' endpoint "req/s" p50 p99 non-2xx
printf '%-34s %12s %10s %10s %8s\n' "GET /hello (hello-world)" "$(rate "$hello")" \
  "$(pct "$hello" 50)" "$(pct "$hello" 99)" "$(errors "$hello")"
printf '%-34s %12s %10s %10s %8s\n' "PUT /api/v1/me/registration" "$(rate "$accept")" \
  "$(pct "$accept" 50)" "$(pct "$accept" 99)" "$(errors "$accept")"
echo "workers=$WORKERS connections=$CONNECTIONS seconds=$SECONDS_PER_RUN cores=$(nproc)"
