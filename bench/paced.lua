-- Like spread.lua, but every connection waits a fixed think time before its next request:
--   wrk -s bench/paced.lua URL -- paths.txt <pause_ms>
-- With C connections the offered rate is about C / (pause + latency) requests per second: the
-- bench picks the pause for half the measured maximum (wrk2's constant rate is not available).
local paths = {}
local pause = 0
local threads = 0

function setup(thread)
  thread:set("thread_number", threads)
  threads = threads + 1
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  pause = tonumber(args[2])
  math.randomseed(os.time() * 31 + thread_number)
end

function delay()
  return pause
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
