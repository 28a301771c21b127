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

# The mark of a lease released before its acquire reached Redis: {P}:cut:<worker>:<lease>, expiring after a minute
# (an acquire still on its way arrives within that; a lost one never does). Built here, not declared: the hash tag
# keeps it in the ledger's slot on a Redis Cluster.
_CUT = """
local CUT_MARK_MS = 60000
local function cut_mark(leases, lease)
  return (string.gsub(leases, ':leases:', ':cut:', 1)) .. ':' .. lease
end
"""
# KEYS: backends, users, my leases, workers, my alive key, finish tags, users seen, virtual time, my tickets.
# ARGV: worker, ttl ms, lease, user, mode, weight, cost, burst, now, window, queue key prefix, ticket, model,
#       then per candidate backend: id, capacity, how many models it serves, those models.
# mode '': no fair share (a slot on the first candidate with room). 'new': a new request: its start tag is
# max(its user's finish tag, virtual time - burst), and the finish tag moves on by cost / weight. A number: the
# start tag of a request already queued. With a tag, a backend's free slot goes to it only if no request queued
# (on any worker) for a model that backend serves has a lower tag: the fleet serves lowest tags first. A new
# request that gets no slot is queued where every worker sees it. Returns {backend or nil, start tag or ''}.
ACQUIRE = _CUT + """
if redis.call('DEL', cut_mark(KEYS[3], ARGV[3])) == 1 then return {false, ''} end  -- released before it got here
local prior = redis.call('HGET', KEYS[3], ARGV[3])
if prior == '' then redis.call('HDEL', KEYS[3], ARGV[3]) return {false, ''} end  -- such a mark from before 0.2
if prior then return {string.sub(prior, 1, string.find(prior, ':', 1, true) - 1), ''} end  -- a retried call
local mode, start = ARGV[5], nil
if mode == 'new' then
  local now, window = tonumber(ARGV[9]), tonumber(ARGV[10])
  start = tonumber(redis.call('GET', KEYS[8]) or '0') - tonumber(ARGV[8])
  local seen = redis.call('ZSCORE', KEYS[7], ARGV[4])
  if seen and tonumber(seen) >= now - window then
    local finish = tonumber(redis.call('HGET', KEYS[6], ARGV[4]) or '')
    if finish and finish > start then start = finish end
  end
  redis.call('HSET', KEYS[6], ARGV[4], tostring(start + tonumber(ARGV[7]) / tonumber(ARGV[6])))
  redis.call('ZADD', KEYS[7], now, ARGV[4])
  for k = 6, 8 do redis.call('PEXPIRE', KEYS[k], math.ceil(window * 1000)) end  -- an idle fleet forgets it all
elseif mode ~= '' then
  start = tonumber(mode)
end
local tag = start and string.format('%.17g', start) or ''
local function known()  -- a worker holding leases or tickets must be known to reconcile
  redis.call('SET', KEYS[5], '1', 'PX', ARGV[2])
  redis.call('SADD', KEYS[4], ARGV[1])
end
local i = 14
while i <= #ARGV do
  local backend, capacity, models = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local open = tonumber(redis.call('HGET', KEYS[1], backend) or '0') < capacity
  if open and start then
    for j = i + 3, i + 2 + models do
      local head = redis.call('ZRANGE', ARGV[11] .. ARGV[j], 0, 0, 'WITHSCORES')
      if head[1] and head[1] ~= ARGV[12] and tonumber(head[2]) < start then open = false break end
    end
  end
  if open then
    redis.call('HINCRBY', KEYS[1], backend, 1)
    if ARGV[4] ~= '' then redis.call('HINCRBY', KEYS[2], ARGV[4], 1) end
    redis.call('HSET', KEYS[3], ARGV[3], backend .. ':' .. ARGV[4])
    known()
    if start then
      if start > tonumber(redis.call('GET', KEYS[8]) or '0') then
        redis.call('SET', KEYS[8], tag, 'PX', math.ceil(tonumber(ARGV[10]) * 1000))
      end
      redis.call('ZREM', ARGV[11] .. ARGV[13], ARGV[12])
      redis.call('HDEL', KEYS[9], ARGV[12])
    end
    return {backend, tag}
  end
  i = i + 3 + models
end
if mode == 'new' then
  redis.call('ZADD', ARGV[11] .. ARGV[13], start, ARGV[12])
  redis.call('HSET', KEYS[9], ARGV[12], ARGV[13])
  known()
end
return {false, tag}
"""

