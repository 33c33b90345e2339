-- Spends a one-time authorization code (see CodeUse in store/grants.rs).
-- KEYS[1]: the code ({revokd}:code:<sha256 hex>)
-- ARGV[1]: how long a spent code is remembered, in ms
-- A code is 'fresh:<grant>' until spent, then 'spent:<grant>'.
-- Returns {'fresh', grant}, {'reused', grant} or {'unknown', ''}.
local held = redis.call('GET', KEYS[1])
if not held then
  return {'unknown', ''}
end
if string.sub(held, 1, 6) == 'fresh:' then
  local grant = string.sub(held, 7)
  redis.call('SET', KEYS[1], 'spent:' .. grant, 'PX', ARGV[1])
  return {'fresh', grant}
end
return {'reused', string.sub(held, 7)}
