"""One way to read the optional YAML settings file (`CONFIG_FILE`), and the time zone check.

The file has sections (`api:`, `logging:`, ...) whose keys map onto the flat setting names the
environment uses (`api: {port: 5000}` is `API_PORT`). It is read with pydantic-settings' own
YAML source; `${VAR}` and `${VAR:-default}` are expanded from the environment. One file can
serve both services: each names the sections and keys the other one reads, and skips them; a
key neither reads is an error, so a typo never silently falls back to a default. Errors say
where (line and column), never what the line holds: it may hold a token.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AfterValidator, BeforeValidator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, YamlConfigSettingsSource

from coach_plans_common.logs import escape_controls

# section -> {key: settings field, or None for a key the other service reads}; a section mapped
# to None belongs to the other service as a whole.
Sections = Mapping[str, Mapping[str, str | None] | None]

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigFileError(ValueError):
    """The settings file cannot be used; the message names the file and the place, never a value."""


def expand_variables(value: Any, environ: Mapping[str, str]) -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string; like a shell, the default also
    stands in for a variable that is set but empty."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: environ.get(m.group(1)) or m.group(2) or "", value)
    if isinstance(value, list):
        return [expand_variables(item, environ) for item in value]
    if isinstance(value, dict):
        return {key: expand_variables(item, environ) for key, item in value.items()}
    return value


def yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what the YAML error is, without the text of the line."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        return where + escape_controls(exc.problem or exc.context or "syntax error")
    return "syntax error"


def _name(key: object) -> str:
    return escape_controls(str(key))


class SectionedYamlSource(YamlConfigSettingsSource):
    """pydantic-settings' YAML source for a file of sections, with `${VAR}` expansion."""

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        yaml_file: Path,
        *,
        sections: Sections,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._sections = sections
        self._environ = os.environ if environ is None else environ
        if not yaml_file.is_file():  # the base class skips a missing file silently
            reason = "not a file" if yaml_file.exists() else "no such file"
            raise ConfigFileError(f"CONFIG_FILE: cannot read {yaml_file}: {reason}")
        super().__init__(settings_cls, yaml_file=yaml_file)

    def _read_file(self, file_path: Path) -> dict[str, Any]:  # type: ignore[override]
        try:
            text = file_path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = (exc.strerror or type(exc).__name__) if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigFileError(f"CONFIG_FILE: cannot read {file_path}: {reason}") from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigFileError(
                f"CONFIG_FILE: cannot read {file_path}: it is not valid YAML ({yaml_problem(exc)})"
            ) from None
        return self._flatten(document, file_path)

    def _flatten(self, document: Any, path: Path) -> dict[str, Any]:
        if document is None:
            return {}
        if not isinstance(document, dict):
            raise ConfigFileError(f"CONFIG_FILE: {path} must contain a mapping of sections")
        flat: dict[str, Any] = {}
        for section, values in document.items():
            if section not in self._sections:
                raise ConfigFileError(f"CONFIG_FILE: unknown section {_name(section)!r} in {path}")
            if values is None:
                continue
            if not isinstance(values, dict):
                raise ConfigFileError(f"CONFIG_FILE: section {_name(section)!r} must be a mapping")
            keys = self._sections[section]
            if keys is None:
                continue
            for key, value in values.items():
                if key not in keys:
                    raise ConfigFileError(f"CONFIG_FILE: unknown key {_name(section)}.{_name(key)} in {path}")
                field = keys[key]
                value = expand_variables(value, self._environ)
                # An empty value (`token: "${UNSET}"`) means "not set here": the default applies.
                if field is not None and value not in (None, ""):
                    flat[field] = value
        return flat


class FileSettings(BaseSettings):
    """Settings from init arguments, then the environment, then the YAML file `CONFIG_FILE`."""

    yaml_sections: ClassVar[Sections]
    config_file: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources = (init_settings, env_settings, *cls.environment_sources(settings_cls))
        path = init_settings().get("config_file") or env_settings().get("config_file")
        if not path:
            return sources
        return (*sources, SectionedYamlSource(settings_cls, Path(path), sections=cls.yaml_sections))

    @classmethod
    def environment_sources(cls, settings_cls: type[BaseSettings]) -> tuple[PydanticBaseSettingsSource, ...]:
        """More sources read from the environment (they win over the file); none by default."""
        return ()


def known_timezone(value: str) -> str:
    """`value` if it names an IANA time zone (`America/New_York`)."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


TimeZoneName = Annotated[str, AfterValidator(known_timezone)]


# A log file's path; blank (`LOG_FILE=` in an env file) is no file, not the current directory.
LogFilePath = Annotated[Path | None, BeforeValidator(lambda value: None if value == "" else value)]
