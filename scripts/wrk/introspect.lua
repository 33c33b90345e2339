-- POST /oauth2/introspect with pre-minted tokens (see tokens.lua).
package.path = package.path .. ";" .. (os.getenv("BENCH_WRK_DIR") or "scripts/wrk") .. "/?.lua"
require("tokens")
