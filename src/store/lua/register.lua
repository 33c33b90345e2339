-- Keeps a dynamically registered client, unless the registry is full.
-- KEYS[1]: the client ({revokd}:client:<id>), a string
-- KEYS[2]: the registry's index ({revokd}:clients), a zset id key -> expiry ms
-- ARGV[1]: the client (JSON), ARGV[2]: its ttl in ms, ARGV[3]: now in ms,
-- ARGV[4]: how many registered clients may live at once
-- Returns 1 when kept, 0 when full. The index lives as long as its newest
-- entry; expired entries leave it at every registration.
local expires = tonumber(ARGV[3]) + tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], expires, KEYS[1])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
return 1
