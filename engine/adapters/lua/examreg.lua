#!lua name=examreg
-- Server-side functions of examreg (architecture §4). Loaded with FUNCTION LOAD REPLACE at start-up.
-- Every call stays in one cluster slot: the submission functions' keys carry the shard's hash tag,
-- and each login-throttle function touches a single key.

-- The server's clock in ms: every API process judges deadlines and throttles on this one clock.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The candidate's session, checked in the submission's own call (sessions.py): live (its key
-- exists: neither expired while idle, nor logged out, nor ended by a password change), the
-- candidate's, inside its absolute lifetime, past the forced password change, opened with the
-- national ID the form carries. The idle expiry slides here too, by at most one EXPIRE a minute
-- in the write the call makes anyway: no request waits for a separate fsynced write for it.
-- Returns nil when the session lets the submission through, else the refusal to return.
local function refuse_session(key, args)
  local raw = redis.call('GET', key)
  if not raw then
    return {'unauthenticated'}
  end
  local ok, session = pcall(cjson.decode, raw)
  if not ok or session.kind ~= 'candidate' or tostring(session.sub) ~= args[1]
      or tonumber(args[11]) - tonumber(session.created) > tonumber(args[12]) then
    return {'unauthenticated'}
  end
  local scope = session.scope
  local must_change = type(scope) == 'table' and scope.must_change
  if must_change == true then
    return {'must_change'}
  elseif must_change ~= false then
    return {'unflagged'}  -- no flag in the session: the roster answers (the caller's slow path)
  end
  if session.login ~= args[14] then
    return {'mismatch'}
  end
  -- The unit the token claims chose the window the caller judged: it must be the session's.
  local unit = type(scope) == 'table' and scope.unit
  if type(unit) ~= 'string' then
    unit = ''
  end
  if unit ~= (args[15] or '') then
    return {'unflagged'}
  end
  local idle = tonumber(args[13])
  if idle * 1000 - redis.call('PTTL', key) > 60000 then
    redis.call('EXPIRE', key, idle)
  end
  return nil
end

-- The idempotency record: one string 'hash version receipt at phase' with its TTL (none of the
-- five holds a space). A hash with those fields, written before the upgrade, is still read.
local function prior_request(key)
  local packed = redis.pcall('GET', key)
  if type(packed) == 'table' and packed.err then  -- WRONGTYPE: a hash from before the upgrade
    local old = redis.call('HMGET', key, 'hash', 'version', 'receipt', 'at', 'phase')
    return old[1] and old or nil
  end
  if not packed then
    return nil
  end
  return {string.match(packed, '^(%S+) (%S+) (%S+) (%S+) (%S+)$')}
end

-- examreg_submit: session check, idempotency check, deadline, version, enqueue and
-- read-your-writes record, atomically.
-- KEYS: 1 stream, 2 candidate hash, 3 idempotency record, [4 the candidate's session]
-- ARGV: 1 candidate_id, 2 idempotency key, 3 request hash, 4 receipt id, 5 accepted_at,
--       6 phase, 7 form (JSON), 8 idempotency TTL seconds, 9 max stream length (0 = no limit),
--       10 the candidate's deadline in epoch ms on this server's clock (0 or absent = none),
--       with KEYS[4]: 11 now (epoch seconds), 12 session absolute lifetime seconds,
--       13 session idle seconds, 14 the form's national ID, 15 the unit the token claims
-- Returns {'new', version, receipt, accepted_at, phase, stream id}
--      or {'replay', version, receipt, accepted_at, phase} for the same key and body,
--      or {'reused'} for the same key with another body, {'overloaded'} when the shard is full,
--      {'closed'} at or after the deadline,
--      or a session's refusal: {'unauthenticated'}, {'must_change'}, {'unflagged'}, {'mismatch'}.
-- The deadline is judged here, on one clock for every API process, in the same atomic step as
-- the XADD: every 202 of the lock's race was appended before the instant, every later call is
-- refused (issue 14 item 3). A replay of a key accepted in time still answers its 202.
-- The read-your-writes record is the version, receipt, phase, time and stream id: the form is
-- read from the stream entry (or, once trimmed, from PostgreSQL), never kept a second time.
local function submit(keys, args)
  if keys[4] then
    local refusal = refuse_session(keys[4], args)
    if refusal then
      return refusal
    end
  end
  local prior = prior_request(keys[3])
  if prior then
    if prior[1] == args[3] then
      return {'replay', prior[2], prior[3], prior[4], prior[5]}
    end
    return {'reused'}
  end
  local deadline = tonumber(args[10] or '0') or 0
  if deadline > 0 and now_ms() >= deadline then
    return {'closed'}
  end
  local limit = tonumber(args[9])
  if limit > 0 and redis.call('XLEN', keys[1]) >= limit then
    return {'overloaded'}
  end
  local version = redis.call('HINCRBY', keys[2], 'version', 1)
  local id = redis.call('XADD', keys[1], '*',
    'cid', args[1], 'v', version, 'rid', args[4], 'key', args[2], 'hash', args[3],
    'phase', args[6], 'at', args[5], 'form', args[7])
  redis.call('HSET', keys[2],
    'latest_version', version, 'latest_receipt', args[4], 'latest_phase', args[6],
    'latest_at', args[5], 'latest_stream_id', id, 'rcpt:' .. args[4], version)
  redis.call('SET', keys[3], args[3] .. ' ' .. version .. ' ' .. args[4] .. ' ' .. args[5] ..
    ' ' .. args[6], 'EX', tonumber(args[8]))
  return {'new', version, args[4], args[5], args[6], id}
end

-- Drop what PostgreSQL now answers for: the receipt's queued marker (and a dead-letter mark,
-- should another writer have given up on it meanwhile), and a `latest_form` written before the
-- upgrade if it is the version just persisted (not a newer one; nothing writes that field now).
local function release_one(candidate, version, receipt)
  redis.call('HDEL', candidate, 'rcpt:' .. receipt, 'dead:' .. receipt)
  if redis.call('HGET', candidate, 'latest_version') == version then
    redis.call('HDEL', candidate, 'latest_form')
  end
end

-- examreg_release: release one persisted version (the reconciliation sweep's repair).
-- KEYS: 1 candidate hash; ARGV: 1 version persisted, 2 receipt id
local function release(keys, args)
  release_one(keys[1], args[1], args[2])
  return 1
end

-- The login throttle (engine/adapters/sessions.py). Time is the server's, so every API process
-- counts on one clock. An attempt is counted when it is let through, before the password is
-- checked: concurrent attempts cannot all pass one check before any of them is counted.

-- examreg_throttle_account: let one login attempt on an account through, or say how long to wait.
-- After `free` attempts that did not succeed, each further one waits first * 2^(n - free) ms
-- (at most `longest`) after the latest failure. Refused attempts are not counted: whoever keeps
-- trying only meets the delay, never a longer one.
-- KEYS: 1 the account's hash {n: attempts counted, last: ms of the latest one or its failure,
--         prev: `last` before the latest attempt, restored if that attempt is taken back}
-- ARGV: 1 free attempts, 2 first delay ms, 3 longest delay ms, 4 seconds the failures are kept
-- Returns 0 (let through, counted) or the ms to wait.
local function throttle_account(keys, args)
  local free, first, longest = tonumber(args[1]), tonumber(args[2]), tonumber(args[3])
  local state = redis.call('HMGET', keys[1], 'n', 'last')
  local n = tonumber(state[1]) or 0
  local last = tonumber(state[2]) or 0
  local now = now_ms()
  if n >= free then
    local delay = math.min(longest, first * 2 ^ (n - free))
    local wait = last + delay - now
    if wait > 0 then
      return math.ceil(wait)
    end
  end
  redis.call('HSET', keys[1], 'n', n + 1, 'last', now, 'prev', last)
  redis.call('EXPIRE', keys[1], tonumber(args[4]))
  return 0
end

-- examreg_throttle_failed: the attempt let through failed; its delay runs from now.
-- KEYS: 1 the account's hash
local function throttle_failed(keys, args)
  if redis.call('EXISTS', keys[1]) == 1 then
    redis.call('HSET', keys[1], 'last', now_ms())
  end
  return 1
end

-- examreg_throttle_address: let one attempt from an address through while fewer than `limit`
-- are counted in the current window, or say how long until the window ends.
-- KEYS: 1 the address's counter; ARGV: 1 limit, 2 window seconds
-- Returns 0 (let through, counted) or the ms to wait.
local function throttle_address(keys, args)
  local count = tonumber(redis.call('GET', keys[1])) or 0
  if count >= tonumber(args[1]) then
    return math.max(1, redis.call('PTTL', keys[1]))
  end
  redis.call('INCR', keys[1])
  redis.call('EXPIRE', keys[1], tonumber(args[2]), 'NX')
  return 0
end

-- examreg_throttle_uncount: take back one counted attempt (a success from the address, or an
-- attempt never checked because the hashing queue was full). Never below zero, never creates.
-- KEYS: 1 an account's hash or an address's counter
local function throttle_uncount(keys, args)
  if redis.call('TYPE', keys[1])['ok'] == 'hash' then
    local state = redis.call('HMGET', keys[1], 'n', 'prev')
    if (tonumber(state[1]) or 0) > 0 then
      redis.call('HSET', keys[1], 'n', tonumber(state[1]) - 1, 'last', state[2] or 0)
    end
  elseif (tonumber(redis.call('GET', keys[1])) or 0) > 0 then
    redis.call('DECR', keys[1])
  end
  return 1
end

-- examreg_settle: after a batch committed, release every entry and acknowledge them all, in one
-- atomic step. A writer that dies before this call leaves its entries pending: they are delivered
-- again, written again (a no-op) and settled then. There is no point between the two to die at.
-- KEYS: 1 stream, 2.. the candidate hash of each entry
-- ARGV: 1 consumer group, then per entry: stream id, version persisted, receipt id
-- Returns the number of entries acknowledged.
local function settle(keys, args)
  local acked, ids = 0, {}
  for i = 2, #keys do
    local at = 2 + (i - 2) * 3
    release_one(keys[i], args[at + 1], args[at + 2])
    ids[#ids + 1] = args[at]
    if #ids == 100 or i == #keys then  -- XACK in slices: unpack() has a stack limit
      acked = acked + redis.call('XACK', keys[1], args[1], unpack(ids))
      ids = {}
    end
  end
  return acked
end

-- examreg_dead_letter: move an entry that can never be persisted to the shard's dead-letter stream
-- and mark its receipt in the candidate's hash, so the candidate's status says it needs attention
-- instead of "queued" forever. The mark is set only for a receipt the hash still holds as queued.
-- KEYS: 1 stream, 2 dead-letter stream, [3 candidate hash]
-- ARGV: 1 consumer group, 2 entry id, 3 reason, 4 receipt id ('' if unknown),
--       5.. the entry's fields as name, value pairs
-- Returns the dead-letter entry id.
local function dead_letter(keys, args)
  local fields = {}
  for i = 5, #args do
    fields[#fields + 1] = args[i]
  end
  fields[#fields + 1] = 'source_id'
  fields[#fields + 1] = args[2]
  fields[#fields + 1] = 'reason'
  fields[#fields + 1] = args[3]
  local id = redis.call('XADD', keys[2], '*', unpack(fields))
  redis.call('XACK', keys[1], args[1], args[2])
  if keys[3] and args[4] ~= '' and redis.call('HEXISTS', keys[3], 'rcpt:' .. args[4]) == 1 then
    redis.call('HSET', keys[3], 'dead:' .. args[4], id)
  end
  return id
end

-- The fields examreg_submit writes: what a replay copies back into the stream.
local ENTRY_FIELDS = {cid = true, v = true, rid = true, key = true, hash = true, phase = true,
                      at = true, form = true}

-- examreg_replay: put a dead letter back into its shard's stream with its original version,
-- receipt and request (the writer's version guard and ON CONFLICT keep order and idempotency),
-- and only then delete it from the dead-letter stream and clear its receipt's mark. A newer entry
-- id becomes the latest record's if the replayed version is still the candidate's newest.
-- KEYS: 1 stream, 2 dead-letter stream, 3 candidate hash
-- ARGV: 1 dead-letter id, 2 candidate id the caller read from the entry
-- Returns {'replayed', new entry id}, {'missing'} or {'mismatch'} (the entry is not that candidate's)
local function replay(keys, args)
  local found = redis.call('XRANGE', keys[2], args[1], args[1])
  if #found == 0 then
    return {'missing'}
  end
  local raw, fields, entry = found[1][2], {}, {}
  for i = 1, #raw, 2 do
    if ENTRY_FIELDS[raw[i]] then
      fields[#fields + 1] = raw[i]
      fields[#fields + 1] = raw[i + 1]
      entry[raw[i]] = raw[i + 1]
    end
  end
  if entry.cid ~= args[2] then
    return {'mismatch'}
  end
  fields[#fields + 1] = 'replayed_from'
  fields[#fields + 1] = args[1]
  local id = redis.call('XADD', keys[1], '*', unpack(fields))
  redis.call('XDEL', keys[2], args[1])
  if entry.rid then
    redis.call('HDEL', keys[3], 'dead:' .. entry.rid)
  end
  if entry.v and redis.call('HGET', keys[3], 'latest_version') == entry.v then
    redis.call('HSET', keys[3], 'latest_stream_id', id)
  end
  return {'replayed', id}
end

-- examreg_trim: remove the entries below everything still pending or never delivered
-- (architecture §3.4), and say how far behind the writers are, in one atomic step. Entries below
-- the oldest pending one, or at most the last delivered when none is pending, are acknowledged,
-- and an acknowledged entry never becomes pending again. A writer calls it at most once a second,
-- pipelined after its batch's examreg_settle.
-- KEYS: 1 stream; ARGV: 1 consumer group
-- Returns {entries trimmed, lag (never delivered; -1 when Valkey cannot tell), pending}
local function trim(keys, args)
  local summary = redis.call('XPENDING', keys[1], args[1])
  local pending, threshold, lag = summary[1], summary[2], -1
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', keys[1])) do
    local info = {}
    for i = 1, #group, 2 do
      info[group[i]] = group[i + 1]
    end
    if info.name == args[1] then
      if type(info.lag) == 'number' then
        lag = info.lag
      end
      if pending == 0 then
        local millis, seq = string.match(info['last-delivered-id'], '^(%d+)-(%d+)$')
        threshold = millis .. '-' .. string.format('%d', tonumber(seq) + 1)
      end
    end
  end
  local trimmed = 0
  if threshold then
    trimmed = redis.call('XTRIM', keys[1], 'MINID', threshold)
  end
  return {trimmed, lag, pending}
end

-- A session and its account's index in one atomic step (KEYS: session, index; ARGV: payload,
-- idle seconds, digest, absolute seconds). A function rather than MULTI: both keys share a hash
-- tag, and redis-py's asyncio cluster client cannot run MULTI reliably.
local function session_open(keys, args)
  redis.call('SET', keys[1], args[1], 'EX', args[2])
  redis.call('SADD', keys[2], args[3])
  redis.call('EXPIRE', keys[2], args[4])
  return 1
end

-- End sessions of one account (KEYS: index, then session keys; ARGV: their digests): the keys
-- and exactly these digests go together, so a session opened meanwhile stays listed.
local function sessions_end(keys, args)
  local removed = 0
  for i = 2, #keys do
    removed = removed + redis.call('DEL', keys[i])
  end
  if #args > 0 then
    redis.call('SREM', keys[1], unpack(args))
  end
  return removed
end

-- examreg_submit_v2 is what this version's API calls; examreg_submit stays for API processes of
-- the previous version during a rolling upgrade (three keys, no session). Should such a process
-- restart and load its older library, examreg_submit_v2 is gone and the new processes' calls fail
-- (503 unavailable) instead of enqueueing without the session check that library lacks.
redis.register_function('examreg_submit', submit)
redis.register_function('examreg_submit_v2', submit)
redis.register_function('examreg_release', release)
redis.register_function('examreg_throttle_account', throttle_account)
redis.register_function('examreg_throttle_failed', throttle_failed)
redis.register_function('examreg_throttle_address', throttle_address)
redis.register_function('examreg_throttle_uncount', throttle_uncount)
redis.register_function('examreg_settle', settle)
redis.register_function('examreg_dead_letter', dead_letter)
redis.register_function('examreg_replay', replay)
redis.register_function('examreg_trim', trim)
redis.register_function('examreg_session_open', session_open)
redis.register_function('examreg_sessions_end', sessions_end)
