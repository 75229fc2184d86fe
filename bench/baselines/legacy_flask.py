"""The old server, as it was: a Flask app over an in-memory dict, on Flask's built-in server.

Keys look like `coach_d_2026-11-25`; the endpoints and fields are the old ones. It holds the
same 100 plans the API holds in the 100-plan runs. Werkzeug's per-request log line is turned
off, like the API's access log in the bench, so neither pays for logging.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from typing import Any

from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue

from bench.seed import COACHES, CREATED_AT, chart_url, day_of, plan_text

app = Flask(__name__)
coach_plans: dict[str, dict[str, Any]] = {}
started = dt.datetime.now(dt.UTC)


def load(today: dt.date, days: int) -> None:
    for day_index in range(days):
        day = day_of(today, day_index)
        for coach in COACHES:
            coach_plans[f"{coach}_{day.isoformat()}"] = {
                "plan": plan_text(coach, day),
                "charts": [chart_url(coach, day)],
                "author": "Dan",
                "timestamp": CREATED_AT.isoformat(),
            }


def _date() -> str:
    return request.args.get("date") or dt.date.today().isoformat()


@app.route("/api/coach-plans/")
@app.route("/api/coach-plans")
def get_coach_plan() -> ResponseReturnValue:
    coach = request.args.get("coach", "coach_d")
    date = _date()
    plan = coach_plans.get(f"{coach}_{date}")
    if plan is None:
        return jsonify({"plan": f"No plan available for {coach} on {date}", "charts": []}), 404
    return jsonify(plan)


@app.route("/api/coach-plans/all")
def get_all_plans() -> ResponseReturnValue:
    date = _date()
    return jsonify(
        {coach: coach_plans[f"{coach}_{date}"] for coach in COACHES if f"{coach}_{date}" in coach_plans}
    )


@app.route("/health")
def health() -> ResponseReturnValue:
    return jsonify(
        {
            "status": "healthy",
            "bot_connected": True,
            "plans_count": len(coach_plans),
            "uptime_seconds": (dt.datetime.now(dt.UTC) - started).total_seconds(),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--today", type=dt.date.fromisoformat, default=dt.date.today())
    parser.add_argument("--days", type=int, default=25)
    args = parser.parse_args()
    load(args.today, args.days)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app.run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
