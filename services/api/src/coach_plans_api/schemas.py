"""Request and response models: the public contract as it appears in OpenAPI."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from coach_plans_api.charts import url_error
from coach_plans_api.models import ArchiveStatus, RevisionAction

MAX_PLAN_CHARS = 10_000
MAX_CHARTS = 10
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
IMAGE_EXTENSIONS = {"png", "jpg", "jpeg", "gif", "webp"}
# Every integer a client sends is bounded, so none can overflow a database column.
MAX_ID = 2**31 - 1
MAX_DECLARED_CHART_BYTES = 2**31 - 1
MAX_HISTORY_DAYS = 365

Snowflake = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}$")]
# When a write comes from an edit of the Discord message: the edit's time. It makes each edit a
# write of its own, so an edit back to an earlier text is not taken for a retry of that text.
MessageEditedAt = Annotated[AwareDatetime | None, Field(examples=["2026-11-25T13:05:00+00:00"])]
PlanText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PLAN_CHARS)]


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class Strict(BaseModel):
    """Request bodies: unknown fields and NUL characters (PostgreSQL cannot store them) refused."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: object) -> object:
        if _has_nul(data):
            raise ValueError("text must not contain NUL (\\x00) characters")
        return data


# --- errors ---------------------------------------------------------------------------------
class FieldError(BaseModel):
    field: str
    message: str


class ErrorOut(BaseModel):
    error: str = Field(examples=["not_found"])
    detail: str
    fields: list[FieldError] | None = None


class LegacyNotFoundOut(ErrorOut):
    plan: str = Field(examples=["No plan available for coach_d on 2026-11-25"])
    charts: list[str]


# --- requests -------------------------------------------------------------------------------
class Actor(Strict):
    user_id: Snowflake
    display_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    is_admin: bool = False


class ChartIn(Strict):
    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2048)]
    filename: Annotated[str, StringConstraints(max_length=255)] | None = None
    content_type: Annotated[str, StringConstraints(max_length=100)] | None = None
    size_bytes: Annotated[int, Field(ge=0, le=MAX_DECLARED_CHART_BYTES)] | None = None

    @field_validator("url")
    @classmethod
    def _fetchable(cls, value: str) -> str:
        reason = url_error(value)
        if reason is not None:
            raise ValueError(f"not a valid chart URL: {reason}")
        return value

    @field_validator("filename")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and ("/" in value or "\\" in value or "\x00" in value):
            raise ValueError("filename must be a plain file name, without a path")
        return value

    @model_validator(mode="after")
    def _image_only(self) -> ChartIn:
        if self.content_type:
            ok = self.content_type.split(";")[0].strip().lower() in IMAGE_TYPES
        else:
            name = self.filename or self.url.split("?", 1)[0].rsplit("/", 1)[-1]
            ok = "." in name and name.rsplit(".", 1)[-1].lower() in IMAGE_EXTENSIONS
        if not ok:
            raise ValueError("a chart must be a PNG, JPG, JPEG, GIF or WEBP image")
        return self


class PlanPut(Strict):
    plan_text: PlanText
    charts: list[ChartIn] = Field(default_factory=list, max_length=MAX_CHARTS)
    actor: Actor
    message_id: Snowflake
    message_edited_at: MessageEditedAt = None
    channel: Annotated[str, StringConstraints(max_length=100)] | None = None
    channel_id: Snowflake | None = None


class PlanPatch(Strict):
    plan_text: PlanText | None = None
    charts: list[ChartIn] | None = Field(default=None, max_length=MAX_CHARTS)
    actor: Actor
    message_id: Snowflake
    message_edited_at: MessageEditedAt = None


class PlanDelete(Strict):
    actor: Actor
    message_id: Snowflake


class ClearIn(Strict):
    date: str = Field(examples=["2026-11-25"])
    actor: Actor
    message_id: Snowflake


class HeartbeatIn(Strict):
    bot_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "main"
    connected: bool = True
    mock_mode: bool = False
    outbox_pending: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = Field(
        default=None, description="writes in the bot's outbox waiting for delivery"
    )
    outbox_dead: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = Field(
        default=None, description="writes the API kept failing on, waiting for an admin (`!outbox`)"
    )


# --- responses ------------------------------------------------------------------------------
class ChartOut(BaseModel):
    url: str = Field(description="the archived copy's stable URL once archived, else the original")
    order: int
    filename: str | None
    content_type: str | None
    size_bytes: int | None
    original_url: str | None = None
    sha256: str | None = None
    archive_status: ArchiveStatus = ArchiveStatus.pending