# KEYS: backends, users, my leases, waiting flag, finish tags, my tickets. ARGV: channel, worker, queue key
# prefix, then items: lease ids ('!id': its acquire was cut off midway), 'Q<ticket>|<model>|<user>|<delta>' (a
# queued request left: out of its queue, its user's finish tag moved by delta), 'C<user>|<delta>' (a request
# used more or fewer tokens than it was charged: the finish tag moves by the difference over the weight).
# Frees are published only while some worker has requests queued (the flag exists): with none waiting, the
# message would only cost every worker a wake-up for nothing.
# An unknown '!id' leaves a mark that makes its acquire, should it still arrive, take nothing. The mark is a key of
# its own that expires (an acquire lost with a restarted Redis never arrives: a mark in the leases hash stayed
# there for as long as the worker lived, one per acquire cut off during an outage).
RELEASE = _GIVE + _CUT + """
local function fields(text)
  local parts = {}
  for part in string.gmatch(text, '[^|]+') do parts[#parts + 1] = part end
  return parts
end
local freed = {}
for i = 4, #ARGV do
  local kind = string.sub(ARGV[i], 1, 1)
  if kind == 'Q' then
    local ticket, model, user, delta = unpack(fields(string.sub(ARGV[i], 2)))
    if redis.call('ZREM', ARGV[3] .. model, ticket) == 1 then freed[#freed + 1] = 'q' end  -- the next may go
    redis.call('HDEL', KEYS[6], ticket)
    if redis.call('HEXISTS', KEYS[5], user) == 1 then redis.call('HINCRBYFLOAT', KEYS[5], user, delta) end
  elseif kind == 'C' then
    local user, delta = unpack(fields(string.sub(ARGV[i], 2)))
    if redis.call('HEXISTS', KEYS[5], user) == 1 then redis.call('HINCRBYFLOAT', KEYS[5], user, delta) end
  else
    local id, cut = ARGV[i], kind == '!'
    if cut then id = string.sub(id, 2) end
    local held = redis.call('HGET', KEYS[3], id)
    if held and held ~= '' then
      redis.call('HDEL', KEYS[3], id)
      give(held, freed)
    elseif cut and not held then
      redis.call('SET', cut_mark(KEYS[3], id), '', 'PX', CUT_MARK_MS)
    end
  end
end
return announce(freed, KEYS[4])
"""

# KEYS: backends, users, workers, users seen, finish tags. ARGV: channel, worker, key base, now, fairness window.
# The lease, ticket and alive keys of other workers are built here, not declared: fine on a single Redis, and on
# a Cluster the hash tag keeps them in this slot. Users not seen for a fairness window are forgotten.
RECONCILE = _GIVE + """
local freed = {}
for _, worker in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  if redis.call('EXISTS', ARGV[3] .. ':alive:' .. worker) == 0 then
    local leases = ARGV[3] .. ':leases:' .. worker
    for _, held in ipairs(redis.call('HVALS', leases)) do
      if held ~= '' then give(held, freed) end
    end
    local tickets = redis.call('HGETALL', ARGV[3] .. ':tickets:' .. worker)
    for j = 1, #tickets, 2 do redis.call('ZREM', ARGV[3] .. ':queue:' .. tickets[j + 1], tickets[j]) end
    redis.call('DEL', leases, ARGV[3] .. ':tickets:' .. worker)
    redis.call('SREM', KEYS[3], worker)
  end
end
local gone = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', tonumber(ARGV[4]) - tonumber(ARGV[5]))
for _, user in ipairs(gone) do redis.call('HDEL', KEYS[5], user) end
if #gone > 0 then redis.call('ZREM', KEYS[4], unpack(gone)) end
return announce(freed)
"""
