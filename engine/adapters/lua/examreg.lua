#!lua name=examreg
-- Server-side functions of examreg (architecture §4). Loaded with FUNCTION LOAD REPLACE at start-up.
-- Every key a function touches carries the shard's hash tag, so one call stays in one cluster slot.

-- examreg_submit: idempotency check, version, enqueue and read-your-writes record, atomically.
-- KEYS: 1 stream, 2 candidate hash, 3 idempotency record
-- ARGV: 1 candidate_id, 2 idempotency key, 3 request hash, 4 receipt id, 5 accepted_at,
--       6 phase, 7 form (JSON), 8 idempotency TTL seconds, 9 max stream length (0 = no limit)
-- Returns {'new', version, receipt, accepted_at, phase, stream id}
--      or {'replay', version, receipt, accepted_at, phase} for the same key and body,
--      or {'reused'} for the same key with another body, or {'overloaded'} when the shard is full.
local function submit(keys, args)
  local prior = redis.call('HMGET', keys[3], 'hash', 'version', 'receipt', 'at', 'phase')
  if prior[1] then
    if prior[1] == args[3] then
      return {'replay', prior[2], prior[3], prior[4], prior[5]}
    end
    return {'reused'}
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
    'latest_at', args[5], 'latest_form', args[7], 'latest_stream_id', id,
    'rcpt:' .. args[4], version)
  redis.call('HSET', keys[3], 'hash', args[3], 'version', version, 'receipt', args[4],
    'at', args[5], 'phase', args[6])
  redis.call('EXPIRE', keys[3], tonumber(args[8]))
  return {'new', version, args[4], args[5], args[6], id}
end

-- examreg_release: after a batch committed, drop what PostgreSQL now answers for: the receipt's
-- queued marker (and a dead-letter mark, should another writer have given up on it meanwhile),
-- and the latest form if it is the version just persisted (not a newer one).
-- KEYS: 1 candidate hash; ARGV: 1 version persisted, 2 receipt id
local function release(keys, args)
  redis.call('HDEL', keys[1], 'rcpt:' .. args[2], 'dead:' .. args[2])
  if redis.call('HGET', keys[1], 'latest_version') == args[1] then
    redis.call('HDEL', keys[1], 'latest_form')
  end
  return 1
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

redis.register_function('examreg_submit', submit)
redis.register_function('examreg_release', release)
redis.register_function('examreg_dead_letter', dead_letter)
redis.register_function('examreg_replay', replay)
