"""Pure parsing of command input and shaping of replies; nothing here touches Discord."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

DISCORD_MESSAGE_LIMIT = 2000
MAX_HISTORY_DAYS = 365
# The API's limits, as it publishes them at GET /api/v1/limits; tests/bot/test_contract.py fails
# the build when these copies drift from the API's.
MAX_PLAN_CHARS = 10_000
MAX_CHARTS = 10
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
IMAGE_EXTENSIONS = frozenset({"png", "jpg", "jpeg", "gif", "webp"})
MAX_CHART_URL_CHARS = 2048
MAX_CHART_FILENAME_CHARS = 255
# Content types some clients send for a JPEG: the same file, under the name the API knows.
CONTENT_TYPE_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg"}
PLAN_USAGE = "`!plan d: <text>` or `!plan d 2026-11-26: <text>`"

_PLAN_HEAD = re.compile(r"^\s*(?P<coach>[^\s:]+)(?:\s+(?P<date>[^\s:]+))?\s*:(?P<text>.*)$", re.S)


class UserInputError(Exception):
    """Input a poster can fix; the message is the reply shown in Discord."""


class UsageError(UserInputError):
    """The command does not follow its syntax."""


class UnknownCoachError(UserInputError):
    """The coach is not in the roster."""


class BadDateError(UserInputError):
    """The date is not a real ISO date."""


class EmptyPlanError(UserInputError):
    """The plan has no text."""


class PlanTooLongError(UserInputError):
    """The plan text is over the limit."""


class BadDaysError(UserInputError):
    """The number of days of history is out of range."""


@dataclass(frozen=True)
class Coach:
    """One coach of the roster: `coach_d`, key `d`, display name `Coach D`."""

    coach: str
    key: str
    name: str


DEFAULT_ROSTER: tuple[Coach, ...] = tuple(
    Coach(coach=f"coach_{key}", key=key, name=f"Coach {key.upper()}") for key in "disn"
)


@dataclass(frozen=True)
class Roster:
    """The coaches the bot accepts, with their accepted spellings."""

    coaches: tuple[Coach, ...] = DEFAULT_ROSTER

    def resolve(self, raw: str) -> Coach:
        """Find a coach by `d`, `D`, `coach_d` or `Coach_D`; raise UnknownCoachError."""
        wanted = raw.strip().lower()
        for coach in self.coaches:
            if wanted in (coach.key.lower(), coach.coach.lower()):
                return coach
        known = ", ".join(coach.key for coach in self.coaches)
        raise UnknownCoachError(f"Unknown coach `{raw.strip()}`. Known coaches: {known}.")

    def name_of(self, coach_id: str) -> str:
        """The display name of a stored coach id, or the id itself if unknown."""
        for coach in self.coaches:
            if coach.coach == coach_id:
                return coach.name
        return coach_id


@dataclass(frozen=True)
class PlanRequest:
    """A parsed `!plan`: which coach, which day, what text."""

    coach: Coach
    date: dt.date
    text: str


@dataclass(frozen=True)
class Attachment:
    """What the bot knows about one Discord attachment."""

    url: str
    filename: str
    content_type: str | None = None
    size_bytes: int | None = None


@dataclass(frozen=True)
class ChartSelection:
    """The attachments kept as charts (in order) and a warning for each one skipped."""

    charts: tuple[Attachment, ...] = ()
    warnings: tuple[str, ...] = field(default=())


def parse_date(raw: str) -> dt.date:
    """Parse an ISO `YYYY-MM-DD` date; raise BadDateError."""
    text = raw.strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise BadDateError(f"Bad date `{text}`: use YYYY-MM-DD, e.g. 2026-11-26.")
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise BadDateError(f"Bad date `{text}`: {exc}.") from exc


def optional_date(raw: str | None, today: dt.date) -> dt.date:
    """The given date, or today when none is given."""
    return today if raw is None or not raw.strip() else parse_date(raw)


def check_plan_text(text: str) -> str:
    """Trim a plan text and check it is 1..10,000 characters."""
    trimmed = text.strip()
    if not trimmed:
        raise EmptyPlanError("The plan text is empty: write the plan after the colon.")
    if len(trimmed) > MAX_PLAN_CHARS:
        raise PlanTooLongError(
            f"The plan is {len(trimmed):,} characters long; the limit is {MAX_PLAN_CHARS:,}."
        )
    return trimmed


def parse_plan_args(args: str, *, roster: Roster, today: dt.date) -> PlanRequest:
    """Parse `d: text` or `d 2026-11-26: text` (the part after `!plan`)."""
    match = _PLAN_HEAD.match(args)
    if match is None:
        raise UsageError(f"Usage: {PLAN_USAGE}")
    coach = roster.resolve(match.group("coach"))
    day = optional_date(match.group("date"), today)
    return PlanRequest(coach=coach, date=day, text=check_plan_text(match.group("text")))


def parse_days(raw: int | None, default: int = 7) -> int:
    """Days of history: 1..365."""
    days = default if raw is None else raw
    if not 1 <= days <= MAX_HISTORY_DAYS:
        raise BadDaysError(f"Days must be between 1 and {MAX_HISTORY_DAYS}, not {days}.")
    return days


def normalise_content_type(content_type: str | None) -> str | None:
    """`image/JPG; q=1` -> `image/jpeg`: the bare, lower-case type, aliases resolved."""
    if not content_type:
        return None
    bare = content_type.split(";")[0].strip().lower()
    return CONTENT_TYPE_ALIASES.get(bare, bare)


def is_image(attachment: Attachment) -> bool:
    """True for PNG, JPG/JPEG, GIF and WEBP (by content type, else by file extension), as the API."""
    content_type = normalise_content_type(attachment.content_type)
    if content_type:
        return content_type in IMAGE_TYPES
    name = attachment.filename or attachment.url.split("?", 1)[0].rsplit("/", 1)[-1]
    return "." in name and name.rsplit(".", 1)[-1].lower() in IMAGE_EXTENSIONS


def _refusal(attachment: Attachment) -> str | None:
    """Why the API would refuse this attachment as a chart, or None."""
    if not is_image(attachment):
        return "not an image (PNG, JPG, GIF or WEBP only)"
    if len(attachment.url) > MAX_CHART_URL_CHARS or not re.fullmatch(r"https?://\S+", attachment.url):
        return "its link is not one the plan service can store"
    name = attachment.filename
    if len(name) > MAX_CHART_FILENAME_CHARS or "/" in name or "\\" in name:
        return "its file name is not one the plan service can store"
    return None


def select_charts(attachments: Sequence[Attachment]) -> ChartSelection:
    """Keep up to 10 attachments the API takes as charts, in order; say why each other one is skipped."""
    charts: list[Attachment] = []
    warnings: list[str] = []
    for attachment in attachments:
        refusal = _refusal(attachment)
        if refusal is not None:
            warnings.append(f"Skipped `{attachment.filename}`: {refusal}.")
        elif len(charts) >= MAX_CHARTS:
            warnings.append(f"Skipped `{attachment.filename}`: at most {MAX_CHARTS} charts per plan.")
        else:
            content_type = normalise_content_type(attachment.content_type)
            charts.append(dataclasses.replace(attachment, content_type=content_type))
    return ChartSelection(charts=tuple(charts), warnings=tuple(warnings))


def preview(text: str, limit: int = 200) -> str:
    """The start of a plan on one line, cut with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def split_message(text: str, limit: int = DISCORD_MESSAGE_LIMIT) -> list[str]:
    """Split a reply into messages of at most `limit` characters, at line breaks if possible."""
    if limit < 1:
        raise ValueError("limit must be positive")
    chunks: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        candidate = line if not current else f"{current}\n{line}"
        if len(candidate) > limit:
            chunks.append(current)
            current = line
        else:
            current = candidate
    if current.strip():
        chunks.append(current)
    return chunks or [""]


def paginate(blocks: Iterable[str], limit: int = DISCORD_MESSAGE_LIMIT) -> list[str]:
    """Pack whole blocks (one per plan) into messages, splitting only oversized blocks."""
    pages: list[str] = []
    current = ""
    for block in blocks:
        for piece in split_message(block, limit):
            candidate = piece if not current else f"{current}\n{piece}"
            if len(candidate) > limit:
                pages.append(current)
                current = piece
            else:
                current = candidate
    if current:
        pages.append(current)
    return pages
