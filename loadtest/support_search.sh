#!/usr/bin/env bash
# p99 of support-desk searches on a national-size roster (issue 4): 1.2 million synthetic candidates,
# 34 concurrent agents (the desk's size), a mix of the four search kinds.
#
#   loadtest/support_search.sh [CANDIDATES] [SECONDS]
#
# Needs wrk (apt). Runs on loopback in a temporary data directory and removes it at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
CANDIDATES=${1:-1200000}
SECONDS_PER_RUN=${2:-20}
source loadtest/common.sh
PORT=18200
setup_services search
start=$(date +%s)
"$BIN/examreg" seed --candidates "$CANDIDATES" --load-test-password Load-test-2026 2>/dev/null
echo "seeded $CANDIDATES candidates in $(( $(date +%s) - start ))s"
"$BIN/python" - "$EXAMREG_DATABASE_URL" "$DIR/queries.txt" <<'PY'
import asyncio, random, sys, urllib.parse
import asyncpg
async def main(dsn, out):
    conn = await asyncpg.connect(dsn)
    await conn.execute("ANALYZE candidates")
    rows = await conn.fetch("SELECT national_id, candidate_id, name_folded, date_of_birth,"
                            " province_code, school_code FROM candidates TABLESAMPLE SYSTEM (1) LIMIT 4000")
    await conn.close()
    rng = random.Random(1)
    lines = []
    for r in rows:
        kind = rng.choice(["id", "id", "name_dob", "name_dob", "candidate", "prefix", "school"])
        q = {"id": {"national_id": r["national_id"]},
             "candidate": {"candidate_id": r["candidate_id"]},
             "name_dob": {"name": r["name_folded"], "date_of_birth": r["date_of_birth"].isoformat()},
             "prefix": {"name": " ".join(r["name_folded"].split()[:2])},
             "school": {"province_code": r["province_code"], "school_code": r["school_code"]}}[kind]
        lines.append(urllib.parse.urlencode({**q, "reason": "load test ticket LT-0001"}))
    open(out, "w").write("\n".join(lines) + "\n")
asyncio.run(main(sys.argv[1], sys.argv[2]))
PY
"$BIN/examreg" staff create desk.bench --role support --password Bench-pass-2026 >/dev/null
spawn api.log "$BIN/examreg" serve --workers 2 --port $PORT
wait_ready "http://127.0.0.1:$PORT/readyz"
token=$(curl -sf -X POST "http://127.0.0.1:$PORT/api/v1/staff/login" -H 'Content-Type: application/json' \
  -d '{"username":"desk.bench","password":"Bench-pass-2026"}' | "$BIN/python" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
# A new account must replace its issued password first; the change hands out the session to use.
token=$(curl -sf -X POST "http://127.0.0.1:$PORT/api/v1/staff/password" -H 'Content-Type: application/json' \
  -H "Authorization: Bearer $token" -d '{"current_password":"Bench-pass-2026","new_password":"Bench-pass-2027"}' \
  | "$BIN/python" -c 'import json,sys; print(json.load(sys.stdin)["token"])')
for think in 0 100; do
  echo "-- 34 agents, think time ${think} ms between searches (0 = back to back, saturation)"
  wrk -t2 -c34 -d"${SECONDS_PER_RUN}s" --latency -s loadtest/search.lua "http://127.0.0.1:$PORT" \
    -- "$DIR/queries.txt" "$token" "$think" | grep -E "Requests/sec|50%|90%|99%|Non-2xx"
done
echo "candidates=$CANDIDATES agents=34 seconds=$SECONDS_PER_RUN cores=$(nproc)"
