"""Python client of the Coach Plans API, with the drop-in ``DiscordWebhookClient``."""

from ._cache import CacheEntry, TTLCache
from ._client import AsyncCoachPlansClient, CoachPlansClient
from ._errors import (
    APIError,
    BadRequestError,
    CoachPlansError,
    ConnectionError,
    InvalidResponseError,
    NotFoundError,
    RateLimitError,
    ServerError,
    TimeoutError,
)
from ._legacy import DiscordWebhookClient
from ._mock import mock_plan, mock_transport
from ._models import Chart, Coach, CoachPlan, Health, Plan, PlanEvent, PlanPage, Revision
from ._webhook import build_summary_embed

__version__ = "2.0.0"

__all__ = [
    "APIError",
    "AsyncCoachPlansClient",
    "BadRequestError",
    "CacheEntry",
    "Chart",
    "Coach",
    "CoachPlan",
    "CoachPlansClient",
    "CoachPlansError",
    "ConnectionError",
    "DiscordWebhookClient",
    "Health",
    "InvalidResponseError",
    "NotFoundError",
    "Plan",
    "PlanEvent",
    "PlanPage",
    "RateLimitError",
    "Revision",
    "ServerError",
    "TTLCache",
    "TimeoutError",
    "__version__",
    "build_summary_embed",
    "mock_plan",
    "mock_transport",
]
