"""Thin async wrapper over the API's internal and public endpoints; never leaks httpx errors."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from coach_plans_bot.parsing import Coach

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Base of every error the bot's API wrapper raises."""


class ApiUnavailable(ApiError):
    """The API cannot take any request now (unreachable, timeout, 502/503/504, 408, 429, 401).

    Says nothing about the request itself: retry it, however long the outage lasts.
    """


class ApiFailed(ApiError):
    """The API took the request and failed on it (500 and other 5xx): retry a bounded number of times."""

    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        super().__init__(detail)


class ApiRejected(ApiError):
    """The API refused the request for good (4xx): retrying will not help."""

    def __init__(self, status: int, *, code: str, detail: str) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        super().__init__(f"{status} {code}: {detail}")


class ApiNotFound(ApiRejected):
    """404: no such plan (or it was deleted)."""


class ApiForbidden(ApiRejected):
    """403: not the author and not an admin."""


class ApiInvalid(ApiRejected):
    """400/413/422: the API rejected the input."""


class ApiProtocolError(ApiError):
    """The API answered with something that does not match the contract."""


class ChartView(BaseModel):
    """One chart of a stored plan."""

    model_config = ConfigDict(extra="ignore")
    url: str
    order: int = 0
    filename: str | None = None


class PlanView(BaseModel):
    """A stored plan as the v1 API returns it."""

    model_config = ConfigDict(extra="ignore")
    id: int
    coach: str
    coach_display_name: str | None = None
    date: dt.date
    plan: str
    charts: list[ChartView] = []
    author: str | None = None
    author_id: str | None = None
    source_message_id: str | None = None
    edited: bool = False
    deleted_at: dt.datetime | None = None


class ClearResult(BaseModel):
    """The answer to clearing a date."""

    model_config = ConfigDict(extra="ignore")
    date: dt.date
    deleted: int
    plan_ids: list[int] = []


# Answers that describe the API's state, not the request: an expired or rotated service token
# (401) is fixed by the operator, after which the same write goes through.
OUTAGE_STATUSES = frozenset({401, 408, 429, 502, 503, 504})


def _error_for(response: httpx.Response) -> ApiError:
    status = response.status_code
    code, detail = "http_error", response.reason_phrase or f"HTTP {status}"
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("error", code))
        detail = str(body.get("detail", detail))
        fields = body.get("fields")
        if isinstance(fields, list) and fields:
            detail += (
                " ("
                + "; ".join(
                    f"{item.get('field')}: {item.get('message')}" for item in fields if isinstance(item, dict)
                )
                + ")"
            )
    if status in OUTAGE_STATUSES:
        return ApiUnavailable(f"API answered {status} {code}: {detail}")
    if status >= 500:
        return ApiFailed(status, f"API answered {status} {code}: {detail}")
    if status == 404:
        return ApiNotFound(status, code=code, detail=detail)
    if status == 403:
        return ApiForbidden(status, code=code, detail=detail)
    if status in (400, 413, 422):
        return ApiInvalid(status, code=code, detail=detail)
    return ApiRejected(status, code=code, detail=detail)


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiProtocolError(f"expected a JSON object, got {type(body).__name__}")
    return body


