-- Adds or merges one rule and appends the ADD event, atomically.
-- KEYS: rules (HASH), expiry (ZSET), seq, channel, head, log
-- ARGV: rule key, revoked_before ("all" or iat seconds), expires_at (seconds),
--       published_at_ms, log length
-- Returns: {seq, revoked_before, expires_at, head}: the event's seq, the
-- merged rule, and the history's head after the event.
-- A stored rule is "<revoked_before>:<expires_at>", revoked_before being
-- "all" or iat seconds. Numbers stay below 2^53, exact in Lua's doubles, and
-- are printed with %d, never tostring (which would write 1e+14).

local key = ARGV[1]
local revoked_before = ARGV[2]
local expires_at = tonumber(ARGV[3])
local held = redis.call('HGET', KEYS[1], key)
if held then
  local held_before, held_expires = string.match(held, '^([^:]+):(%d+)$')
  if held_before == 'all' or revoked_before == 'all' then
    revoked_before = 'all'
  else
    revoked_before = string.format('%d', math.max(tonumber(held_before) or 0, tonumber(revoked_before)))
  end
  expires_at = math.max(tonumber(held_expires) or 0, expires_at)
end
redis.call('HSET', KEYS[1], key, revoked_before .. ':' .. string.format('%d', expires_at))
redis.call('ZADD', KEYS[2], expires_at, key)

-- op ADD = 1, key = 3, revoked_before = 4 or all = 7, expires_at = 5, published_at_ms = 6
local body = '\16\1' .. string_field('\26', key)
if revoked_before == 'all' then
  body = body .. '\56\1'
else
  body = body .. '\32' .. varint(tonumber(revoked_before))
end
body = body .. '\40' .. varint(expires_at) .. '\48' .. varint(tonumber(ARGV[4]))
local seq, head = append(body, tonumber(ARGV[5]))
return {seq, revoked_before, string.format('%d', expires_at), head}
