"""The versioned API: plans with filters and cursor pagination, revisions, coaches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.sse import EventSourceResponse, ServerSentEvent

from coach_plans_api.errors import BadRequest
from coach_plans_api.events import follow
from coach_plans_api.routes.deps import LOOP_PAGE, ServiceDep, StateDep, app_state, cached_json, on_db_thread
from coach_plans_api.routes.legacy import BAD_INPUT
from coach_plans_api.schemas import (
    IMAGE_EXTENSIONS,
    IMAGE_TYPES,
    MAX_CHARTS,
    MAX_ID,
    MAX_PLAN_CHARS,
    MAX_QUERY_CHARS,
    CoachesOut,
    ErrorOut,
    LimitsOut,
    PlanEvent,
    PlanOut,
    PlanPage,
    RevisionsOut,
    SearchPage,
)

# The reads take the app's state from the request, not as dependencies: solving those cost a
# database-path read a tenth of its CPU (docs/performance.md).
router = APIRouter(prefix="/api/v1", tags=["plans"])
RECONNECT_MS = 3000  # the `retry:` advice to subscribers
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorOut, "description": "No such plan"}}
PlanId = Annotated[int, Path(ge=1, le=MAX_ID)]
Snowflake = Annotated[str | None, Query(pattern=r"^[0-9]{1,20}$")]


@router.get(
    "/plans", response_model=PlanPage, responses=BAD_INPUT, summary="Find plans", operation_id="list_plans"
)
async def list_plans(
    request: Request,
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
    state = app_state(request)
    service = state.service
    coach_name = service.coach(coach) if coach else None
    if date and (date_from or date_to):
        raise BadRequest("`date` is one day; pass it or `from`/`to`, not both")
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
    # Coach and dates alone are walked in the order of an index and stop after the page.
    bounded = limit <= LOOP_PAGE and not (author or author_id or message_id or symbol)
    return await cached_json(request, state, key, produce, lookup=bounded)


@router.get(
    "/search",
    response_model=SearchPage,
    responses={
        **BAD_INPUT,
        422: {"model": ErrorOut, "description": "q missing or too long, limit out of range"},
    },
    summary="Full-text search over every live plan, best match first, with highlighted snippets",
    operation_id="search_plans_text",
)
async def search_plans(
    request: Request,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_QUERY_CHARS,
            description="words to find (all required, stemmed: `targets` finds `target`)",
        ),
    ],
    coach: Annotated[str | None, Query(description="`coach_d`, `d` or `D`")] = None,
    date_from: Annotated[str | None, Query(description="first day, YYYY-MM-DD")] = None,
    date_to: Annotated[str | None, Query(description="last day, YYYY-MM-DD")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        str | None, Query(max_length=64, description="next_cursor of the previous page")
    ] = None,
) -> Response:
    state = app_state(request)
    service = state.service
    coach_name = service.coach(coach) if coach else None
    first = service.day(date_from) if date_from else None
    last = service.day(date_to) if date_to else None

    def produce() -> bytes:
        return service.search_json(
            query=q, coach=coach_name, date_from=first, date_to=last, cursor=cursor, limit=limit
        )

    key = f"search:{coach_name}:{first}:{last}:{limit}:{cursor}:{q}"
    return await cached_json(request, state, key, produce)


@router.get(
    "/plans/{plan_id}",
    response_model=PlanOut,
    responses=NOT_FOUND,
    summary="One plan",
    operation_id="get_plan",
)
async def get_plan(request: Request, plan_id: PlanId) -> Response:
    state = app_state(request)
    return await cached_json(
        request, state, f"plan:{plan_id}", lambda: state.service.plan_json(plan_id), lookup=True
    )


@router.get(
    "/plans/{plan_id}/revisions",
    response_model=RevisionsOut,
    responses=NOT_FOUND,
    summary="Every create, edit and delete of a plan, oldest first",
    operation_id="get_revisions",
)
async def get_revisions(request: Request, plan_id: PlanId) -> Response:
    state = app_state(request)

    def produce() -> bytes:
        return state.service.revisions_json(plan_id)

    return await cached_json(request, state, f"revisions:{plan_id}", produce)


async def event_cursor(
    request: Request,
    last_event_id: Annotated[
        int | None,
        Header(
            ge=0,
            le=MAX_ID,
            description="the `id` of the last event received: every later change is sent first",
        ),
    ] = None,
) -> int | None:
    """`Last-Event-ID` exactly as the contract says: one header, plain digits. Validation alone
    would take "20.0" and "+20" for 20, and the first of two headers."""
    sent = request.headers.getlist("last-event-id")
    if len(sent) > 1 or (sent and not (sent[0].isascii() and sent[0].isdigit())):
        message = f"must be one revision id, plain digits 0..{MAX_ID}"
        raise RequestValidationError(
            [{"type": "value_error", "loc": ("header", "last-event-id"), "msg": message, "input": sent}]
        )
    return last_event_id


async def first_missed(
    state: StateDep, service: ServiceDep, last_event_id: Annotated[int | None, Depends(event_cursor)]
) -> Sequence[PlanEvent]:
    """The first changes a returning subscriber missed, read before the stream starts: a database
    that cannot be read is then a 503 like for any read, not a stream cut after `connected`."""
    if last_event_id is None:
        return ()
    return await on_db_thread(state, service.events_after, last_event_id)


@router.get(
    "/events",
    response_class=EventSourceResponse,
    responses={422: {"model": ErrorOut, "description": "Last-Event-ID is not a revision id"}},
    summary="Live plan events (Server-Sent Events): plan.created, plan.updated, plan.deleted",
    operation_id="plan_events",
)
async def plan_events(
    state: StateDep,
    service: ServiceDep,
    last_event_id: Annotated[int | None, Depends(event_cursor)],
    first: Annotated[Sequence[PlanEvent], Depends(first_missed)],
) -> AsyncIterator[ServerSentEvent]:
    async def missed(after: int) -> Sequence[PlanEvent]:
        return await on_db_thread(state, service.events_after, after)

    with state.events.subscription() as subscription:
        # "connected" tells a subscriber that writes from now on reach it.
        yield ServerSentEvent(comment="connected", retry=RECONNECT_MS)
        async for event in follow(subscription, after=last_event_id, missed=missed, first=first):
            yield ServerSentEvent(data=event, event=event.type, id=str(event.id))


@router.get("/coaches", response_model=CoachesOut, summary="The coach roster", operation_id="get_coaches")
async def get_coaches(service: ServiceDep) -> CoachesOut:
    return CoachesOut(coaches=service.coaches())


@router.get("/limits", response_model=LimitsOut, operation_id="get_limits", summary="What a plan may hold")
async def get_limits(state: StateDep) -> LimitsOut:
    return LimitsOut(
        max_plan_chars=MAX_PLAN_CHARS,
        max_charts=MAX_CHARTS,
        chart_content_types=sorted(IMAGE_TYPES),
        chart_extensions=sorted(IMAGE_EXTENSIONS),
        max_body_bytes=state.settings.max_body_bytes,
    )
