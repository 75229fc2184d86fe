"""Bot settings: environment variables, an optional YAML file, one clear error per bad setting."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from coach_plans_common import ConfigFileError, FileSettings, LogFilePath, Sections, TimeZoneName

MIN_TOKEN_CHARS = 32
_internal_token_required: ContextVar[bool] = ContextVar("internal_token_required", default=True)
IdSet = Annotated[frozenset[int], NoDecode]

_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
_COACH_IDS_VAR = re.compile(r"^COACH_([A-Z0-9]+)_ALLOWED_IDS$", re.IGNORECASE)

# The sections of the YAML settings file (docs/bot.md), mapped onto the flat setting names.
# None: read by the API, skipped here.
YAML_SECTIONS: Sections = {
    "discord": {
        "token": "discord_bot_token",
        "bot_token": "discord_bot_token",
        "allowed_channel_ids": "allowed_channel_ids",
        "admin_role_ids": "admin_role_ids",
        "coach_allowed_ids": "coach_allowed_ids",
    },
    "api": {
        "base_url": "api_base_url",
        "internal_token": "internal_api_token",
        "internal_api_token": "internal_api_token",
        "timeout_seconds": "api_timeout_seconds",
        # the API's keys
        "host": None,
        "port": None,
        "rate_limit_per_minute": None,
        "plan_timezone": None,
        "cors_origins": None,
        "ticker_watchlist": None,
        "coaches": None,
    },
    "logging": {"level": "log_level", "file": "log_file", "format": "log_format"},
    "mock": {
        "enabled": "mock_mode",
        "mock_mode": "mock_mode",
        "days": "mock_days",
        "chart_port": "mock_chart_port",
    },
    "bot": {
        "outbox_path": "outbox_path",
        "outbox_retry_max_seconds": "outbox_retry_max_seconds",
        "outbox_max_attempts": "outbox_max_attempts",
        "discord_retry_base_seconds": "discord_retry_base_seconds",
        "catchup_limit": "catchup_limit",
        "plan_timezone": "plan_timezone",
        "heartbeat_seconds": "heartbeat_seconds",
        "bot_id": "bot_id",
    },
    "database": None,
    "charts": None,
    "cache": None,
}


class ConfigError(Exception):
    """Invalid or missing settings; the message names each bad setting."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"Invalid bot configuration:\n{lines}")


