"""Log lines: text or JSON, a rotating file, one line per stored plan, never the token."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from coach_plans_api.app import create_app
from coach_plans_api.observability import configure_logging
from coach_plans_common import LOG_FILE_BACKUPS, LOG_FILE_BYTES
from tests.conftest import INTERNAL_TOKEN, make_settings, plan_body


@pytest.mark.usefixtures("restore_logging")
def test_json_log_file_has_plan_and_request_lines_and_no_token(database_url: str, tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "api.log"
    settings = make_settings(database_url, log_file=log_file, log_format="json")
    configure_logging(settings)
    with TestClient(create_app(settings)) as client:
        client.put(
            "/internal/plans/d/2026-11-25",
            json=plan_body(text="NVDA 950", charts=["https://c.example/a.png"]),
            headers={"Authorization": f"Bearer {INTERNAL_TOKEN}"},
        )
        client.get("/api/coach-plans/", params={"coach": "d", "date": "2026-11-25"})
        logging.getLogger("coach_plans_api").info("leaked %s", INTERNAL_TOKEN)
    text = log_file.read_text()
    assert INTERNAL_TOKEN not in text
    entries = [json.loads(line) for line in text.splitlines()]
    messages = [e["message"] for e in entries]
    assert any(
        "plan stored" in m and "coach=coach_d date=2026-11-25 length=8 charts=1" in m for m in messages
    )
    assert any(m.startswith("GET /api/coach-plans/?coach=d&date=2026-11-25 200 ") for m in messages)
    assert "leaked ***" in messages
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler))
    assert (handler.maxBytes, handler.backupCount) == (LOG_FILE_BYTES, LOG_FILE_BACKUPS)  # type: ignore[attr-defined]


@pytest.mark.usefixtures("restore_logging")
def test_text_format(database_url: str, tmp_path: Path) -> None:
    log_file = tmp_path / "api.log"
    configure_logging(make_settings(database_url, log_file=log_file, log_level="warning"))
    logging.getLogger("coach_plans_api").info("hidden below WARNING")
    logging.getLogger("coach_plans_api").warning("shown")
    lines = log_file.read_text().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("WARNING coach_plans_api: shown")