class PlansApi:
    """The calls the bot makes to the API, over one shared `httpx.AsyncClient`."""

    def __init__(self, client: httpx.AsyncClient, *, internal_token: str) -> None:
        self._client = client
        self._auth = {"Authorization": f"Bearer {internal_token}"}

    async def _request(
        self,
        method: str,
        path: str,
        *,
        internal: bool = False,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        headers = self._auth if internal else None
        clean = {key: value for key, value in (params or {}).items() if value is not None}
        try:
            response = await self._client.request(
                method, path, json=json, params=clean or None, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise ApiUnavailable(f"API timed out on {method} {path}") from exc
        except httpx.TransportError as exc:
            raise ApiUnavailable(f"API unreachable on {method} {path}: {exc}") from exc
        if response.is_success:
            try:
                return response.json()
            except ValueError as exc:
                raise ApiProtocolError(f"{method} {path} answered non-JSON") from exc
        raise _error_for(response)

    # --- internal writes ---------------------------------------------------------------
    async def put_plan(self, *, coach: str, date: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create or replace the plan of a coach and date."""
        return _object(
            await self._request("PUT", f"/internal/plans/{coach}/{date}", internal=True, json=body)
        )

    async def patch_plan(self, plan_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Edit a plan by id."""
        return _object(await self._request("PATCH", f"/internal/plans/{plan_id}", internal=True, json=body))

    async def delete_plan(self, plan_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Delete a plan by id."""
        return _object(await self._request("DELETE", f"/internal/plans/{plan_id}", internal=True, json=body))

    async def clear_date(self, body: dict[str, Any]) -> dict[str, Any]:
        """Delete every plan of a date (admin)."""
        return _object(await self._request("POST", "/internal/plans/clear", internal=True, json=body))

    async def heartbeat(
        self, *, bot_id: str, connected: bool, mock_mode: bool, outbox_pending: int, outbox_dead: int
    ) -> None:
        """Tell the API the bot is alive (`/health`: `bot_connected`) and how its outbox is doing."""
        await self._request(
            "POST",
            "/internal/bot/heartbeat",
            internal=True,
            json={
                "bot_id": bot_id,
                "connected": connected,
                "mock_mode": mock_mode,
                "outbox_pending": outbox_pending,
                "outbox_dead": outbox_dead,
            },
        )

    # --- public reads ------------------------------------------------------------------
    async def coaches(self) -> tuple[Coach, ...]:
        """The roster the API serves."""
        body = await self._request("GET", "/api/v1/coaches")
        try:
            return tuple(
                Coach(coach=str(item["coach"]), key=str(item["key"]), name=str(item["name"]))
                for item in body["coaches"]
            )
        except (KeyError, TypeError) as exc:
            raise ApiProtocolError("GET /api/v1/coaches: unexpected body") from exc

    async def get_plan(self, plan_id: int) -> PlanView:
        """One live plan by id (ApiNotFound when unknown or deleted)."""
        return self._plan(await self._request("GET", f"/api/v1/plans/{plan_id}"))

    async def list_plans(
        self,
        *,
        date: dt.date | None = None,
        author_id: int | None = None,
        message_id: int | None = None,
        coach: str | None = None,
        limit: int = 100,
        max_items: int = 500,
    ) -> list[PlanView]:
        """Plans matching the filters, newest first, following the cursor up to `max_items`."""
        plans: list[PlanView] = []
        cursor: str | None = None
        while len(plans) < max_items:
            params: dict[str, Any] = {
                "date": date.isoformat() if date else None,
                "author_id": str(author_id) if author_id is not None else None,
                "message_id": str(message_id) if message_id is not None else None,
                "coach": coach,
                "limit": limit,
                "cursor": cursor,
            }
            body = await self._request("GET", "/api/v1/plans", params=params)
            try:
                items, cursor = body["items"], body.get("next_cursor")
            except (KeyError, TypeError) as exc:
                raise ApiProtocolError("GET /api/v1/plans: unexpected body") from exc
            plans.extend(self._plan(item) for item in items)
            if not cursor:
                break
        return plans[:max_items]

    async def history(self, *, coach: str, days: int) -> list[PlanView]:
        """A coach's recent plans, newest first."""
        body = await self._request("GET", "/api/coach-plans/history", params={"coach": coach, "days": days})
        try:
            return [self._plan(item) for item in body["plans"]]
        except (KeyError, TypeError) as exc:
            raise ApiProtocolError("GET /api/coach-plans/history: unexpected body") from exc

    @staticmethod
    def _plan(data: Any) -> PlanView:
        try:
            return PlanView.model_validate(data)
        except ValidationError as exc:
            raise ApiProtocolError(f"unexpected plan body: {exc.error_count()} errors") from exc