def parse_id_list(value: object) -> frozenset[int]:
    """Parse `"1, 2,3"`, a list or a single number into a set of Discord ids."""
    if value is None:
        return frozenset()
    if isinstance(value, int) and not isinstance(value, bool):
        items: list[object] = [value]
    elif isinstance(value, str):
        items = [part for part in value.replace(";", ",").split(",") if part.strip()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    else:
        raise ValueError("expected comma-separated Discord ids")
    ids: set[int] = set()
    for item in items:
        text = str(item).strip()
        if not text.isdigit():
            raise ValueError(f"{text!r} is not a Discord id (digits only)")
        ids.add(int(text))
    return frozenset(ids)


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***`, for log lines."""
    return re.sub(r"^(\w+://[^/:@\s]*):[^/@\s]*@", r"\1:***@", url)


class _CoachIdsSource(PydanticBaseSettingsSource):
    """Collect `COACH_<KEY>_ALLOWED_IDS` variables for any coach of the roster."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # pragma: no cover - __call__ does the work

    def __call__(self) -> dict[str, Any]:
        found = {
            f"coach_{match.group(1).lower()}": value
            for name, value in os.environ.items()
            if (match := _COACH_IDS_VAR.match(name))
        }
        return {"coach_allowed_ids": found} if found else {}


class BotSettings(FileSettings):
    """Everything the bot reads from its environment, validated once at start-up."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, env_prefix="")
    yaml_sections = YAML_SECTIONS

    mock_mode: bool = False
    discord_bot_token: SecretStr | None = Field(default=None, validate_default=True)
    api_base_url: str = "http://localhost:5000"
    internal_api_token: SecretStr = Field(default=SecretStr(""), validate_default=True)
    api_timeout_seconds: float = Field(default=10.0, gt=0)
    plan_timezone: TimeZoneName = "America/New_York"
    log_level: str = "INFO"
    log_file: LogFilePath = None
    log_format: Literal["text", "json"] = "text"
    outbox_path: Path = Path("./data/bot_outbox.db")
    outbox_retry_max_seconds: float = Field(default=300.0, gt=0)
    outbox_max_attempts: int = Field(default=5, ge=1, le=100)
    discord_retry_base_seconds: float = Field(default=2.0, gt=0, le=60)
    catchup_limit: int = Field(default=500, ge=0)
    mock_days: int = Field(default=1, ge=1, le=366)
    # The mock charts' port is part of their URLs, which are part of a post: a port of its own
    # keeps a restarted mock bot's re-posts the same messages (no-ops), not edits. 0: any free port.
    mock_chart_port: int = Field(default=5090, ge=0, le=65535)
    allowed_channel_ids: IdSet = frozenset()
    admin_role_ids: IdSet = frozenset()
    coach_allowed_ids: Annotated[dict[str, frozenset[int]], NoDecode] = Field(default_factory=dict)
    heartbeat_seconds: float = Field(default=30.0, gt=0)
    bot_id: str = "main"

    @classmethod
    def environment_sources(cls, settings_cls: type[BaseSettings]) -> tuple[PydanticBaseSettingsSource, ...]:
        return (_CoachIdsSource(settings_cls),)

    @field_validator("discord_bot_token")
    @classmethod
    def _token_unless_mock(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            value = None
        if value is None and not info.data.get("mock_mode", False):
            raise ValueError("is required unless MOCK_MODE=true")
        return value

    @field_validator("internal_api_token")
    @classmethod
    def _strong_token(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        if not _internal_token_required.get():
            return value
        if not info.data.get("mock_mode", False) and len(value.get_secret_value().strip()) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"must be at least {MIN_TOKEN_CHARS} characters outside mock mode (the API requires"
                " the same token); generate one with: openssl rand -hex 32"
            )
        return value

    @field_validator("api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in _LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")
        return level

    @field_validator("allowed_channel_ids", "admin_role_ids", mode="before")
    @classmethod
    def _id_list(cls, value: object) -> frozenset[int]:
        return parse_id_list(value)

    @field_validator("coach_allowed_ids", mode="before")
    @classmethod
    def _coach_ids(cls, value: object) -> dict[str, frozenset[int]]:
        if value is None or value == "":
            return {}
        if not isinstance(value, Mapping):
            raise ValueError("expected a mapping of coach -> comma-separated ids")
        result: dict[str, frozenset[int]] = {}
        for coach, ids in value.items():
            key = str(coach).strip().lower()
            coach_id = key if key.startswith("coach_") else f"coach_{key}"
            try:
                result[coach_id] = parse_id_list(ids)
            except ValueError as exc:
                raise ValueError(f"{coach_id.upper()}_ALLOWED_IDS: {exc}") from exc
        return result

    @property
    def timezone(self) -> ZoneInfo:
        """The market time zone that defines "today"."""
        return ZoneInfo(self.plan_timezone)


def _setting_name(loc: tuple[int | str, ...]) -> str:
    return str(loc[0]).upper() if loc else "settings"


def load_settings(*, require_internal_token: bool = True, **overrides: Any) -> BotSettings:
    """Read and validate the settings once; raise ConfigError naming every bad setting.

    `require_internal_token=False` is for `sync-commands`, which talks to Discord only."""
    reset = _internal_token_required.set(require_internal_token)
    try:
        return BotSettings(**overrides)
    except ConfigFileError as exc:
        raise ConfigError([str(exc)]) from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            message = str(error["msg"]).removeprefix("Value error, ")
            if re.match(r"^COACH_\w+_ALLOWED_IDS: ", message):
                problems.append(message)  # already names the per-coach variable
            else:
                problems.append(f"{_setting_name(error['loc'])}: {message}")
        raise ConfigError(problems) from exc
    finally:
        _internal_token_required.reset(reset)
