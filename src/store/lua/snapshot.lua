-- Reads every rule with the seq they are consistent with, atomically.
-- KEYS: rules (HASH), seq (counter), epoch
-- Returns: {seq, epoch or false, key1, value1, key2, value2, ...}
local seq = tonumber(redis.call('GET', KEYS[2]) or '0')
local epoch = redis.call('GET', KEYS[3])
local result = {seq, epoch}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all do
  result[#result + 1] = all[i]
end
return result