class LevelOut(BaseModel):
    """One price level read from the plan text (docs/levels.md)."""

    kind: Literal["entry", "target", "stop", "support", "resistance", "pivot", "strike"] = Field(
        description="`entry` covers entries and triggers"
    )
    condition: Literal["above", "below", "reclaim", "break", "at", "call", "put"] | None = Field(
        description="how an entry triggers (`above 950`), a stop's side, or a strike's call/put"
    )
    value: float = Field(examples=[950.0])
    high: float | None = Field(description="the top of a zone (`950-955`), else null")
    span: tuple[int, int] = Field(
        description="`[start, end)` in characters of the plan text: the phrase the level came from",
        examples=[[5, 19]],
    )


class TickerLevelsOut(BaseModel):
    ticker: str = Field(examples=["NVDA"])
    bias: Literal["long", "short", "neutral"]
    levels: list[LevelOut]


class HistoryPlanOut(BaseModel):
    """A plan as `/api/coach-plans/history` shows it: the legacy URLs keep their fields."""

    id: int
    coach: str = Field(examples=["coach_d"])
    coach_display_name: str
    date: dt.date
    plan: str
    charts: list[ChartOut]
    author: str
    author_id: str
    channel: str | None
    channel_id: str | None
    source_message_id: str | None
    created_at: dt.datetime
    edited_at: dt.datetime | None
    edited: bool
    deleted_at: dt.datetime | None
    tickers: list[str] = Field(examples=[["NVDA", "QQQ"]])


class PlanOut(HistoryPlanOut):
    levels: list[TickerLevelsOut] = Field(
        default_factory=list, description="per ticker, the bias and price levels read from the text"
    )


class LegacyPlanOut(BaseModel):
    plan: str
    charts: list[str]
    author: str
    timestamp: dt.datetime
    id: int
    coach: str
    date: dt.date
    edited: bool
    edited_at: dt.datetime | None
    channel: str | None
    tickers: list[str]


class PlanPage(BaseModel):
    items: list[PlanOut]
    next_cursor: str | None


class HistoryOut(BaseModel):
    coach: str
    days: int
    plans: list[HistoryPlanOut]


MAX_QUERY_CHARS = 200


class SearchHitOut(BaseModel):
    """A plan whose text matches, with a plain-text snippet; `snippet[start:end]` is a matched word
    for each `[start, end)` of `highlights`."""

    plan: PlanOut
    snippet: str
    highlights: list[tuple[int, int]] = Field(examples=[[[3, 7], [14, 17]]])
    score: float = Field(description="higher is a better match; comparable within one search only")


class SearchPage(BaseModel):
    items: list[SearchHitOut]
    next_cursor: str | None


class RevisionOut(BaseModel):
    id: int
    plan_id: int
    action: RevisionAction
    plan_text: str
    charts: list[ChartOut]
    editor: str
    editor_id: str
    message_id: str | None
    created_at: dt.datetime


class RevisionsOut(BaseModel):
    plan_id: int
    revisions: list[RevisionOut]


class CoachOut(BaseModel):
    coach: str = Field(examples=["coach_d"])
    key: str = Field(examples=["d"])
    name: str = Field(examples=["Coach D"])


class CoachesOut(BaseModel):
    coaches: list[CoachOut]


class ClearOut(BaseModel):
    date: dt.date
    deleted: int
    plan_ids: list[int]


class LimitsOut(BaseModel):
    """What a write may hold: the bot checks its own copy against these."""

    max_plan_chars: int = Field(examples=[MAX_PLAN_CHARS])
    max_charts: int = Field(examples=[MAX_CHARTS])
    chart_content_types: list[str] = Field(examples=[sorted(IMAGE_TYPES)])
    chart_extensions: list[str] = Field(examples=[sorted(IMAGE_EXTENSIONS)])
    max_body_bytes: int = Field(examples=[65536])


class HeartbeatOut(BaseModel):
    status: Literal["ok"]


class HealthOut(BaseModel):
    status: Literal["healthy", "unhealthy"]
    bot_connected: bool
    database_connected: bool
    plans_count: int | None
    uptime_seconds: float
    version: str
    instance_id: str = Field(description="random per API process: tells which process answered")
    reason: str | None = Field(None, description="why the database is unavailable; null when healthy")


class MetricsOut(BaseModel):
    total_requests: int
    error_count: int
    error_rate: float
    cache_hit_rate: float
    average_response_time_ms: float
    uptime_seconds: float


class PlanEvent(BaseModel):
    """One change, as announced on `/api/v1/events`; `id` is the revision id (ordered)."""

    type: Literal["plan.created", "plan.updated", "plan.deleted"]
    id: int
    plan_id: int
    coach: str
    date: dt.date
    at: dt.datetime
