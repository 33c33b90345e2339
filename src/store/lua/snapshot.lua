-- Reads the history's position, the log a subscriber needs to prove where
-- it stands, and every rule, atomically.
-- KEYS: rules (HASH), seq, head, log (LIST)
-- ARGV: the subscriber's last seq ("none" before its first sync) and head
-- Returns: {seq, head, log, key1, value1, key2, value2, ...} where log is
--   {} when the subscriber is at the head or has never synced,
--   the events after its last seq when the log holds that seq with its head,
--   the whole log otherwise (a fork, or a subscriber older than the log).
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local head = redis.call('GET', KEYS[3]) or ''
local log = {}
if ARGV[1] ~= 'none' then
  local last = tonumber(ARGV[1])
  local length = redis.call('LLEN', KEYS[4])
  local first = seq - length + 1   -- the seq of the log's first event
  if last == seq and ARGV[2] == head then
    log = {}
  elseif last >= first and last < seq
      and string.sub(redis.call('LINDEX', KEYS[4], last - first), -40) == ARGV[2] then
    log = redis.call('LRANGE', KEYS[4], last - first + 1, -1)
  else
    log = redis.call('LRANGE', KEYS[4], 0, -1)
  end
end
local result = {seq, head, log}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all do
  result[#result + 1] = all[i]
end
return result
