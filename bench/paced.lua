-- Like spread.lua, but every connection waits a think time before each request:
--   wrk -s bench/paced.lua URL -- paths.txt <pause_ms>
-- With C connections the offered rate is about C / (pause + latency) requests per second: the
-- bench picks the pause for half the measured maximum (wrk2's constant rate is not available).
-- The think time is drawn from an exponential distribution of mean `pause`, so the requests of
-- the C connections arrive independently, as from many clients. A fixed pause sends all C first
-- requests at the same instant and keeps them bunched: with C = 32 that start-up queue alone was
-- 2-9 % of a run's requests, i.e. its p99.
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
  return -pause * math.log(1 - math.random())
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
