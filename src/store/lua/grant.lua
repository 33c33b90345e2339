-- Records a connected app (see GrantRecord in store/grants.rs).
-- KEYS[1]: the user's apps ({revokd}:grants:<sub>), a hash client_id -> JSON
-- KEYS[2]: the client's users ({revokd}:client-grants:<client_id>), a set
-- ARGV[1]: client id, ARGV[2]: the record (JSON), ARGV[3]: its expires_at
-- in ms, ARGV[4]: 'record' (create or update) or 'touch' (update only),
-- ARGV[5]: the user (sub)
-- The first authorization of an existing record is kept. The hash lives
-- until its latest record expires.
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old and ARGV[4] == 'touch' then
  return 0
end
local record = cjson.decode(ARGV[2])
if old then
  local first = cjson.decode(old).first_authorized
  if first and first < record.first_authorized then
    record.first_authorized = first
  end
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(record))
local pttl = redis.call('PTTL', KEYS[1])
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if pttl < 0 or now_ms + pttl < tonumber(ARGV[3]) then
  redis.call('PEXPIREAT', KEYS[1], ARGV[3])
end
redis.call('SADD', KEYS[2], ARGV[5])
local spttl = redis.call('PTTL', KEYS[2])
if spttl < 0 or now_ms + spttl < tonumber(ARGV[3]) then
  redis.call('PEXPIREAT', KEYS[2], ARGV[3])
end
return 1
