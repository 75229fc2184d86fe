"""Domain errors, each with its status code and error code, and the one place they become answers.

Routes, the service and the middleware all raise (or hand over) a `PlanError`; `error_response`
turns any of them into `{"error": "<code>", "detail": "..."}`. Framework errors (validation,
unknown route, wrong method) and database errors are translated into the same types here.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("coach_plans_api")


class PlanError(Exception):
    """Base of every error the service reports to a caller."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}
        self.headers = headers or {}


class BadRequest(PlanError):
    code = "bad_request"


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


class RouteNotFound(PlanError):
    status_code = 404
    code = "route_not_found"


class MethodNotAllowed(PlanError):
    status_code = 405
    code = "method_not_allowed"


class Conflict(PlanError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(PlanError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(PlanError):
    status_code = 415
    code = "unsupported_media_type"


class InvalidPlan(PlanError):
    status_code = 422
    code = "validation_error"


class RateLimited(PlanError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"too many requests; retry in {retry_after} s", headers={"Retry-After": str(retry_after)}
        )


class InternalError(PlanError):
    status_code = 500
    code = "internal_error"


class StorageUnavailable(PlanError):
    status_code = 503
    code = "storage_unavailable"


class FrameworkError(PlanError):
    """A status the framework chose that has no domain meaning of its own (rare)."""

    def __init__(self, status_code: int, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail, headers=headers)
        self.status = status_code


def error_response(exc: PlanError) -> JSONResponse:
    """The one mapping from a typed error to an HTTP answer."""
    status = exc.status if isinstance(exc, FrameworkError) else exc.status_code
    body = {"error": exc.code, "detail": exc.detail, **exc.extra}
    return JSONResponse(body, status, headers=exc.headers or None)


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", "-"))


# --- database errors ------------------------------------------------------------------------
# SQLSTATE classes and codes that mean "the server cannot be reached or will not serve now".
_PG_UNAVAILABLE_CLASSES = ("08", "53", "57P")  # connection, resources, operator intervention
# Messages of sqlite3's OperationalError that mean the file cannot be used, not that a query is wrong.
_SQLITE_UNAVAILABLE = re.compile(
    r"unable to open database file|disk I/O error|database is locked|file is not a database"
    r"|database disk image is malformed|readonly database|database or disk is full"
    r"|no such table",
    re.IGNORECASE,
)
# The schema is missing (a database that was never migrated); another connection held a lock
# longer than lock_timeout.
_PG_UNAVAILABLE_STATES = ("42P01", "55P03")


def is_storage_unavailable(exc: Exception) -> bool:
    """True for a lost, refused or unusable connection; False for a bug or a conflict."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError) or isinstance(exc, IntegrityError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate: str | None = getattr(exc.orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate.startswith(_PG_UNAVAILABLE_CLASSES) or sqlstate in _PG_UNAVAILABLE_STATES
    module = type(exc.orig).__module__
    if module.startswith("psycopg"):
        # No SQLSTATE at all: the client library failed before the server answered.
        return exc.orig.__class__.__name__ in ("OperationalError", "InterfaceError")
    return _SQLITE_UNAVAILABLE.search(str(exc.orig)) is not None


def translate_database_error(exc: Exception) -> PlanError | None:
    """The typed error for a database failure, or None when it is a bug (a logged 500)."""
    if is_storage_unavailable(exc):
        return StorageUnavailable("the plan database is unavailable; try again shortly")
    if isinstance(exc, IntegrityError):
        return Conflict("the write conflicts with data stored meanwhile; read the plan again and retry")
    return None


def first_line(exc: BaseException) -> str:
    """An exception's message on one line (database errors carry SQL and links after it)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# --- handlers -------------------------------------------------------------------------------
async def _plan_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PlanError)
    return error_response(exc)


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
    return error_response(InvalidPlan(detail, extra={"fields": fields}))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(exc.headers or {})
    error: PlanError
    if exc.status_code == 404:
        error = RouteNotFound(f"no such route: {request.method} {request.url.path}")
    elif exc.status_code == 405:
        allowed = [method.strip() for method in headers.get("Allow", "").split(",") if method.strip()]
        if "GET" in allowed and "HEAD" not in allowed:  # every GET route answers HEAD too
            headers["Allow"] = ", ".join([*allowed, "HEAD"])
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}", headers=headers)
    else:
        error = FrameworkError(exc.status_code, str(exc.detail), headers=headers)
    return error_response(error)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    error = translate_database_error(exc)
    if error is None:
        return await _bug(request, exc)
    log.error(
        "database %s on %s %s [%s]: %s",
        error.code,
        request.method,
        request.url.path,
        request_id(request),
        first_line(exc),
    )
    return error_response(error)


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    rid = request_id(request)
    log.error("unhandled error on %s %s [%s]", request.method, request.url.path, rid, exc_info=exc)
    return error_response(InternalError(f"internal error; quote request id {rid}"))


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PlanError, _plan_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_error)
    app.add_exception_handler(Exception, _bug)
