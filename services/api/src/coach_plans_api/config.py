"""Settings of the plan service, read once from the environment and an optional YAML file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import redis
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from coach_plans_api.tickers import DEFAULT_WATCHLIST, parse_watchlist
from coach_plans_common import ConfigFileError, FileSettings, LogFilePath, Sections, TimeZoneName

DEV_INTERNAL_TOKEN = "dev-internal-token"  # noqa: S105 - only accepted in mock mode
SUPPORTED_DIALECTS = ("sqlite", "postgresql")
SECRET_FIELDS = frozenset({"internal_api_token", "database_url", "redis_url"})
MIN_TOKEN_LENGTH = 32
# Commands that never call the API (migrate, backup, restore, import-legacy) load the settings
# without requiring the internal token.
_token_required: ContextVar[bool] = ContextVar("token_required", default=True)

# The sections of the YAML settings file (docs/configuration.md), mapped onto the flat setting
# names, e.g. `api: {port: 5000}` -> API_PORT. None: read by the bot, skipped here.
YAML_SECTIONS: Sections = {
    "api": {
        "host": "api_host",
        "port": "api_port",
        "internal_token": "internal_api_token",
        "internal_api_token": "internal_api_token",
        "rate_limit_per_minute": "rate_limit_per_minute",
        "plan_timezone": "plan_timezone",
        "cors_origins": "cors_origins",
        "ticker_watchlist": "ticker_watchlist",
        "coaches": "coaches",
        "base_url": None,
        "timeout_seconds": None,
    },
    "database": {"path": "database_path", "url": "database_url"},
    "charts": {
        "store_dir": "chart_store_dir",
        "max_bytes": "chart_max_bytes",
        "allowed_hosts": "chart_allowed_hosts",
        "max_attempts": "chart_max_attempts",
        "fetch_timeout": "chart_fetch_timeout",
        "public_base_url": "public_base_url",
    },
    "logging": {"level": "log_level", "file": "log_file", "format": "log_format"},
    "cache": {
        "ttl_seconds": "cache_ttl_seconds",
        "max_size": "max_cache_size",
        "max_bytes": "cache_max_bytes",
    },
    "mock": {"enabled": "mock_mode", "mock_mode": "mock_mode", "days": None},
    "discord": None,
    "bot": None,
}


def _fetchable_base(value: str) -> bool:
    """An http(s) URL with a host, a valid port if any, no query, fragment or whitespace."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a port that is no number or out of range
    except ValueError:
        return False
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not (parts.query or parts.fragment or re.search(r"\s", value))
    )


class ConfigError(Exception):
    """Settings are invalid; the message names every bad setting."""


