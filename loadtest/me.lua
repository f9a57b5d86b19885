-- wrk script: GET /api/v1/me for already logged-in candidates, one bearer token per line of the
-- file given after `--` (the first column of loadtest/prepare_accept.py's output). An optional
-- second argument paces each connection: that many milliseconds between its requests, like users
-- who read a page before the next click (wrk alone would saturate the CPU and starve the rest).
local tokens = {}
local counter = 0
local pause = 0

function init(args)
  for line in io.lines(args[1]) do
    local token = line:match("^([^\t]+)")
    if token then tokens[#tokens + 1] = token end
  end
  pause = tonumber(args[2] or "0")
end

function delay()
  return pause
end

function request()
  counter = counter + 1
  local headers = {["Authorization"] = "Bearer " .. tokens[(counter % #tokens) + 1]}
  return wrk.format("GET", "/api/v1/me", headers)
end
