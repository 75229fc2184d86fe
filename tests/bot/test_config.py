"""Settings: environment, YAML with ${VAR} expansion, one message per bad setting, exit 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from coach_plans_bot.__main__ import run as bot_main
from coach_plans_bot.config import BotSettings, ConfigError, load_settings
from tests.conftest import run_in_process


def test_defaults_in_mock_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCK_MODE", "true")

    settings = load_settings()

    assert settings.mock_mode
    assert settings.discord_bot_token is None
    assert settings.api_base_url == "http://localhost:5000"
    assert settings.outbox_path == Path("./data/bot_outbox.db")
    assert settings.plan_timezone == "America/New_York"
    assert settings.heartbeat_seconds == 30.0
    assert (settings.allowed_channel_ids, settings.admin_role_ids) == (frozenset(), frozenset())
    assert settings.outbox_retry_max_seconds == 300.0
    assert settings.catchup_limit == 500
    assert settings.mock_days == 1


def test_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in {
        "DISCORD_BOT_TOKEN": "abc.def",
        "API_BASE_URL": "http://api:5000/",
        "INTERNAL_API_TOKEN": "s3cret-" + "x" * 32,
        "PLAN_TIMEZONE": "Europe/London",
        "LOG_LEVEL": "debug",
        "LOG_FORMAT": "json",
        "OUTBOX_PATH": str(tmp_path / "o.db"),
        "ALLOWED_CHANNEL_IDS": "111, 222",
        "ADMIN_ROLE_IDS": "333",
        "COACH_D_ALLOWED_IDS": "444,555",
        "coach_x_allowed_ids": "666",
        "OUTBOX_RETRY_MAX_SECONDS": "0.5",
        "CATCHUP_LIMIT": "0",
        "MOCK_DAYS": "7",
    }.items():
        monkeypatch.setenv(name, value)

    settings = load_settings()

    assert settings.discord_bot_token is not None
    assert settings.discord_bot_token.get_secret_value() == "abc.def"
    assert settings.api_base_url == "http://api:5000"
    assert settings.internal_api_token.get_secret_value() == "s3cret-" + "x" * 32
    assert settings.timezone.key == "Europe/London"
    assert (settings.log_level, settings.log_format) == ("DEBUG", "json")
    assert settings.outbox_path == tmp_path / "o.db"
    assert settings.allowed_channel_ids == {111, 222}
    assert settings.admin_role_ids == {333}
    assert settings.coach_allowed_ids == {"coach_d": {444, 555}, "coach_x": {666}}
    assert (settings.outbox_retry_max_seconds, settings.catchup_limit, settings.mock_days) == (0.5, 0, 7)
    assert "s3cret" not in repr(settings)
    assert "abc.def" not in repr(settings)


def test_every_bad_setting_is_named_in_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_BASE_URL", "localhost:5000")
    monkeypatch.setenv("PLAN_TIMEZONE", "Mars/Olympus")
    monkeypatch.setenv("LOG_LEVEL", "loud")
    monkeypatch.setenv("ALLOWED_CHANNEL_IDS", "12,general")
    monkeypatch.setenv("COACH_D_ALLOWED_IDS", "dan")
    monkeypatch.setenv("CATCHUP_LIMIT", "-1")
    monkeypatch.setenv("OUTBOX_RETRY_MAX_SECONDS", "0")

    with pytest.raises(ConfigError) as caught:
        load_settings()

    message = str(caught.value)
    assert message.startswith("Invalid bot configuration:")
    for expected in (
        "DISCORD_BOT_TOKEN: is required unless MOCK_MODE=true",
        "API_BASE_URL: must be an http:// or https:// URL",
        "PLAN_TIMEZONE: unknown time zone 'Mars/Olympus'",
        "LOG_LEVEL: must be one of",
        "ALLOWED_CHANNEL_IDS: 'general' is not a Discord id (digits only)",
        "COACH_D_ALLOWED_IDS: 'dan' is not a Discord id",
        "CATCHUP_LIMIT: Input should be greater than or equal to 0",
        "OUTBOX_RETRY_MAX_SECONDS: Input should be greater than 0",
        "INTERNAL_API_TOKEN: must be at least 32 characters outside mock mode",
    ):
        assert expected in message
    assert len(caught.value.problems) == 9


def test_blank_token_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "  ")

    with pytest.raises(ConfigError, match="DISCORD_BOT_TOKEN"):
        load_settings()


def test_yaml_file_with_env_expansion(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "bot.yaml"
    config.write_text(
        """
discord:
  token: ${TOKEN_FROM_VAULT}
  allowed_channel_ids: [1, 2]
  admin_role_ids: "3"
  coach_allowed_ids:
    d: "4,5"
api:
  base_url: http://${API_HOST_NAME:-fallback}:5000
  internal_token: ${INTERNAL_SECRET}
logging:
  level: warning
  format: json
mock:
  enabled: false
  days: 3
bot:
  outbox_path: /tmp/yaml-outbox.db
  outbox_retry_max_seconds: 60
  catchup_limit: 100
