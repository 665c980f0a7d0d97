-- POST /v1/fetch with 16 addresses (4 stored, 12 empty) per request: `-- fetch.txt`.
local dir = debug.getinfo(1, "S").source:match("@(.*/)") or "./"
dofile(dir .. "common.lua")
local bodies, i
function init(args)
  bodies = {}
  for _, h in ipairs(read_lines(args[1])) do bodies[#bodies + 1] = unhex(h) end
  i = (id or 0) * 101
end
function request()
  i = i + 1
  return wrk.format("POST", "/v1/fetch", { ["Content-Type"] = "application/octet-stream" }, bodies[(i % #bodies) + 1])
end
