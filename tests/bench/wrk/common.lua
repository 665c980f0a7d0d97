-- Shared by the mailbox wrk scripts: thread ids, line files, hex decoding.
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function read_lines(path, every, offset)
  local lines, n = {}, 0
  for line in io.lines(path) do
    if every == nil or n % every == offset then
      lines[#lines + 1] = line
    end
    n = n + 1
  end
  return lines
end

function unhex(h)
  return (h:gsub("..", function(cc) return string.char(tonumber(cc, 16)) end))
end

function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end
