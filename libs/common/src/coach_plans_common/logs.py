"""One log format for every service: text or JSON lines, secrets masked, nothing can forge a record.

Text: `2026-11-30 14:05:09,123 LEVEL logger: message`, a traceback after it indented, so every
record starts at column 0 with its time and nothing else does. JSON (python-json-logger): one
object per line with `time` (ISO 8601), `level`, `logger`, `message`, `exc_info` when there is
one, then any extra fields. Times are UTC in both.
"""

from __future__ import annotations

import datetime as dt
import logging
import logging.handlers
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_FILE_BACKUPS = 5
# Shorter values are not secrets the services accept (their tokens have 32+ characters); masking
# them would mask ordinary words.
MIN_SECRET_LENGTH = 16
MASK = "***"

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: anything a log reader
# could take for the end of a line, or a terminal for a command. Clients and Discord users
# control paths, queries, headers, display names and plan texts.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# What json.dumps(ensure_ascii=False) leaves raw: it escapes C0 itself.
_JSON_RAW = re.compile("[\x7f-\x9f\u2028\u2029]")
_INDENT = "    "


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` on one line: every control character shown as its escape (a newline as `\\x0a`)."""
    return _CONTROL.sub(_escape, text)


def iso_time(record: logging.LogRecord) -> str:
    """The record's time, ISO 8601 in UTC with milliseconds."""
    return dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")


def _text_time(record: logging.LogRecord) -> str:
    """`2026-11-30 14:05:09,123` in UTC: the standard library's layout, the JSON format's clock."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(record.created)) + f",{int(record.msecs):03d}"


class Redactor:
    """Masks the configured secrets (those long enough to be real ones) in a text."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        real = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted(real, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def line(self, text: str) -> str:
        """Masked and escaped onto one line."""
        return escape_controls(self(text))


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message`; a traceback follows on indented lines."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        clean = self._redact.line
        message = clean(record.getMessage())
        text = f"{_text_time(record)} {record.levelname} {clean(record.name)}: {message}"
        details = []
        if record.exc_info:
            details.append(self.formatException(record.exc_info))
        if record.stack_info:
            details.append(self.formatStack(record.stack_info))
        # A traceback keeps its lines, each escaped and indented: an exception message carrying
        # a line break cannot start a line that looks like a record of its own.
        for block in details:
            text += "".join(f"\n{_INDENT}{clean(line)}" for line in block.split("\n"))
        return text


class JsonFormatter(_JsonFormatter):
    """One JSON object per line; the message and every extra text field escaped as in the text format."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__(
            "{levelname}{name}{message}",
            style="{",
            rename_fields={"levelname": "level", "name": "logger"},
            # uvicorn attaches a copy of its message with terminal colours: not a field of ours.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
            json_ensure_ascii=False,  # names stay readable; the controls are escaped below
        )
        self._redact = redact

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["time"] = iso_time(record)
        super().add_fields(log_data, record, message_dict)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: self._clean(key, value) for key, value in log_data.items()}

    def _clean(self, key: str, value: Any) -> Any:
        if isinstance(value, str):
            # A traceback keeps its line breaks (JSON encodes them); everything else is one line.
            if key in ("exc_info", "stack_info"):
                return "\n".join(self._redact.line(line) for line in value.split("\n"))
            return self._redact.line(value)
        if isinstance(value, dict):
            return {k: self._clean(k, v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(key, v) for v in value]
        return value

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        # Values the encoder turns into text itself (objects in extra fields) were not cleaned
        # above; no raw separator survives this pass, whatever they held.
        return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", super().jsonify_log_record(log_data))


class LogFileError(ValueError):
    """`LOG_FILE` names a file that cannot be written (a directory, a missing device): a setting
    to fix, said in one line like any other bad setting."""


def configure_logging(
    *,
    level: str,
    log_format: Literal["text", "json"],
    log_file: Path | None,
    secrets: Iterable[str | None] = (),
) -> None:
    """Root logging to stderr (and a file rotating at 10 MB, 5 kept) in the given format.

    Raises `LogFileError` when the file cannot be opened.
    """
    redact = Redactor(secrets)
    formatter: logging.Formatter = JsonFormatter(redact) if log_format == "json" else TextFormatter(redact)
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(
                logging.handlers.RotatingFileHandler(
                    log_file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
                )
            )
        except OSError as exc:
            raise LogFileError(f"LOG_FILE: cannot write {log_file}: {exc.strerror or exc}") from None
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level.upper())
