-- Prepended to revoke.lua and remove.lua: the event encoding and the
-- history chain. Every change becomes one event with the next seq, chained
-- to the previous head (head = SHA-1 of the event encoded with prev_head),
-- kept in a bounded log and published, so a subscriber can tell a dataset
-- that came back older ("same seq, different history") from its own.
-- KEYS[3] seq (counter), KEYS[4] channel, KEYS[5] head, KEYS[6] log (LIST)
-- Numbers reach the encoder as decimal strings (< 2^53, checked by the
-- caller), so no value goes through a float that could round or print as
-- 1e+14.

local function varint(n)
  local out = {}
  repeat
    local byte = n % 128
    n = math.floor(n / 128)
    if n > 0 then byte = byte + 128 end
    out[#out + 1] = string.char(byte)
  until n == 0
  return table.concat(out)
end

local function string_field(tag, text)
  return tag .. varint(#text) .. text
end

-- Appends the event whose fields after seq are `body` (revokd.v1.RevocationEvent
-- fields 2..7) to the history; `log_len` bounds the log. Returns its seq and
-- the head after it.
local function append(body, log_len)
  local seq = redis.call('INCR', KEYS[3])
  local prev = redis.call('GET', KEYS[5]) or ''
  local event = '\8' .. varint(seq) .. body
  if prev ~= '' then
    event = event .. string_field('\74', prev)          -- prev_head = 9
  end
  local head = redis.sha1hex(event)
  event = event .. string_field('\66', head)             -- head = 8, always last
  redis.call('SET', KEYS[5], head)
  redis.call('RPUSH', KEYS[6], event)
  redis.call('LTRIM', KEYS[6], -log_len, -1)
  redis.call('PUBLISH', KEYS[4], event)
  return seq, head
end
