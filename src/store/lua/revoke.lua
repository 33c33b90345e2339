-- Adds or merges one rule and publishes it, atomically.
-- KEYS: rules (HASH), expiry (ZSET), seq (counter), channel
-- ARGV: rule key, revoked_before ("all" or iat seconds), expires_at (seconds),
--       published_at_ms
-- Returns: {seq, revoked_before, expires_at} of the merged rule.
-- A stored rule is "<revoked_before>:<expires_at>", revoked_before being
-- "all" or iat seconds. Numbers stay below 2^53, exact in Lua's doubles.

local function varint(n)
  local out = {}
  repeat
    local byte = n % 128
    n = math.floor(n / 128)
    if n > 0 then byte = byte + 128 end
    out[#out + 1] = string.char(byte)
  until n == 0
  return table.concat(out)
end

local key = ARGV[1]
local revoked_before = ARGV[2]
local expires_at = tonumber(ARGV[3])
local held = redis.call('HGET', KEYS[1], key)
if held then
  local held_before, held_expires = string.match(held, '^([^:]+):(%d+)$')
  if held_before == 'all' or revoked_before == 'all' then
    revoked_before = 'all'
  else
    revoked_before = tostring(math.max(tonumber(held_before), tonumber(revoked_before)))
  end
  expires_at = math.max(tonumber(held_expires), expires_at)
end
redis.call('HSET', KEYS[1], key, revoked_before .. ':' .. string.format('%d', expires_at))
redis.call('ZADD', KEYS[2], expires_at, key)
local seq = redis.call('INCR', KEYS[3])

-- revokd.v1.RevocationEvent, op ADD
local event = '\8' .. varint(seq) .. '\16\1' .. '\26' .. varint(#key) .. key
if revoked_before == 'all' then
  event = event .. '\56\1'
else
  event = event .. '\32' .. varint(tonumber(revoked_before))
end
event = event .. '\40' .. varint(expires_at) .. '\48' .. varint(tonumber(ARGV[4]))
redis.call('PUBLISH', KEYS[4], event)
return {seq, revoked_before, string.format('%d', expires_at)}
