"""The admission ledger's programs on the Redis server (core.scheduler.redis_ledger): each one runs atomically,
so a check and the change it allows cannot interleave between workers. Key layout: redis_ledger's docstring."""

_GIVE = """
local function dec(key, field)
  if field ~= '' and redis.call('HINCRBY', key, field, -1) <= 0 then redis.call('HDEL', key, field) end
end
local function give(held, freed)  -- held: 'backend:user'; KEYS[1], KEYS[2]: the backend and user hashes
  local sep = string.find(held, ':', 1, true)
  dec(KEYS[1], string.sub(held, 1, sep - 1))
  dec(KEYS[2], string.sub(held, sep + 1))
  freed[#freed + 1] = string.sub(held, 1, sep - 1)
end
local function announce(freed, only_if)  -- only_if: a key that must exist (someone is waiting), or nil
  if #freed > 0 and (only_if == nil or redis.call('EXISTS', only_if) == 1) then
    redis.call('PUBLISH', ARGV[1], ARGV[2] .. ' ' .. table.concat(freed, ','))
  end
  return #freed
end
"""

# KEYS: backends, users, my leases, workers, my alive key. ARGV: worker, ttl ms, lease, user, (backend, capacity)...
ACQUIRE = """
local prior = redis.call('HGET', KEYS[3], ARGV[3])
if prior == '' then redis.call('HDEL', KEYS[3], ARGV[3]) return false end  -- released before it got here
if prior then return string.sub(prior, 1, string.find(prior, ':', 1, true) - 1) end  -- a retried call
for i = 5, #ARGV, 2 do
  if tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0') < tonumber(ARGV[i + 1]) then
    redis.call('HINCRBY', KEYS[1], ARGV[i], 1)
    if ARGV[4] ~= '' then redis.call('HINCRBY', KEYS[2], ARGV[4], 1) end
    redis.call('HSET', KEYS[3], ARGV[3], ARGV[i] .. ':' .. ARGV[4])
    -- A worker holding leases must be known to reconcile even before its first or after its last heartbeat.
    redis.call('SET', KEYS[5], '1', 'PX', ARGV[2])
    redis.call('SADD', KEYS[4], ARGV[1])
    return ARGV[i]
  end
end
return false
"""

# KEYS: backends, users, my leases, waiting flag. ARGV: channel, worker, lease ids ('!id': its acquire was cut
# off midway). Frees are published only while some worker has requests queued (the flag exists): with none
# waiting, the message would only cost every worker a wake-up for nothing.
# An unknown '!id' leaves the mark '' that makes its acquire, should it still arrive, take nothing.
RELEASE = _GIVE + """
local freed = {}
for i = 3, #ARGV do
  local id, cut = ARGV[i], string.sub(ARGV[i], 1, 1) == '!'
  if cut then id = string.sub(id, 2) end
  local held = redis.call('HGET', KEYS[3], id)
  if held and held ~= '' then
    redis.call('HDEL', KEYS[3], id)
    give(held, freed)
  elseif cut and not held then
    redis.call('HSET', KEYS[3], id, '')
  end
end
return announce(freed, KEYS[4])
"""

# KEYS: backends, users, workers. ARGV: channel, worker, key base. The lease and alive keys of other workers are
# built here, not declared: fine on a single Redis, and on a Cluster the hash tag keeps them in this slot.
RECONCILE = _GIVE + """
local freed = {}
for _, worker in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if redis.call('EXISTS', ARGV[3] .. ':alive:' .. worker) == 0 then
    local leases = ARGV[3] .. ':leases:' .. worker
    for _, held in ipairs(redis.call('HVALS', leases)) do
      if held ~= '' then give(held, freed) end
    end
    redis.call('DEL', leases)
    redis.call('SREM', KEYS[3], worker)
  end
end
return announce(freed)
"""
