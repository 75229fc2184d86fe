"""One YAML settings file, read the same way by both services; its errors never show a secret."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from coach_plans_api.config import ConfigError as ApiConfigError
from coach_plans_api.config import load_settings as load_api_settings
from coach_plans_bot.config import ConfigError as BotConfigError
from coach_plans_bot.config import load_settings as load_bot_settings
from coach_plans_common import ConfigFileError, expand_variables, known_timezone
from tests.api.test_config import run_cli
from tests.bot.test_config import run_bot
from tests.conftest import REPO

SECRET = "hunter2-" + "s" * 32

# docs/configuration.md's and docs/bot.md's examples in one file, with both kinds of reference.
SHARED = """
api:
  host: 127.0.0.1
  port: ${API_PORT_FROM_VAULT:-5123}
  internal_token: "${TOKEN_FROM_VAULT}"
  rate_limit_per_minute: 1200
  plan_timezone: ${ZONE:-Europe/London}
  base_url: "http://${API_HOST_NAME:-api}:5123"
  timeout_seconds: 5
database: {path: "${DATA_DIR:-/var/lib/coach}/plans.db"}
logging: {level: "${LEVEL:-warning}", format: json, file: "${LOG_DIR}/service.log"}
cache: {ttl_seconds: 60, max_size: 100}
charts: {store_dir: ./data/charts, allowed_hosts: "cdn.discordapp.com"}
mock: {enabled: "${MOCK:-false}", days: 2}
discord:
  token: "${DISCORD_FROM_VAULT}"
  allowed_channel_ids: [123]
  admin_role_ids: "456"
  coach_allowed_ids: {d: "789"}
bot:
  outbox_path: /tmp/outbox.db
  plan_timezone: ${ZONE:-Europe/London}
  catchup_limit: 10
