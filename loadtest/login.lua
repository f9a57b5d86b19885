-- wrk script: POST /api/v1/auth/login as fast as the connections allow, cycling through the
-- accounts of a credentials CSV (`login,password,candidate_id`, as `examreg seed` writes it).
-- Counts answers by kind: 200 logged in, 503 shed (hash queue full), 429 throttled, other.
local accounts = {}
local counter = 0
ok, shed, throttled, other = 0, 0, 0, 0
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  for line in io.lines(args[1]) do
    local login, password = line:match("^([^,]+),([^,]+),")
    if login and login ~= "login" then
      accounts[#accounts + 1] = string.format('{"login":"%s","password":"%s"}', login, password)
    end
  end
end

function request()
  counter = counter + 1
  local body = accounts[(counter % #accounts) + 1]
  return wrk.format("POST", "/api/v1/auth/login", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1
  elseif status == 503 then shed = shed + 1
  elseif status == 429 then throttled = throttled + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local totals = {ok = 0, shed = 0, throttled = 0, other = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(totals) do totals[name] = totals[name] + thread:get(name) end
  end
  io.write(string.format("logins ok=%d shed=%d throttled=%d other=%d seconds=%.1f\n",
    totals.ok, totals.shed, totals.throttled, totals.other, summary.duration / 1e6))
end
