"""The one log format: text and JSON lines that no logged text can break, secrets masked."""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
from pathlib import Path

import pytest

from coach_plans_common import (
    LOG_FILE_BACKUPS,
    LOG_FILE_BYTES,
    JsonFormatter,
    Redactor,
    TextFormatter,
    configure_logging,
    escape_controls,
)

TEXT_RECORD = re.compile(
    r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: "
)
FORGED = "2026-11-30 12:00:00,000 INFO coach_plans_bot: plan stored by admin"
# Every character some log reader, pager or terminal takes for a line end or a command.
BREAKERS = ["\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
CONTROLS = [*BREAKERS, "\x00", "\x1b[2K\x1b[1G", "\x7f", "\x9b"]
SECRET = "s3cret-internal-token-" + "x" * 20


def records(formatter: logging.Formatter, hostile: str) -> str:
    """What `formatter` writes for a message, an extra field and an exception carrying `hostile`."""
    logger = logging.Logger("coach_plans_bot.test")
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    logger.info("command plan by %s (42)", f"Dan{hostile}{FORGED}", extra={"display_name": f"x{hostile}y"})
    try:
        raise ValueError(f"bad plan{hostile}{FORGED}")
    except ValueError:
        logger.exception("failed %s", SECRET)
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("hostile", CONTROLS, ids=[f"U+{ord(c[0]):04X}" for c in CONTROLS])
def test_text_records_cannot_be_forged(hostile: str) -> None:
    text = records(TextFormatter(Redactor([SECRET])), hostile)

    lines = text.splitlines()  # splits on every breaker, as some readers do
    assert lines == text.split("\n")[:-1], "only real record ends (and traceback lines) break lines"
    assert [bool(TEXT_RECORD.match(line)) for line in lines].count(True) == 2  # two records
    assert all(TEXT_RECORD.match(line) or line.startswith("    ") for line in lines), lines
    assert not any(line.startswith("2026-11-30 12:00:00") for line in lines)
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]", text)
    assert f"by Dan{escape_controls(hostile)}2026-11-30" in lines[0]
    # A line break inside an exception message stays a line break of the indented traceback.
    traceback = "\n".join(line.removeprefix("    ") for line in lines[2:])
    assert f"ValueError: bad plan{escape_controls(hostile.replace(chr(10), ''))}" in traceback
    assert SECRET not in text
    assert "failed ***" in text


@pytest.mark.parametrize("hostile", CONTROLS, ids=[f"U+{ord(c[0]):04X}" for c in CONTROLS])
def test_json_records_cannot_be_forged(hostile: str) -> None:
    text = records(JsonFormatter(Redactor([SECRET])), hostile)

    lines = text.splitlines()
    assert lines == text.split("\n")[:-1]
    assert not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029]", text.replace("\n", ""))
    first, second = (json.loads(line) for line in lines)
    assert list(first) == ["time", "level", "logger", "message", "display_name"]
    assert list(second) == ["time", "level", "logger", "message", "exc_info"]
    # The message reads as it does in the text format; a traceback keeps its lines.
    assert first["message"] == f"command plan by Dan{escape_controls(hostile)}{FORGED} (42)"
    assert first["display_name"] == f"x{escape_controls(hostile)}y"
    assert second["message"] == "failed ***"
    traceback = second["exc_info"].split("\n")
    assert f"{escape_controls(hostile.replace(chr(10), ''))}{FORGED}" in "".join(traceback)
    assert SECRET not in text


def test_json_escapes_what_the_encoder_turns_into_text_itself() -> None:
    class Shown:
        def __str__(self) -> str:
            return "line\u2028break\x85and\x9bcsi"

    record = logging.LogRecord("t", logging.INFO, __file__, 1, "m", None, None)
    record.thing = Shown()
    line = JsonFormatter(Redactor([])).format(record)
    assert not re.search("[\x7f-\x9f\u2028\u2029]", line)
    assert json.loads(line)["thing"] == "line\u2028break\x85and\x9bcsi"


def test_only_real_secrets_are_masked() -> None:
    redact = Redactor(["o", "", None, "fifteen-chars-x", SECRET, SECRET + "-longer"])
    assert redact("one token o") == "one token o"
    assert redact("fifteen-chars-x") == "fifteen-chars-x"  # shorter than 16: not a secret we accept
    assert redact(f"a {SECRET} b {SECRET}-longer c") == "a *** b *** c"


def test_both_formats_agree_on_the_time_in_utc() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "m", None, None)
    record.created, record.msecs = 1_764_511_509.25, 250.0  # 2025-11-30 14:05:09.250 UTC
    text = TextFormatter(Redactor([])).format(record)
    entry = json.loads(JsonFormatter(Redactor([])).format(record))
    assert text == "2025-11-30 14:05:09,250 INFO t: m"
    assert entry == {"time": "2025-11-30T14:05:09.250+00:00", "level": "INFO", "logger": "t", "message": "m"}


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_configure_logging_writes_a_rotating_file(tmp_path: Path, log_format: str) -> None:
    log_file = tmp_path / "logs" / "service.log"
    configure_logging(level="warning", log_format=log_format, log_file=log_file, secrets=[SECRET])  # type: ignore[arg-type]

    logging.getLogger("coach_plans_api").info("hidden below WARNING")
    logging.getLogger("coach_plans_api").warning("token %s\nforged", SECRET)

    [line] = log_file.read_text(encoding="utf-8").splitlines()
    message = json.loads(line)["message"] if log_format == "json" else line.split(": ", 1)[1]
    assert message == "token ***\\x0aforged"
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler))
    assert isinstance(handler, logging.handlers.RotatingFileHandler)
    assert (
        (handler.maxBytes, handler.backupCount) == (LOG_FILE_BYTES, LOG_FILE_BACKUPS) == (10 * 1024 * 1024, 5)
    )
