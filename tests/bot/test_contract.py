"""One contract between bot and API: the limits the bot checks are the ones the API enforces.

The bot keeps its own copy (parsing.py) instead of reading `GET /api/v1/limits` at start: the
slash command's chart options and the help text are built before the API may be reachable, and
a copy needs no start-up dependency. This test fails the build when the copies drift.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from coach_plans_bot import parsing
from coach_plans_bot.parsing import Attachment, select_charts


def test_the_bots_limits_are_the_apis(api_client: TestClient) -> None:
    response = api_client.get("/api/v1/limits")

    assert response.status_code == 200
    limits = response.json()
    assert limits["max_plan_chars"] == parsing.MAX_PLAN_CHARS
    assert limits["max_charts"] == parsing.MAX_CHARTS
    assert set(limits["chart_content_types"]) == parsing.IMAGE_TYPES
    assert set(limits["chart_extensions"]) == parsing.IMAGE_EXTENSIONS
    assert limits["max_body_bytes"] == 64 * 1024
    assert api_client.app.openapi()["paths"]["/api/v1/limits"]["get"]["operationId"] == "get_limits"  # type: ignore[attr-defined]


def test_the_bot_keeps_exactly_the_charts_the_api_takes(
    api_client: TestClient, internal_headers: dict[str, str]
) -> None:
    """Whatever Discord says about an attachment: kept by the bot <=> taken by the API."""
    names = ["a.png", "b.JPG", "c.jpeg", "d.gif", "e.webp", "f.bmp", "g.svg", "h", "i.pdf"]
    types = [None, "image/png", "image/jpg", "IMAGE/JPEG; q=1", "image/pjpeg", "image/svg+xml",
             "application/pdf", "image/bmp", "text/html", "image/webp"]  # fmt: skip
    kept = skipped = 0
    for n, (name, content_type) in enumerate((name, ctype) for name in names for ctype in types):
        url = f"https://cdn.discordapp.com/attachments/1/{n}/{name}"
        attachment = Attachment(url=url, filename=name, content_type=content_type)
        selection = select_charts([attachment])
        sent = selection.charts[0] if selection.charts else attachment
        body = {
            "plan_text": "contract",
            "charts": [{"url": sent.url, "filename": sent.filename, "content_type": sent.content_type}],
            "actor": {"user_id": "1", "display_name": "Dan"},
            "message_id": str(1000 + n),
        }
        response = api_client.put("/internal/plans/coach_d/2026-11-25", json=body, headers=internal_headers)
        if selection.charts:
            kept += 1
            assert response.status_code in (200, 201), (attachment, response.text)
        else:
            skipped += 1
            assert response.status_code == 422, (attachment, response.text)
    assert kept > 20
    assert skipped > 20
