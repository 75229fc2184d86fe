"""Pure helpers both Coach Plans services use: one log format, one way to read the settings file.

No business rules and no HTTP here: the services still meet only over HTTP.
"""

from coach_plans_common.logs import (
    LOG_FILE_BACKUPS,
    LOG_FILE_BYTES,
    MIN_SECRET_LENGTH,
    JsonFormatter,
    LogFileError,
    Redactor,
    TextFormatter,
    configure_logging,
    escape_controls,
)
from coach_plans_common.settings import (
    ConfigFileError,
    FileSettings,
    LogFilePath,
    SectionedYamlSource,
    Sections,
    TimeZoneName,
    expand_variables,
    known_timezone,
)

__all__ = [
    "LOG_FILE_BACKUPS",
    "LOG_FILE_BYTES",
    "MIN_SECRET_LENGTH",
    "ConfigFileError",
    "FileSettings",
    "JsonFormatter",
    "LogFileError",
    "LogFilePath",
    "Redactor",
    "SectionedYamlSource",
    "Sections",
    "TextFormatter",
    "TimeZoneName",
    "configure_logging",
    "escape_controls",
    "expand_variables",
    "known_timezone",
]
