"""Bot -> API writes; every call needs the internal bearer token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from coach_plans_api.routes.deps import JSON, ServiceDep, StateDep, require_internal_token
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
    # The answer is the JSON the service built from what it wrote: no second validation.
    plan, created = await service.put_json(coach=service.coach(coach), date=service.day(date), body=body)
    return Response(plan, status_code=201 if created else 200, media_type=JSON)


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