"""


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in list(os.environ):
        if name.startswith(("API_", "LOG_", "MOCK", "PLAN_", "DATABASE_", "INTERNAL_", "DISCORD_", "CONFIG")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TOKEN_FROM_VAULT", SECRET)
    monkeypatch.setenv("DISCORD_FROM_VAULT", "discord-token")
    monkeypatch.setenv("LOG_DIR", str(tmp_path))
    monkeypatch.setenv("API_HOST_NAME", "")  # set but empty: the default stands in, as in a shell
    for name in ("API_PORT_FROM_VAULT", "ZONE", "DATA_DIR", "LEVEL", "MOCK"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "coach-plans.yaml"
    config.write_text(SHARED, encoding="utf-8")
    monkeypatch.setenv("CONFIG_FILE", str(config))
    return config


def test_one_file_with_variables_loads_the_same_in_both_services(environment: Path, tmp_path: Path) -> None:
    api = load_api_settings()
    bot = load_bot_settings()

    assert api.internal_api_token == bot.internal_api_token.get_secret_value() == SECRET
    assert api.plan_timezone == bot.plan_timezone == "Europe/London"
    assert (api.log_level, api.log_format, api.log_file) == ("WARNING", "json", tmp_path / "service.log")
    assert (bot.log_level, bot.log_format, bot.log_file) == ("WARNING", "json", tmp_path / "service.log")
    assert api.mock_mode is bot.mock_mode is False
    # ... and each reads its own keys.
    assert (api.api_host, api.api_port, api.database_path) == (
        "127.0.0.1",
        5123,
        Path("/var/lib/coach/plans.db"),
    )
    assert bot.api_base_url == "http://api:5123"
    assert bot.discord_bot_token is not None
    assert bot.discord_bot_token.get_secret_value() == "discord-token"
    assert (bot.allowed_channel_ids, bot.coach_allowed_ids) == (
        frozenset({123}),
        {"coach_d": frozenset({789})},
    )
    assert (bot.catchup_limit, bot.mock_days, bot.api_timeout_seconds) == (10, 2, 5)


def test_the_environment_wins_over_the_file(environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "text")
    monkeypatch.setenv("PLAN_TIMEZONE", "Asia/Tokyo")
    for settings in (load_api_settings(), load_bot_settings()):
        assert (settings.log_format, settings.plan_timezone) == ("text", "Asia/Tokyo")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("logging: {levle: debug}\n", "unknown key logging.levle"),
        ("bots: {outbox_path: x}\n", "unknown section 'bots'"),
        ("- a list\n", "must contain a mapping of sections"),
        ("logging: debug\n", "section 'logging' must be a mapping"),
        ("api: {port: 1\n", "it is not valid YAML (line 2, column 1: expected ',' or '}'"),
    ],
)
def test_both_services_refuse_the_same_bad_file(environment: Path, text: str, problem: str) -> None:
    environment.write_text(text, encoding="utf-8")
    with pytest.raises(ApiConfigError, match=problem.replace("(", r"\(")):
        load_api_settings()
    with pytest.raises(BotConfigError, match=problem.replace("(", r"\(")):
        load_bot_settings()


def test_an_unreadable_file_is_named(environment: Path) -> None:
    environment.write_bytes(b"api: {host: \xff}\n")
    with pytest.raises(ApiConfigError, match=r"cannot read .*: not UTF-8 text"):
        load_api_settings()
    environment.unlink()
    with pytest.raises(BotConfigError, match=r"cannot read .*: no such file"):
        load_bot_settings()
    environment.mkdir()
    with pytest.raises(BotConfigError, match=r"cannot read .*: not a file"):
        load_bot_settings()


@pytest.mark.parametrize("service", ["api", "bot"])
@pytest.mark.parametrize(
    "broken",
    [
        f"api:\n  internal_token: {SECRET}: oops\n",  # a mapping where a value should be
        f'api:\n  internal_token: "{SECRET}\n',  # an unclosed quote
        f"discord:\n  token: [{SECRET}\napi: {{base_url: x}}\n",  # an unclosed list
        f"api:\n\tinternal_token: {SECRET}\n",  # a tab
    ],
    ids=["mapping", "quote", "list", "tab"],
)
def test_a_yaml_syntax_error_prints_no_secret(tmp_path: Path, service: str, broken: str) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text(broken, encoding="utf-8")

    env = {"CONFIG_FILE": str(config), "MOCK_MODE": "true"}
    result = run_cli(env, "check-config") if service == "api" else run_bot(env)

    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert f"CONFIG_FILE: cannot read {config}: it is not valid YAML (line " in output
    assert SECRET not in output
    assert "hunter2" not in output
    assert "Traceback" not in output


def test_variables_expand_like_a_shell() -> None:
    environ = {"SET": "value", "EMPTY": ""}
    document = {
        "a": "${SET}/${UNSET}/${UNSET:-fallback}/${EMPTY:-fallback}",
        "b": ["${SET}", 5],
        "c": {"d": None},
    }
    assert expand_variables(document, environ) == {
        "a": "value//fallback/fallback",
        "b": ["value", 5],
        "c": {"d": None},
    }
    assert expand_variables("$SET ${not a name}", environ) == "$SET ${not a name}"


def test_known_timezone() -> None:
    assert known_timezone("America/New_York") == "America/New_York"
    for bad in ("Mars/Olympus", "", "../etc/passwd"):
        with pytest.raises(ValueError, match="unknown time zone"):
            known_timezone(bad)
    assert issubclass(ConfigFileError, ValueError)


@pytest.mark.parametrize("doc", ["configuration.md", "bot.md"])
def test_the_documented_examples_load_in_both_services(
    environment: Path, monkeypatch: pytest.MonkeyPatch, doc: str
) -> None:
    [example] = re.findall(r"```yaml\n(.*?)```", (REPO / "docs" / doc).read_text(encoding="utf-8"), re.S)
    environment.write_text(example, encoding="utf-8")
    monkeypatch.setenv("INTERNAL_API_TOKEN", SECRET)
    monkeypatch.setenv("DISCORD_BOT_TOKEN", "discord-token")

    api, bot = load_api_settings(), load_bot_settings()

    assert api.internal_api_token == bot.internal_api_token.get_secret_value() == SECRET
    assert (api.log_format, bot.log_format) == ("json", "json")
