#!/usr/bin/env bash
# Start the API and the bot in mock mode; Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

export MOCK_MODE="${MOCK_MODE:-true}"
export API_PORT="${API_PORT:-5000}"
export API_BASE_URL="${API_BASE_URL:-http://127.0.0.1:${API_PORT}}"
export DATABASE_PATH="${DATABASE_PATH:-./data/coach_plans.db}"
export OUTBOX_PATH="${OUTBOX_PATH:-./data/bot_outbox.db}"
export INTERNAL_API_TOKEN="${INTERNAL_API_TOKEN:-dev-internal-token}"
UV="${UV:-$(command -v uv || echo .tools/bin/uv)}"

"$UV" run coach-plans-api migrate
"$UV" run coach-plans-api serve &
api=$!
trap 'kill -TERM "$api" ${bot:-} 2>/dev/null; wait' INT TERM EXIT

for _ in $(seq 1 100); do
  if curl -fsS "$API_BASE_URL/health" >/dev/null 2>&1; then break; fi
  kill -0 "$api" 2>/dev/null || { echo "the API did not start" >&2; exit 1; }
  sleep 0.2
done
"$UV" run coach-plans-bot &
bot=$!
echo "Coach Plans is up: $API_BASE_URL/docs  (try: curl '$API_BASE_URL/api/coach-plans/?coach=coach_d')"
wait -n "$api" "$bot"
