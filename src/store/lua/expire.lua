-- Drops up to ARGV[2] rules whose expires_at <= ARGV[1]. Idempotent: any
-- number of issuers may run it at once. No event: every denylist expires
-- rules by time on its own.
-- KEYS: rules (HASH), expiry (ZSET)
-- Returns: how many rules were dropped.
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, key in ipairs(expired) do
  redis.call('HDEL', KEYS[1], key)
  redis.call('ZREM', KEYS[2], key)
end
return #expired
