-- Deletes one rule (re-approval) and appends the REMOVE event, atomically.
-- The event is appended even when this dataset holds no such rule: after a
-- fork a subscriber may still hold it, and the re-approval must reach it.
-- KEYS: rules (HASH), expiry (ZSET), seq, channel, head, log
-- ARGV: rule key, published_at_ms, log length
-- Returns: {seq, 1 if the rule was held here else 0, head after the event}.

local key = ARGV[1]
local held = redis.call('HDEL', KEYS[1], key)
redis.call('ZREM', KEYS[2], key)
-- op REMOVE = 2, key = 3, published_at_ms = 6
local body = '\16\2' .. string_field('\26', key) .. '\48' .. varint(tonumber(ARGV[2]))
local seq, head = append(body, tonumber(ARGV[3]))
return {seq, held, head}
