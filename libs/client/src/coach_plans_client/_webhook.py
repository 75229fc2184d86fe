"""Discord embeds for TradingAgents' trading summaries."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["build_summary_embed", "decision_of", "redact_webhook_url"]

BUY_COLOUR = 0x2ECC71
SELL_COLOUR = 0xE74C3C
HOLD_COLOUR = 0xF1C40F
NEUTRAL_COLOUR = 0x95A5A6
COLOURS = {"BUY": BUY_COLOUR, "SELL": SELL_COLOUR, "HOLD": HOLD_COLOUR}

# Discord's embed limits.
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FIELDS_LIMIT = 25
EMBED_LIMIT = 6000

# The explicit action comes first: TradingAgents passes its processed signal as `action`
# next to the long decision text, which may name several of BUY/SELL/HOLD while arguing.
_ACTION_KEYS = ("action", "signal")
_DECISION_TEXT_KEYS = ("decision", "final_decision", "final_trade_decision")
_DECISION_KEYS = _ACTION_KEYS + _DECISION_TEXT_KEYS
_TICKER_KEYS = ("ticker", "symbol", "company", "company_of_interest")
# The old client's description was the decision text; a summary or reasoning text wins if given.
_TEXT_KEYS = ("summary", "reasoning", "analysis", "text", "description", *_DECISION_TEXT_KEYS)
_DATE_KEYS = ("date", "trade_date")
_PROPOSAL = re.compile(r"FINAL TRANSACTION PROPOSAL:\W*(BUY|SELL|HOLD)\b", re.IGNORECASE)
_DECISION_WORD = re.compile(r"\b(BUY|SELL|HOLD)\b", re.IGNORECASE)


def _clip(text: str, limit: int) -> str:
    """At most ``limit`` characters, sendable as UTF-8 (a lone surrogate becomes "?")."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _first(summary: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[str, str] | None:
    for key in keys:
        value = summary.get(key)
        if value not in (None, ""):
            return key, str(value)
    return None


def decision_of(summary: Mapping[str, Any] | str) -> str | None:
    """``BUY``, ``SELL`` or ``HOLD``: the ``action`` when it names one, else the decision text's.

    In a text, a "FINAL TRANSACTION PROPOSAL: X" line wins over the first word found.
    """
    if isinstance(summary, str):
        texts = [summary]
    else:
        texts = [str(summary[key]) for key in _DECISION_KEYS if summary.get(key) not in (None, "")]
    for text in texts:
        match = _PROPOSAL.search(text) or _DECISION_WORD.search(text)
        if match:
            return match.group(1).upper()
    return None


def build_summary_embed(
    summary: Mapping[str, Any] | str, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """A Discord embed for a summary: coloured by decision, within Discord's size limits."""
    decision = decision_of(summary)
    timestamp = (now or dt.datetime.now(dt.timezone.utc)).isoformat()
    fields: list[dict[str, Any]] = []
    if isinstance(summary, str):
        title = "Trading Summary"
        description = summary
    else:
        used: set[str] = set()
        ticker = _first(summary, _TICKER_KEYS)
        text = _first(summary, _TEXT_KEYS)
        title = f"Trading Summary - {ticker[1]}" if ticker else "Trading Summary"
        description = text[1] if text else ""
        used.update(found[0] for found in (ticker, text) if found)
        for key, value in summary.items():
            if key in used or value in (None, ""):
                continue
            name = str(key).replace("_", " ").title()
            shown = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            fields.append(
                {
                    "name": _clip(name, FIELD_NAME_LIMIT),
                    "value": _clip(shown, FIELD_VALUE_LIMIT),
                    "inline": key in _DECISION_KEYS + _DATE_KEYS or len(shown) <= 40,
                }
            )
    embed: dict[str, Any] = {
        "title": _clip(title, TITLE_LIMIT),
        "description": _clip(description, DESCRIPTION_LIMIT),
        "color": COLOURS.get(decision or "", NEUTRAL_COLOUR),
        "fields": fields[:FIELDS_LIMIT],
        "timestamp": timestamp,
        "footer": {"text": "TradingAgents · Coach Plans"},
    }
    _fit(embed)
    return embed


def _size(embed: Mapping[str, Any]) -> int:
    fields = embed["fields"]
    return (
        len(embed["title"])
        + len(embed["description"])
        + len(embed["footer"]["text"])
        + sum(len(field["name"]) + len(field["value"]) for field in fields)
    )


def _fit(embed: dict[str, Any]) -> None:
    """Drop trailing fields, then shorten the description, until Discord accepts the embed."""
    while _size(embed) > EMBED_LIMIT and embed["fields"]:
        embed["fields"].pop()
    excess = _size(embed) - EMBED_LIMIT
    if excess > 0:
        embed["description"] = _clip(embed["description"], len(embed["description"]) - excess)


def redact_webhook_url(url: str) -> str:
    """The URL without its secret token, safe to log."""
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[::1": nothing in it can be told apart from a token
        return "<not a URL>"
    path = parts.path
    match = re.match(r"(.*/webhooks/\d+)/", path)
    if match:
        path = f"{match.group(1)}/***"
    return f"{parts.scheme}://{parts.netloc}{path}"
