"""Settings of the plan service, read once from the environment and an optional YAML file."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import redis
import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from coach_plans_api.tickers import DEFAULT_WATCHLIST, parse_watchlist

DEV_INTERNAL_TOKEN = "dev-internal-token"  # noqa: S105 - only accepted in mock mode
SUPPORTED_DIALECTS = ("sqlite", "postgresql")
SECRET_FIELDS = frozenset({"internal_api_token", "database_url", "redis_url"})
MIN_TOKEN_LENGTH = 32
# Commands that never call the API (migrate, backup, restore, import-legacy) load the settings
# without requiring the internal token.
_token_required: ContextVar[bool] = ContextVar("token_required", default=True)

# YAML sections map onto the flat environment names, e.g. `api: {port: 5000}` -> API_PORT.
YAML_KEYS: dict[str, dict[str, str]] = {
    "api": {
        "host": "api_host",
        "port": "api_port",
        "internal_token": "internal_api_token",
        "rate_limit_per_minute": "rate_limit_per_minute",
        "plan_timezone": "plan_timezone",
        "cors_origins": "cors_origins",
        "ticker_watchlist": "ticker_watchlist",
        "coaches": "coaches",
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
    "mock": {"enabled": "mock_mode"},
    "discord": {},  # the bot's section; the API reads nothing from it
}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """Settings are invalid; the message names every bad setting."""


def _expand(value: Any, environ: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _VAR.sub(lambda m: environ.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, dict):
        return {k: _expand(v, environ) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, environ) for v in value]
    return value


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What is wrong and where, never the text of the line (it may hold a token)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"YAML syntax error at line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    return "YAML syntax error"


def load_yaml_config(path: Path, environ: dict[str, str]) -> dict[str, Any]:
    """Flatten a YAML config file (with `${VAR}` expansion) into settings field names."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"CONFIG_FILE: cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"CONFIG_FILE: cannot read {path}: {yaml_problem(exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"CONFIG_FILE: {path} must hold a mapping of sections")
    flat: dict[str, Any] = {}
    for section, values in _expand(raw, environ).items():
        keys = YAML_KEYS.get(section)
        if keys is None:
            raise ConfigError(f"CONFIG_FILE: unknown section {section!r} in {path}")
        for key, value in (values or {}).items():
            if section == "discord":
                continue
            if key not in keys:
                raise ConfigError(f"CONFIG_FILE: unknown key {section}.{key} in {path}")
            flat[keys[key]] = value
    return flat


class _YamlSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


class Settings(BaseSettings):
    """Everything the plan service can be told; see README's configuration table."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    api_host: str = "0.0.0.0"
    api_port: int = Field(5000, ge=1, le=65535)
    database_path: Path = Path("./data/coach_plans.db")
    database_url: str | None = None
    mock_mode: bool = False
    internal_api_token: str | None = Field(None, validate_default=True)
    plan_timezone: str = "America/New_York"
    coaches: str = "d:Coach D,i:Coach I,s:Coach S,n:Coach N"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_file: Path | None = None
    log_format: Literal["text", "json"] = "text"
    cache_ttl_seconds: float = Field(3600, ge=0)
    max_cache_size: int = Field(100, ge=1)
    # The read cache's size in bytes of responses (in the process, and in Redis when shared).
    cache_max_bytes: int = Field(32 * 1024 * 1024, ge=0)
    rate_limit_per_minute: int = Field(1200, ge=0)
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    bot_stale_seconds: float = Field(90, gt=0)
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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("CONFIG_FILE")
        if config_file:
            values = load_yaml_config(Path(config_file), dict(os.environ))
            sources.append(_YamlSource(settings_cls, values))
        return tuple(sources)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("plan_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

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
        for entry in entries:
            key = entry.split(":", 1)[0].strip()
            if not re.fullmatch(r"[a-z0-9]{1,16}", key):
                raise ValueError(f"bad coach key {key!r} (lower-case letters/digits)")
        return value

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
        return make_url(f"sqlite:///{self.database_path}")

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
        host = "localhost" if self.api_host in ("0.0.0.0", "::") else self.api_host
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
