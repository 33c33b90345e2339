-- Lists a client's users with their records (the admin API).
-- KEYS[1]: the client's users ({revokd}:client-grants:<client_id>)
-- ARGV[1]: the prefix of a user's apps ({revokd}:grants:), ARGV[2]: client id
-- Returns a flat list sub, record JSON, ...; users whose record is gone
-- (expired or disconnected) leave the set.
local out = {}
for _, sub in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local record = redis.call('HGET', ARGV[1] .. sub, ARGV[2])
  if record then
    table.insert(out, sub)
    table.insert(out, record)
  else
    redis.call('SREM', KEYS[1], sub)
  end
end
return out
