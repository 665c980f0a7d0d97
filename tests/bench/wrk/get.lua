-- GET /v1/m/{address} over the addresses in the file given after `--` (hits or misses).
local dir = debug.getinfo(1, "S").source:match("@(.*/)") or "./"
dofile(dir .. "common.lua")
local addrs, i
function init(args)
  addrs = read_lines(args[1])
  i = (id or 0) * 7919
end
function request()
  i = i + 1
  return wrk.format("GET", "/v1/m/" .. addrs[(i % #addrs) + 1])
end
