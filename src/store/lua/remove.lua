-- Deletes one rule (re-approval) and publishes the removal, atomically.
-- KEYS: rules (HASH), expiry (ZSET), seq (counter), channel
-- ARGV: rule key, published_at_ms
-- Returns: the event's seq, or 0 when there was no such rule (nothing published).

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
if redis.call('HDEL', KEYS[1], key) == 0 then
  return 0
end
redis.call('ZREM', KEYS[2], key)
local seq = redis.call('INCR', KEYS[3])
-- revokd.v1.RevocationEvent, op REMOVE
local event = '\8' .. varint(seq) .. '\16\2' .. '\26' .. varint(#key) .. key
  .. '\48' .. varint(tonumber(ARGV[2]))
redis.call('PUBLISH', KEYS[4], event)
return seq
