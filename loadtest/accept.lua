-- wrk script: PUT /api/v1/me/registration for many logged-in candidates, each request with a
-- fresh Idempotency-Key. Reads loadtest data prepared by loadtest/prepare_accept.py:
-- one line per candidate: "<token>\t<json form>". An optional second argument after `--` is the
-- path (default /api/v1/me/registration): `make bench` sends the same bytes to its peers.
local requests = {}
local path = "/api/v1/me/registration"
local counter = 0
local thread_id = 0
-- A per-run nonce: keys of an earlier run must not collide (same key + other body = 422).
local run = tostring(os.time())

function setup(thread)
  thread:set("id", thread_id)
  thread:set("run", run)
  thread_id = thread_id + 1
end

function init(args)
  path = args[2] or path
  for line in io.lines(args[1] or "accept-data.tsv") do
    local token, body = line:match("^([^\t]+)\t(.+)$")
    requests[#requests + 1] = {token = token, body = body}
  end
end

function request()
  counter = counter + 1
  local r = requests[(counter % #requests) + 1]
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. r.token,
    ["Idempotency-Key"] = "wrk-" .. run .. "-" .. id .. "-" .. counter,
  }
  return wrk.format("PUT", path, headers, r.body)
end

local statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  io.write(string.format("p50 %.2f ms, p99 %.2f ms\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
