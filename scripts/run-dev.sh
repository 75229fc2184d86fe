#!/usr/bin/env bash
# `make run`: migrate, start the API and the bot (mock mode by default); Ctrl-C stops both.
# "is up" is printed only once THIS script's API answers (its instance id, logged at start,
# is the one /health reports) and, in mock mode, once the bot has stored today's plans.
set -euo pipefail
cd "$(dirname "$0")/.."

export MOCK_MODE="${MOCK_MODE:-true}"
export API_HOST="${API_HOST:-0.0.0.0}"
export API_PORT="${API_PORT:-5000}"
export API_BASE_URL="${API_BASE_URL:-http://127.0.0.1:${API_PORT}}"
export DATABASE_PATH="${DATABASE_PATH:-./data/coach_plans.db}"
export OUTBOX_PATH="${OUTBOX_PATH:-./data/bot_outbox.db}"
# API and bot are started together here, so a fresh random token per run fits any mode.
export INTERNAL_API_TOKEN="${INTERNAL_API_TOKEN:-$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')}"
mock=false
case "${MOCK_MODE,,}" in true | 1 | yes | on) mock=true ;; esac
if $mock; then
  # The mock bot serves its chart images on 127.0.0.1; the API archives them from there,
  # the same path a Discord attachment takes.
  export CHART_ALLOWED_HOSTS="${CHART_ALLOWED_HOSTS:-cdn.discordapp.com,media.discordapp.net,127.0.0.1:*}"
fi
UV="${UV:-$(command -v uv || echo .tools/bin/uv)}"
check() { "$UV" run --quiet python scripts/dev_ready.py "$@"; }

check port-free "$API_HOST" "$API_PORT"
"$UV" run coach-plans-api migrate

api_log="$(mktemp -t coach-plans-api.XXXXXX)"
# tee ignores Ctrl-C, so the API's shutdown lines still reach the terminal; it ends with the API.
"$UV" run coach-plans-api serve > >(trap '' INT TERM; exec tee "$api_log") 2>&1 &
api=$!
trap 'kill -TERM "$api" ${bot:-} 2>/dev/null; wait; rm -f "$api_log"' INT TERM EXIT
check api "$API_BASE_URL" "$api_log" "$api"

"$UV" run coach-plans-bot &
bot=$!
if $mock; then check plans "$API_BASE_URL" "$bot"; fi
echo "Coach Plans is up: $API_BASE_URL/ (dashboard) and $API_BASE_URL/docs (API)"
echo "  try: curl '$API_BASE_URL/api/coach-plans/?coach=coach_d'"
wait -n "$api" "$bot"