""",
        encoding="utf-8",
    )
    monkeypatch.setenv("CONFIG_FILE", str(config))
    monkeypatch.setenv("TOKEN_FROM_VAULT", "yaml-token")
    monkeypatch.setenv("INTERNAL_SECRET", "yaml-secret-" + "y" * 32)
    monkeypatch.setenv("LOG_FORMAT", "text")  # the environment wins over the file

    settings = load_settings()

    assert settings.discord_bot_token is not None
    assert settings.discord_bot_token.get_secret_value() == "yaml-token"
    assert settings.api_base_url == "http://fallback:5000"
    assert settings.internal_api_token.get_secret_value() == "yaml-secret-" + "y" * 32
    assert settings.allowed_channel_ids == {1, 2}
    assert settings.admin_role_ids == {3}
    assert settings.coach_allowed_ids == {"coach_d": {4, 5}}
    assert (settings.log_level, settings.log_format) == ("WARNING", "text")
    assert settings.outbox_path == Path("/tmp/yaml-outbox.db")
    assert (settings.outbox_retry_max_seconds, settings.catchup_limit, settings.mock_days) == (60, 100, 3)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("discord: [1, 2]", "section 'discord' must be a mapping"),
        ("- just\n- a list", "must contain a mapping of sections"),
        ("discord: {token: [unclosed", r"is not valid YAML \(line 1, column 27: expected ',' or ']'"),
    ],
)
def test_bad_yaml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, content: str, problem: str) -> None:
    config = tmp_path / "bot.yaml"
    config.write_text(content, encoding="utf-8")

    with pytest.raises(ConfigError, match=problem):
        load_settings(config_file=config, mock_mode=True)


def test_missing_yaml_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CONFIG_FILE: cannot read"):
        load_settings(config_file=tmp_path / "nope.yaml", mock_mode=True)


def test_coach_ids_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="COACH_ALLOWED_IDS: expected a mapping"):
        load_settings(mock_mode=True, coach_allowed_ids="d=1")
    assert BotSettings(mock_mode=True, coach_allowed_ids="").coach_allowed_ids == {}


def run_bot(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`coach-plans-bot` in this process, with the environment of this one and `env`."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DISCORD_BOT_TOKEN", "MOCK_MODE", "CONFIG_FILE")
    }
    return run_in_process(bot_main, [], {**clean, **env})


def test_missing_token_outside_mock_mode_exits_2_with_the_message() -> None:
    result = run_bot({"MOCK_MODE": "false"})

    assert result.returncode == 2
    assert "Invalid bot configuration:" in result.stderr
    assert "DISCORD_BOT_TOKEN: is required unless MOCK_MODE=true" in result.stderr


def test_several_bad_settings_exit_2_naming_each() -> None:
    result = run_bot({"MOCK_MODE": "true", "PLAN_TIMEZONE": "Nowhere/Town", "LOG_FORMAT": "xml"})

    assert result.returncode == 2
    assert "PLAN_TIMEZONE: unknown time zone" in result.stderr
    assert "LOG_FORMAT:" in result.stderr


SECRET_TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.Gq1w2e.secret-discord-token-value"
SECRET_INTERNAL = "short-internal-secret"


@pytest.mark.parametrize("token", ["", "   ", "x" * 31])
def test_a_short_internal_token_outside_mock_mode_exits_2_naming_it(token: str) -> None:
    result = run_bot({"MOCK_MODE": "false", "DISCORD_BOT_TOKEN": "t", "INTERNAL_API_TOKEN": token})

    assert result.returncode == 2
    assert "INTERNAL_API_TOKEN: must be at least 32 characters outside mock mode" in result.stderr


def test_mock_mode_accepts_any_internal_token() -> None:
    assert load_settings(mock_mode=True, internal_api_token="x").mock_mode


def test_a_yaml_syntax_error_names_the_place_but_never_echoes_the_line(tmp_path: Path) -> None:
    config = tmp_path / "bot.yaml"
    config.write_text(f"discord:\n  token: [{SECRET_TOKEN}\napi: {{base_url: x}}\n", encoding="utf-8")

    result = run_bot({"CONFIG_FILE": str(config), "MOCK_MODE": "true"})

    assert result.returncode == 2
    assert "CONFIG_FILE:" in result.stderr
    assert "is not valid YAML (line " in result.stderr
    assert SECRET_TOKEN not in result.stderr
    assert "secret-discord-token" not in result.stderr


def test_settings_errors_never_print_a_secret(tmp_path: Path) -> None:
    config = tmp_path / "bot.yaml"
    # A token of the wrong type, an internal token too short, a URL with a password that is not http.
    config.write_text(
        f"discord: {{token: [{SECRET_TOKEN}]}}\napi: {{internal_token: {SECRET_INTERNAL}}}\n",
        encoding="utf-8",
    )

    result = run_bot(
        {
            "CONFIG_FILE": str(config),
            "MOCK_MODE": "false",
            "API_BASE_URL": "ftp://bot:hunter2-password@api.internal:5000",
            "PLAN_TIMEZONE": "Nowhere/Town",
        }
    )

    assert result.returncode == 2
    for setting in ("DISCORD_BOT_TOKEN:", "INTERNAL_API_TOKEN:", "API_BASE_URL:", "PLAN_TIMEZONE:"):
        assert setting in result.stderr
    for secret in (SECRET_TOKEN, SECRET_INTERNAL, "hunter2-password"):
        assert secret not in result.stderr + result.stdout


def test_a_short_internal_token_is_a_settings_error() -> None:
    with pytest.raises(ConfigError, match="INTERNAL_API_TOKEN: must be at least 32 characters"):
        load_settings(discord_bot_token="t", internal_api_token="short")


@pytest.mark.parametrize("log_file", ["/", "/proc/none/bot.log"])
def test_a_log_file_that_cannot_be_written_exits_2_naming_it(log_file: str) -> None:
    """It was a traceback and exit 1."""
    result = run_bot({"MOCK_MODE": "true", "LOG_FILE": log_file})
    assert result.returncode == 2
    assert f"LOG_FILE: cannot write {log_file}" in result.stderr
    assert "Traceback" not in result.stderr
