"""Typed errors raised by the Coach Plans clients; no raw ``httpx`` exception escapes."""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIError",
    "BadRequestError",
    "ClientClosedError",
    "CoachPlansError",
    "ConnectionError",
    "InvalidResponseError",
    "NotFoundError",
    "RateLimitError",
    "ServerError",
    "TimeoutError",
]


class CoachPlansError(Exception):
    """Base class of every error raised by the Coach Plans clients."""

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.url = url

    def __str__(self) -> str:
        if self.method and self.url:
            return f"{self.message} ({self.method} {self.url})"
        return self.message


class ClientClosedError(CoachPlansError, RuntimeError):
    """The client was used after ``close()``/``aclose()`` (or its injected httpx client was closed).

    Also a RuntimeError, which is what httpx raises in this case, so code catching that still works.
    """


# These two shadow builtins on purpose, like requests/httpx: callers spell them
# ``coach_plans_client.ConnectionError``.
class ConnectionError(CoachPlansError):
    """The API could not be reached (refused, DNS, reset, protocol error)."""


class TimeoutError(ConnectionError):
    """The API did not answer within the configured timeout."""


class InvalidResponseError(CoachPlansError):
    """The API answered, but not with the JSON the contract promises (HTML, malformed JSON)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.status_code = status_code


class APIError(CoachPlansError):
    """The API answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        error: str | None = None,
        body: Any = None,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, method=method, url=url)
        self.status_code = status_code
        self.error = error
        self.body = body


class BadRequestError(APIError):
    """400/422: the request was invalid (unknown coach, bad date, bad cursor...)."""


class NotFoundError(APIError):
    """404: no such plan."""


class RateLimitError(APIError):
    """429: rate limited; ``retry_after`` is the server's wait hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx: the API failed."""
