"""Bot -> API writes; every call needs the internal bearer token."""

from __future__ import annotations

from contextlib import suppress
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import ValidationError
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

from coach_plans_api.routes.deps import (
    JSON,
    ServiceDep,
    StateDep,
    app_state,
    require_internal_token,
    token_matches,
)
from coach_plans_api.schemas import (
    MAX_ID,
    ClearIn,
    ClearOut,
    ErrorOut,
    HeartbeatIn,
    HeartbeatOut,
    PlanDelete,
    PlanOut,
    PlanPatch,
    PlanPut,
)
from coach_plans_api.service import PlanService

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Unknown coach or invalid date"},
    401: {"model": ErrorOut, "description": "Missing or wrong internal token"},
    403: {"model": ErrorOut, "description": "Not the plan's author nor an admin"},
    404: {"model": ErrorOut, "description": "No such plan"},
    413: {"model": ErrorOut, "description": "Body over 64 KiB"},
    415: {"model": ErrorOut, "description": "Body not sent as application/json"},
}
router = APIRouter(
    prefix="/internal",
    tags=["internal"],
    dependencies=[Depends(require_internal_token)],
    responses=ERRORS,
)
PlanId = Annotated[int, Path(ge=1, le=MAX_ID)]
_BY_ID = {"plan_id": "$response.body#/id"}
# OpenAPI links: what a client (and the stateful fuzzer) can do next with a written plan.
PLAN_LINKS = {
    "GetPlan": {"operationId": "get_plan", "parameters": _BY_ID},
    "GetRevisions": {"operationId": "get_revisions", "parameters": _BY_ID},
    "EditPlan": {"operationId": "patch_plan", "parameters": _BY_ID},
    "DeletePlan": {"operationId": "delete_plan", "parameters": _BY_ID},
}


@router.put(
    "/plans/{coach}/{date}",
    response_model=PlanOut,
    status_code=200,
    responses={
        200: {"description": "Replaced (an edit)", "links": PLAN_LINKS},
        201: {"model": PlanOut, "description": "Created", "links": PLAN_LINKS},
    },
    summary="Create or replace the plan of a coach and day",
    operation_id="put_plan",
)
async def put_plan(coach: str, date: str, body: PlanPut, service: ServiceDep) -> Response:
    return await _put(service, coach, date, body)


async def _put(service: PlanService, coach: str, date: str, body: PlanPut) -> Response:
    # The answer is the JSON the service built from what it wrote: no second validation.
    plan, created = await service.put_json(coach=service.coach(coach), date=service.day(date), body=body)
    return Response(plan, status_code=201 if created else 200, media_type=JSON)


DOCUMENTED = "coach_plans.documented_route"  # set in the scope of a request handed on to `put_plan`


class FastPut(Route):
    """The bot's write, `PUT /internal/plans/{coach}/{date}`, without FastAPI's work per request:
    routing through every router, solving the dependencies, validating the body from a parsed
    dict. That work was a third of a write's time on the event loop (docs/performance.md).

    It serves only a request with the exact `Bearer <token>` header and a body that `PlanPut`
    accepts as JSON, and answers it exactly as `put_plan` does (the same function, the same errors
    from the service). Any other request is handed on, body and all, to the documented route
    `put_plan`, which answers it as it always has (401, 422)."""

    def __init__(self) -> None:
        super().__init__("/internal/plans/{coach}/{date}", put_plan, methods=["PUT"], include_in_schema=False)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("method") != "PUT" or scope.get(DOCUMENTED):
            return Match.NONE, {}
        match, child_scope = super().matches(scope)
        child_scope["route"] = self  # its path is the metrics' route label, as for `put_plan`
        return match, child_scope

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        state = app_state(request)
        raw = await request.body()
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        body = None
        if scheme == "Bearer" and token_matches(state, token):
            with suppress(ValidationError):
                body = PlanPut.model_validate_json(raw)
        if body is None:
            scope[DOCUMENTED] = True
            await request.app.router(scope, _replay(raw, receive), send)
            return
        params = scope["path_params"]
        response = await _put(state.service, params["coach"], params["date"], body)
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The request's body once more, then whatever the client sends next (its disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


@router.patch(
    "/plans/{plan_id}",
    response_model=PlanOut,
    summary="Edit a plan's text or charts",
    operation_id="patch_plan",
)
async def patch_plan(plan_id: PlanId, body: PlanPatch, service: ServiceDep) -> Response:
    return Response(await service.patch_json(plan_id, body), media_type=JSON)


@router.delete(
    "/plans/{plan_id}",
    response_model=PlanOut,
    summary="Delete a plan (kept in history)",
    operation_id="delete_plan",
)
async def delete_plan(plan_id: PlanId, body: PlanDelete, service: ServiceDep) -> Response:
    return Response(await service.delete_json(plan_id, body), media_type=JSON)


@router.post(
    "/plans/clear",
    response_model=ClearOut,
    summary="Admin: delete every plan of a day",
    operation_id="clear_plans",
)
def clear_plans(body: ClearIn, service: ServiceDep) -> ClearOut:
    return service.clear(body)


@router.post(
    "/bot/heartbeat", response_model=HeartbeatOut, summary="The bot is alive", operation_id="heartbeat"
)
def heartbeat(body: HeartbeatIn, service: ServiceDep, state: StateDep) -> HeartbeatOut:
    service.heartbeat(body)
    state.metrics.bot_outbox(bot_id=body.bot_id, pending=body.outbox_pending, dead=body.outbox_dead)
    return HeartbeatOut(status="ok")
