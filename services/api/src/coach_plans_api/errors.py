"""Domain errors, each with its status code, and the one place they become HTTP answers."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("coach_plans_api")


class PlanError(Exception):
    """Base of every error the service reports to a caller."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}


class InvalidDate(PlanError):
    code = "invalid_date"


class UnknownCoach(PlanError):
    code = "unknown_coach"


class InvalidCursor(PlanError):
    code = "invalid_cursor"


class Unauthorized(PlanError):
    status_code = 401
    code = "unauthorized"


class Forbidden(PlanError):
    status_code = 403
    code = "forbidden"


class NotFound(PlanError):
    status_code = 404
    code = "not_found"


class PayloadTooLarge(PlanError):
    status_code = 413
    code = "payload_too_large"


class InvalidPlan(PlanError):
    status_code = 422
    code = "validation_error"


class RateLimited(PlanError):
    status_code = 429
    code = "rate_limited"


class StorageUnavailable(PlanError):
    status_code = 503
    code = "storage_unavailable"


def error_body(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail, **extra}


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


async def _plan_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PlanError)
    headers = {"Retry-After": str(exc.extra.pop("retry_after"))} if "retry_after" in exc.extra else None
    return JSONResponse(error_body(exc.code, exc.detail, **exc.extra), exc.status_code, headers=headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [
        {
            "field": ".".join(str(p) for p in err["loc"] if p not in ("body", "query", "path")),
            "message": str(err["msg"]),
        }
        for err in exc.errors()
    ]
    detail = "; ".join(f"{f['field'] or 'body'}: {f['message']}" for f in fields)
    return JSONResponse(error_body("validation_error", detail, fields=fields), 422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}
    code = codes.get(exc.status_code, "http_error")
    detail = str(exc.detail)
    if exc.status_code == 404:  # the router's 404 (a missing plan is a NotFound domain error)
        code, detail = "route_not_found", f"no such route: {request.method} {request.url.path}"
    return JSONResponse(error_body(code, detail), exc.status_code, headers=getattr(exc, "headers", None))


async def _storage_error(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "storage error on %s %s [%s]: %s",
        request.method,
        request.url.path,
        _request_id(request),
        exc,
    )
    return JSONResponse(
        error_body("storage_unavailable", "the plan database is unavailable; try again shortly"),
        503,
    )


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    request_id = _request_id(request)
    log.exception("unhandled error on %s %s [%s]", request.method, request.url.path, request_id, exc_info=exc)
    return JSONResponse(error_body("internal_error", f"internal error; quote request id {request_id}"), 500)


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PlanError, _plan_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _storage_error)
    app.add_exception_handler(DBAPIError, _storage_error)
    app.add_exception_handler(Exception, _bug)
