"""The old server's URLs and fields, unchanged, plus the history endpoint."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from coach_plans_api.routes.deps import LOOP_PAGE, app_state, cached_json
from coach_plans_api.schemas import (
    MAX_HISTORY_DAYS,
    ErrorOut,
    HistoryOut,
    LegacyNotFoundOut,
    LegacyPlanOut,
)

# The routes take the app's state from the request, not as dependencies: solving those cost a
# database-path read a tenth of its CPU (docs/performance.md).
router = APIRouter(prefix="/api/coach-plans", tags=["legacy"])
BAD_INPUT: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Unknown coach or invalid date"}
}

CoachParam = Annotated[str, Query(description="`coach_d`, `d` or `D`", examples=["coach_d"])]
DateParam = Annotated[str | None, Query(description="YYYY-MM-DD; default: today in PLAN_TIMEZONE")]


@router.get(
    "/",
    response_model=LegacyPlanOut,
    responses={**BAD_INPUT, 404: {"model": LegacyNotFoundOut, "description": "No plan that day"}},
    summary="A coach's plan for a day (legacy)",
    operation_id="get_legacy_plan",
)
async def get_plan(request: Request, coach: CoachParam, date: DateParam = None) -> Response:
    state = app_state(request)
    service = state.service
    coach_name, day = service.coach(coach), service.day(date)

    def produce() -> bytes:
        return service.legacy_plan_json(coach=coach_name, date=day)

    return await cached_json(request, state, f"legacy:{coach_name}:{day}", produce, lookup=True)


# The old clients call the URL without the trailing slash too; answer it without a redirect.
router.add_api_route(
    "", get_plan, methods=["GET"], include_in_schema=False, operation_id="get_legacy_plan_no_slash"
)


@router.get(
    "/all",
    response_model=dict[str, LegacyPlanOut],
    responses=BAD_INPUT,
    summary="Every coach's plan for a day, keyed by coach (legacy)",
    operation_id="get_all_legacy_plans",
)
async def get_all(request: Request, date: DateParam = None) -> Response:
    state = app_state(request)
    day = state.service.day(date)

    def produce() -> bytes:
        return state.service.legacy_all_json(day)

    return await cached_json(request, state, f"all:{day}", produce, lookup=True)


@router.get(
    "/history",
    response_model=HistoryOut,
    responses=BAD_INPUT,
    summary="A coach's recent plans",
    operation_id="get_history",
)
async def get_history(
    request: Request, coach: CoachParam, days: Annotated[int, Query(ge=1, le=MAX_HISTORY_DAYS)] = 7
) -> Response:
    state = app_state(request)
    service = state.service
    coach_name = service.coach(coach)
    today = service.today()

    def produce() -> bytes:
        return service.history_json(coach=coach_name, days=days)

    key = f"history:{coach_name}:{days}:{today}"
    return await cached_json(request, state, key, produce, lookup=days <= LOOP_PAGE)
