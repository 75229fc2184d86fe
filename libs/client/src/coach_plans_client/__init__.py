"""Python client of the Coach Plans API, with the drop-in ``DiscordWebhookClient``."""

from ._client import AsyncCoachPlansClient, CoachPlansClient
from ._errors import (
    APIError,
    BadRequestError,
    ClientClosedError,
    CoachPlansError,
    ConnectionError,
    InvalidResponseError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TimeoutError,
)
from ._legacy import DiscordWebhookClient
from ._models import (
    Chart,
    Coach,
    CoachPlan,
    Health,
    Level,
    Plan,
    PlanEvent,
    PlanPage,
    Revision,
    SearchHit,
    SearchPage,
    TickerLevels,
)

# Exported by 2.0 and kept importable for code written against it, but internals rather than
# part of the documented surface (``mock_mode=True`` replaces the mock transport).
from ._cache import CacheEntry as CacheEntry, TTLCache as TTLCache  # isort: skip
from ._mock import mock_plan as mock_plan, mock_transport as mock_transport  # isort: skip
from ._webhook import build_summary_embed as build_summary_embed  # isort: skip

__version__ = "2.0.0"

__all__ = [
    "APIError",
    "AsyncCoachPlansClient",
    "BadRequestError",
    "Chart",
    "ClientClosedError",
    "Coach",
    "CoachPlan",
    "CoachPlansClient",
    "CoachPlansError",
    "ConnectionError",
    "DiscordWebhookClient",
    "Health",
    "InvalidResponseError",
    "Level",
    "NotFoundError",
    "Plan",
    "PlanEvent",
    "PlanPage",
    "RateLimitError",
    "Revision",
    "SearchHit",
    "SearchPage",
    "ServerError",
    "TickerLevels",
    "TimeoutError",
    "__version__",
]
