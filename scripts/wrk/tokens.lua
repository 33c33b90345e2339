-- Shared by introspect.lua and revoke.lua: POST `token=<t>` cycling through
-- a file of pre-minted access tokens (BENCH_TOKENS, one per line).
local id = os.getenv("BENCH_CLIENT") or "bench"
local secret = os.getenv("BENCH_SECRET") or "bench-secret"
local file = os.getenv("BENCH_TOKENS") or "/tmp/revokd-bench/tokens.txt"

local tokens = {}
for line in io.lines(file) do
  if #line > 0 then tokens[#tokens + 1] = line end
end

local function b64(data)
  local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  return ((data:gsub(".", function(x)
    local r, byte = "", x:byte()
    for i = 8, 1, -1 do r = r .. (byte % 2 ^ i - byte % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#data % 3 + 1])
end

local auth = "Basic " .. b64(id .. ":" .. secret)
local i = 0

function setup(thread)
  thread:set("offset", math.random(#tokens))
end

function request()
  i = i + 1
  local t = tokens[((offset or 0) + i) % #tokens + 1]
  return wrk.format("POST", wrk.path, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = auth,
  }, "token=" .. t)
end
