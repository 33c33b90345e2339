-- Claims or confirms a refresh token's rotation (see RefreshUse in store/mod.rs).
-- KEYS[1]: the token's marker ({revokd}:used:<jti>)
-- ARGV: 'claim' or 'confirm', the attempt id, the marker's ttl in ms (claim)
-- A marker is 'pending:<attempt>' (claimed, not answered) or
-- 'done:<attempt>' (answered); anything else (an older revokd's '1') is done.
-- claim returns 'first', 'retry' (took an unanswered claim over) or 'reused';
-- confirm returns 1 when the claim was still this attempt's, else 0.
local held = redis.call('GET', KEYS[1])
if ARGV[1] == 'claim' then
  if held and string.sub(held, 1, 8) ~= 'pending:' then
    return 'reused'
  end
  redis.call('SET', KEYS[1], 'pending:' .. ARGV[2], 'PX', ARGV[3])
  if held then
    return 'retry'
  end
  return 'first'
end
if held == 'pending:' .. ARGV[2] then
  redis.call('SET', KEYS[1], 'done:' .. ARGV[2], 'KEEPTTL')
  return 1
end
return 0
