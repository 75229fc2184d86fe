"""Archived charts at stable URLs: `/charts/<sha256>.<ext>`, immutable, cacheable for a year."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import FileResponse

from coach_plans_api.charts import image_type
from coach_plans_api.errors import NotFound
from coach_plans_api.routes.deps import StateDep, not_modified
from coach_plans_api.schemas import ErrorOut

router = APIRouter(tags=["charts"])
IMMUTABLE = "public, max-age=31536000, immutable"


@router.get(
    "/charts/{name}",
    response_class=FileResponse,
    responses={
        200: {"content": {t: {} for t in ("image/png", "image/jpeg", "image/gif", "image/webp")}},
        304: {"description": "Not modified"},
        404: {"model": ErrorOut, "description": "No archived chart with that hash"},
    },
    summary="An archived chart",
    operation_id="get_chart",
)
async def get_chart(
    request: Request,
    state: StateDep,
    name: Annotated[str, Path(pattern=r"^[0-9a-f]{64}(\.[a-z]{3,4})?$")],
) -> Response:
    sha256 = name.split(".", 1)[0]
    path = state.charts.find(sha256)
    if path is None:
        raise NotFound(f"no archived chart {sha256}")
    etag = f'"{sha256}"'
    if not_modified(request, etag):
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": IMMUTABLE})
    with path.open("rb") as file:
        kind = image_type(file.read(16)) or "application/octet-stream"
    return FileResponse(path, media_type=kind, headers={"ETag": etag, "Cache-Control": IMMUTABLE})
