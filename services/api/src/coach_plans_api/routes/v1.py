"""The versioned API: plans with filters and cursor pagination, revisions, coaches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from coach_plans_api.routes.deps import ServiceDep, StateDep, cached_json
from coach_plans_api.routes.legacy import BAD_INPUT
from coach_plans_api.schemas import CoachesOut, ErrorOut, PlanOut, PlanPage, RevisionsOut

router = APIRouter(prefix="/api/v1", tags=["plans"])
KEEPALIVE_SECONDS = 15.0
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "No such plan"}}
PlanId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Snowflake = Annotated[str | None, Query(pattern=r"^[0-9]{1,20}$")]


@router.get("/plans", response_model=PlanPage, responses=BAD_INPUT, summary="Find plans")
async def list_plans(
    request: Request,
    state: StateDep,
    service: ServiceDep,
    coach: Annotated[str | None, Query(description="`coach_d`, `d` or `D`")] = None,
    date: Annotated[str | None, Query(description="one day, YYYY-MM-DD")] = None,
    date_from: Annotated[str | None, Query(alias="from", description="first day, YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, Query(alias="to", description="last day, YYYY-MM-DD")] = None,
    author: Annotated[str | None, Query(max_length=100, description="display name, any case")] = None,
    author_id: Snowflake = None,
    message_id: Snowflake = None,
    ticker: Annotated[
        str | None, Query(pattern=r"^\$?[A-Za-z]{1,5}(\.[A-Za-z])?$", description="e.g. NVDA")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=64, description="next_cursor of the previous page")
    ] = None,
) -> Response:
    coach_name = service.coach(coach) if coach else None
    first = service.day(date or date_from) if (date or date_from) else None
    last = service.day(date or date_to) if (date or date_to) else None
    symbol = ticker.lstrip("$").upper() if ticker else None

    def produce() -> bytes:
        return service.find_json(
            coach=coach_name,
            date_from=first,
            date_to=last,
            author=author,
            author_id=author_id,
            message_id=message_id,
            cursor=cursor,
            limit=limit,
            ticker=symbol,
        )

    key = f"v1:{coach_name}:{first}:{last}:{author}:{author_id}:{message_id}:{symbol}:{limit}:{cursor}"
    return await cached_json(request, state, key, produce)


@router.get("/plans/{plan_id}", response_model=PlanOut, responses=NOT_FOUND, summary="One plan")
async def get_plan(request: Request, state: StateDep, service: ServiceDep, plan_id: PlanId) -> Response:
    return await cached_json(
        request, state, f"plan:{plan_id}", lambda: service.plan_json(plan_id), lookup=True
    )


@router.get(
    "/plans/{plan_id}/revisions",
    response_model=RevisionsOut,
    responses=NOT_FOUND,
    summary="Every create, edit and delete of a plan, oldest first",
)
async def get_revisions(request: Request, state: StateDep, service: ServiceDep, plan_id: PlanId) -> Response:
    def produce() -> bytes:
        return service.revisions_json(plan_id)

    return await cached_json(request, state, f"revisions:{plan_id}", produce)


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
    summary="Live plan events (Server-Sent Events): plan.created, plan.updated, plan.deleted",
)
async def plan_events(state: StateDep) -> StreamingResponse:
    async def stream() -> AsyncIterator[bytes]:
        with state.events.subscription() as queue:
            yield b"retry: 3000\n: connected\n\n"
            while True:  # ends when the client goes: Starlette cancels the stream
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if event is None:
                    return
                yield f"id: {event.id}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n".encode()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/coaches", response_model=CoachesOut, summary="The coach roster")
async def get_coaches(service: ServiceDep) -> CoachesOut:
    return CoachesOut(coaches=service.coaches())
