-- wrk script: support-desk searches, rotating over a file of query strings (one per line, the part
-- after "?"), each sent with the staff token given as the second script argument. An optional
-- third argument is each agent's think time in milliseconds between two searches.
local queries = {}
local counter = 0
local token = ""
local think = 0

function init(args)
  for line in io.lines(args[1]) do queries[#queries + 1] = line end
  token = args[2]
  think = tonumber(args[3] or "0")
end

function delay()
  return think
end

function request()
  counter = counter + 1
  local q = queries[(counter % #queries) + 1]
  return wrk.format("GET", "/api/v1/support/candidates?" .. q, {["Authorization"] = "Bearer " .. token})
end
