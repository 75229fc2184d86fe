"""The ceiling of the stack: uvicorn answering every request with one constant JSON body.

Served with the API's own server options (`uvicorn.run(app, host, port, log_config=None,
access_log=False)`: one worker, uvloop/httptools picked automatically). The body is a legacy
plan of the size the API returns. `--fastapi` serves the same bytes from a one-route FastAPI
app instead (framework cost without any of the API's own code).
"""

from __future__ import annotations

import argparse
import json

import uvicorn
from starlette.types import Receive, Scope, Send

from bench.seed import AUTHOR_ID, CREATED_AT, chart_url, plan_text

_DAY = CREATED_AT.date()
BODY = json.dumps(
    {
        "plan": plan_text("coach_d", _DAY),
        "charts": [chart_url("coach_d", _DAY)],
        "author": "Dan",
        "timestamp": CREATED_AT.isoformat().replace("+00:00", "Z"),
        "id": 1,
        "coach": "coach_d",
        "date": _DAY.isoformat(),
        "edited": False,
        "edited_at": None,
        "channel": "trading-plans",
        "tickers": ["NVDA", "AMD"],
        "author_id": AUTHOR_ID,
    },
    separators=(",", ":"),
).encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":  # lifespan: nothing to set up
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def fastapi_app() -> object:
    from fastapi import FastAPI, Response

    api = FastAPI()

    @api.get("/{path:path}")
    async def constant(path: str) -> Response:  # noqa: ARG001 - answers any path
        return Response(BODY, media_type="application/json")

    return api


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fastapi", action="store_true", help="serve the body from FastAPI")
    args = parser.parse_args()
    uvicorn.run(
        fastapi_app() if args.fastapi else app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
