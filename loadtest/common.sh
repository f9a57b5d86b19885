# Sourced by the wrk scripts in loadtest/: wrk, a temporary data directory with embedded
# PostgreSQL + Valkey (migrated), processes started with `spawn`, and cleanup of all of it on exit.
#
#   source loadtest/common.sh; setup_services NAME; spawn LOG CMD...; wait_ready URL...
BIN=.venv/bin

require_wrk() {
  command -v wrk >/dev/null && return
  if [ "$(id -u)" = 0 ]; then apt-get install -y -qq wrk >/dev/null; else
    echo "wrk is missing: sudo apt-get install wrk" >&2; exit 2; fi
}

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$BIN/examreg" services stop --data-dir "$DIR" >/dev/null 2>&1 || true
  rm -rf "$DIR"
}

# setup_services NAME: DIR=/tmp/examreg-NAME.XXXXXX with migrated servers; EXAMREG_* exported.
setup_services() {
  require_wrk
  DIR=$(mktemp -d "/tmp/examreg-$1.XXXXXX")
  trap cleanup EXIT
  eval "$("$BIN/examreg" services start --data-dir "$DIR" | sed 's/^/export /')"
  export EXAMREG_DATA_DIR=$DIR EXAMREG_LOG_LEVEL=warning
  "$BIN/examreg" migrate >/dev/null
}

# spawn LOG CMD...: run CMD in the background, output to $DIR/LOG, stopped by cleanup.
spawn() {
  local log=$1; shift
  "$@" >"$DIR/$log" 2>&1 &
  pids+=($!)
}

# wait_ready URL...: until every URL answers 2xx (at most 20 s).
wait_ready() {
  for _ in $(seq 100); do
    local ok=1
    for url in "$@"; do curl -sf "$url" >/dev/null || { ok=0; break; }; done
    [ $ok = 1 ] && return
    sleep 0.2
  done
  echo "not ready: $*" >&2; exit 1
}
