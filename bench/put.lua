-- Internal writes: PUT /internal/plans/{coach}/{date}, each request a new (coach, date), so
-- every one is a create with its revision and tickers:
--   wrk -s bench/put.lua URL -- <token> <first_year>
-- Thread n writes days 1..28 of every month of 50 years from first_year + 50 * n, which no
-- seeded plan uses (they start in the 1300s).
local coaches = {"coach_d", "coach_i", "coach_s", "coach_n"}
local threads = 0
local headers = {}
local first_year = 0
local sent = 0

function setup(thread)
  thread:set("thread_number", threads)
  threads = threads + 1
end

function init(args)
  headers["Authorization"] = "Bearer " .. args[1]
  headers["Content-Type"] = "application/json"
  first_year = tonumber(args[2]) + 50 * thread_number
end

function request()
  local coach = coaches[sent % 4 + 1]
  local k = math.floor(sent / 4)
  local date = string.format("%04d-%02d-%02d", first_year + math.floor(k / 336),
    math.floor(k / 28) % 12 + 1, k % 28 + 1)
  sent = sent + 1
  local body = string.format(
    '{"plan_text": "%s bench plan for %s: NVDA long above 950, targets 968 and 985, stop 938. '
      .. 'AMD: watch the 165 breakout on volume.", '
      .. '"charts": [{"url": "https://cdn.example.com/charts/%s_%s.png", "filename": "chart.png", '
      .. '"content_type": "image/png", "size_bytes": 123456}], '
      .. '"actor": {"user_id": "900000000000000001", "display_name": "Dan", "is_admin": false}, '
      .. '"message_id": "%d", "channel": "trading-plans", "channel_id": "777"}',
    coach, date, coach, date, (thread_number + 1) * 1000000000 + sent)
  return wrk.format("PUT", "/internal/plans/" .. coach .. "/" .. date, headers, body)
end
