-- Spends a one-time authorization code (see CodeUse in store/grants.rs).
-- KEYS[1]: the code ({revokd}:code:<sha256 hex>)
-- ARGV[1]: how long a spent code is remembered, in ms
-- ARGV[2], ARGV[3], ARGV[4]: the presenter's client id, redirect URI and
-- PKCE challenge ('' when absent), as CodePresenter::matches compares them
-- A code is 'fresh:<grant>' until spent, then 'spent:<grant>'.
-- Returns {'fresh', grant}, {'reused', grant}, {'mismatch', grant} (the
-- code untouched: issued for another presenter) or {'unknown', ''}.
local held = redis.call('GET', KEYS[1])
if not held then
  return {'unknown', ''}
end
local grant = string.sub(held, 7)
local ok, issued = pcall(cjson.decode, grant)
if not ok or type(issued) ~= 'table' then
  return {'mismatch', grant}
end
local challenge = issued.code_challenge
if challenge == nil or challenge == cjson.null then
  challenge = ''
end
if issued.client_id ~= ARGV[2] or issued.redirect_uri ~= ARGV[3] or challenge ~= ARGV[4] then
  return {'mismatch', grant}
end
if string.sub(held, 1, 6) == 'fresh:' then
  redis.call('SET', KEYS[1], 'spent:' .. grant, 'PX', ARGV[1])
  return {'fresh', grant}
end
return {'reused', grant}
