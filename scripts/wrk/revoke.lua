-- POST /oauth2/revoke with pre-minted tokens (see tokens.lua): each request
-- verifies a token and writes (or merges) its jti rule.
package.path = package.path .. ";" .. (os.getenv("BENCH_WRK_DIR") or "scripts/wrk") .. "/?.lua"
require("tokens")
