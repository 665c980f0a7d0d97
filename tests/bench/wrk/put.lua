-- PUT one blob per request at a fresh address: `-- pairs.txt blob.bin THREADS`.
-- Each thread takes every THREADS-th pair; once they run out, PUTs repeat (and get 409).
local dir = debug.getinfo(1, "S").source:match("@(.*/)") or "./"
dofile(dir .. "common.lua")
local pairs_, blob, i
function init(args)
  pairs_ = read_lines(args[1], tonumber(args[3]), id or 0)
  blob = read_file(args[2])
  i = 0
end
function request()
  i = i + 1
  local line = pairs_[((i - 1) % #pairs_) + 1]
  local address, key = line:match("^(%x+) (%x+)$")
  return wrk.format("PUT", "/v1/m/" .. address, { ["Mailbox-Write-Key"] = key }, blob)
end
