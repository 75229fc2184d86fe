-- GET a random path from a list, one path per line in the file given as the first argument:
--   wrk -s bench/spread.lua URL -- paths.txt
-- Reads many different keys, so the API's in-process response cache cannot answer them all.
local paths = {}
local threads = 0

function setup(thread)
  thread:set("thread_number", threads)
  threads = threads + 1
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  math.randomseed(os.time() * 31 + thread_number)
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