class Settings(FileSettings):
    """Everything the plan service can be told; see README's configuration table."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)
    yaml_sections = YAML_SECTIONS

    api_host: str = "0.0.0.0"
    api_port: int = Field(5000, ge=1, le=65535)
    database_path: Path = Path("./data/coach_plans.db")
    database_url: str | None = None
    mock_mode: bool = False
    internal_api_token: str | None = Field(None, validate_default=True)
    plan_timezone: TimeZoneName = "America/New_York"
    coaches: str = "d:Coach D,i:Coach I,s:Coach S,n:Coach N"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_file: LogFilePath = None
    log_format: Literal["text", "json"] = "text"
    cache_ttl_seconds: float = Field(3600, ge=0)
    max_cache_size: int = Field(100, ge=1)
    # The read cache's size in bytes of responses (in the process, and in Redis when shared).
    cache_max_bytes: int = Field(32 * 1024 * 1024, ge=0)
    rate_limit_per_minute: int = Field(1200, ge=0)
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    bot_stale_seconds: float = Field(90, gt=0, le=365 * 86400)
    cors_origins: str = ""
    redis_url: str | None = None
    # Namespace of every Redis key and channel, so deployments (or test runs) can share a Redis.
    redis_prefix: str = Field("coach-plans", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    ticker_watchlist: str = DEFAULT_WATCHLIST
    public_base_url: str | None = None
    chart_store_dir: Path = Path("./data/charts")
    chart_max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    chart_allowed_hosts: str = "cdn.discordapp.com,media.discordapp.net"
    chart_max_attempts: int = Field(6, ge=1)
    chart_fetch_timeout: float = Field(10, gt=0)
    chart_archiver: bool = True

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            # Never echo the value: it holds the password.
            raise ValueError(
                "not a database URL (expected sqlite:///path or postgresql://user:password@host/db)"
            ) from None
        if url.get_backend_name() not in SUPPORTED_DIALECTS:
            raise ValueError(f"unsupported database {url.get_backend_name()!r}; use sqlite or postgresql")
        return value

    @field_validator("redis_url")
    @classmethod
    def _valid_redis_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            redis.ConnectionPool.from_url(value)
        except ValueError:
            raise ValueError("not a Redis URL (expected redis://[:password@]host:port/db)") from None
        return value

    @field_validator("coaches")
    @classmethod
    def _valid_roster(cls, value: str) -> str:
        entries = [e.strip() for e in value.split(",") if e.strip()]
        if not entries:
            raise ValueError("the coach roster is empty")
        keys: set[str] = set()
        for entry in entries:
            key = entry.split(":", 1)[0].strip()
            if not re.fullmatch(r"[a-z0-9]{1,16}", key):
                raise ValueError(f"bad coach key {key!r} (lower-case letters/digits)")
            if key in keys:  # the last name would silently win
                raise ValueError(f"coach key {key!r} is listed twice")
            keys.add(key)
        return value

    @field_validator("public_base_url")
    @classmethod
    def _valid_base_url(cls, value: str | None) -> str | None:
        """Archived charts' URLs start with it: it must be one a client can fetch."""
        if not value:
            return None
        if not _fetchable_base(value):
            raise ValueError(
                "not a base URL (expected http(s)://host[:port][/path], e.g. https://plans.example.org)"
            )
        return value.rstrip("/")

    @field_validator("internal_api_token")
    @classmethod
    def _strong_token(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("mock_mode"):
            return value or DEV_INTERNAL_TOKEN
        if not _token_required.get():
            return value or None
        if not value:
            raise ValueError("required unless MOCK_MODE=true (the bot authenticates its writes with it)")
        if len(value) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"must be at least {MIN_TOKEN_LENGTH} characters (got {len(value)}); generate one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @cached_property
    def sqlalchemy_url(self) -> URL:
        """The database URL: `DATABASE_URL` if set, else the SQLite file at `DATABASE_PATH`."""
        if self.database_url:
            url = make_url(self.database_url)
            if url.get_backend_name() == "postgresql" and url.drivername == "postgresql":
                url = url.set(drivername="postgresql+psycopg")
            return url
        # URL.create, not "sqlite:///" + path: a path is no URL ("%20" or "?" in a file name
        # would be decoded or start a query, and another file be used).
        return URL.create("sqlite", database=str(self.database_path))

    @cached_property
    def roster(self) -> dict[str, str]:
        """Coach keys (`d`) to display names (`Coach D`), in configured order."""
        roster: dict[str, str] = {}
        for entry in (e.strip() for e in self.coaches.split(",") if e.strip()):
            key, _, name = entry.partition(":")
            roster[key.strip()] = name.strip() or f"Coach {key.strip().upper()}"
        return roster

    @cached_property
    def chart_base_url(self) -> str:
        """Where clients reach this API; archived charts' stable URLs start with it."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        host = "localhost" if self.api_host in ("", "0.0.0.0", "::") else self.api_host
        if ":" in host:  # an IPv6 address goes in brackets in a URL
            host = f"[{host}]"
        return f"http://{host}:{self.api_port}"

    @cached_property
    def chart_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.chart_allowed_hosts.split(",") if h.strip())

    @cached_property
    def watchlist(self) -> frozenset[str]:
        return parse_watchlist(self.ticker_watchlist)

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.plan_timezone)


def describe_errors(exc: ValidationError) -> str:
    """One line per bad setting, named the way the user sets it (the environment name)."""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        name = loc[0].upper() if loc else "SETTINGS"
        message = error["msg"].removeprefix("Value error, ")
        shown = loc and loc[0] not in SECRET_FIELDS
        lines.append(f"  {name}: {message} (got {error.get('input')!r})" if shown else f"  {name}: {message}")
    return "invalid configuration:\n" + "\n".join(lines)


@contextmanager
def _requiring_token(required: bool) -> Iterator[None]:
    reset = _token_required.set(required)
    try:
        yield
    finally:
        _token_required.reset(reset)


def load_settings(*, require_token: bool = True) -> Settings:
    """Read the settings once; raise ConfigError naming each bad setting.

    `require_token=False` is for commands that never call the API nor serve it."""
    try:
        with _requiring_token(require_token):
            return Settings()
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc)) from None
    except ConfigFileError as exc:
        raise ConfigError(str(exc)) from None
