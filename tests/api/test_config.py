"""Settings: environment, YAML with ${VAR}, and start-up refusing bad settings with exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from coach_plans_api.cli import main
from coach_plans_api.config import ConfigError, Settings, load_settings
from tests.conftest import INTERNAL_TOKEN as TOKEN
from tests.conftest import REPO, run_in_process


def _cli_env(env: dict[str, str]) -> dict[str, str]:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    if "PYTHONPATH" in os.environ:
        base["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return {**base, **env}


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`coach-plans-api` (default `check-config`) with exactly `env`, in this process."""
    return run_in_process(main, list(args or ("check-config",)), _cli_env(env))


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "INTERNAL_API_TOKEN"),
        ({"INTERNAL_API_TOKEN": TOKEN, "API_PORT": "99999"}, "API_PORT"),
        ({"INTERNAL_API_TOKEN": TOKEN, "API_PORT": "http"}, "API_PORT"),
        ({"INTERNAL_API_TOKEN": TOKEN, "DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL"),
        ({"INTERNAL_API_TOKEN": TOKEN, "DATABASE_URL": "not a url"}, "DATABASE_URL"),
        ({"INTERNAL_API_TOKEN": TOKEN, "PLAN_TIMEZONE": "Mars/Olympus"}, "PLAN_TIMEZONE"),
        ({"INTERNAL_API_TOKEN": TOKEN, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"INTERNAL_API_TOKEN": TOKEN, "COACHES": "d:Coach D,d:Coach E"}, "listed twice"),
        # a file that cannot be opened: a traceback and exit 1 before
        ({"INTERNAL_API_TOKEN": TOKEN, "LOG_FILE": "/"}, "LOG_FILE: cannot write /"),
        ({"INTERNAL_API_TOKEN": TOKEN, "LOG_FILE": "/proc/none/api.log"}, "LOG_FILE: cannot write"),
        # beyond a time span Python can hold: "configuration OK", then `serve` died in a traceback
        ({"INTERNAL_API_TOKEN": TOKEN, "BOT_STALE_SECONDS": "inf"}, "BOT_STALE_SECONDS"),
        ({"INTERNAL_API_TOKEN": TOKEN, "BOT_STALE_SECONDS": "1e30"}, "BOT_STALE_SECONDS"),
        # archived charts' URLs start with it: each of these made them unfetchable
        ({"INTERNAL_API_TOKEN": TOKEN, "PUBLIC_BASE_URL": "not a url"}, "PUBLIC_BASE_URL"),
        ({"INTERNAL_API_TOKEN": TOKEN, "PUBLIC_BASE_URL": "javascript:alert(1)"}, "PUBLIC_BASE_URL"),
        ({"INTERNAL_API_TOKEN": TOKEN, "PUBLIC_BASE_URL": "https://h:99999"}, "PUBLIC_BASE_URL"),
    ],
)
def test_bad_settings_exit_2_naming_the_setting(env: dict[str, str], named: str) -> None:
    result = run_cli(env, "serve")
    assert result.returncode == 2
    assert named in result.stderr
    assert "Traceback" not in result.stderr


def test_every_bad_setting_is_named_at_once() -> None:
    """Through the console script, in a process of its own, as an operator runs it."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("coach-plans-api")), "serve"],
        env=_cli_env({"API_PORT": "0", "DATABASE_URL": "oracle://x", "LOG_FORMAT": "xml"}),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    for name in ("API_PORT", "DATABASE_URL", "LOG_FORMAT", "INTERNAL_API_TOKEN"):
        assert name in result.stderr


def test_database_url_password_is_not_echoed() -> None:
    result = run_cli({"INTERNAL_API_TOKEN": TOKEN, "DATABASE_URL": "oracle://user:hunter2@h/db"})
    assert result.returncode == 2
    assert "hunter2" not in result.stderr


def test_mock_mode_needs_no_token() -> None:
    result = run_cli({"MOCK_MODE": "true"})
    assert (result.returncode, result.stdout.strip()) == (0, "configuration OK")


def test_yaml_file_with_variable_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "coach.yaml"
    config.write_text(
        "api:\n  port: 5123\n  internal_token: ${SECRET_TOKEN}\n"
        "database:\n  path: ${DATA_DIR:-/var/lib/coach}/plans.db\n"
        "logging:\n  level: debug\n  format: json\n"
        "cache:\n  ttl_seconds: 60\n"
        "mock:\n  enabled: false\n"
        "discord:\n  bot_token: ignored-by-api\n"
    )
    monkeypatch.setenv("CONFIG_FILE", str(config))
    monkeypatch.setenv("SECRET_TOKEN", "from-env-" + "x" * 32)
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.delenv("API_PORT", raising=False)
    settings = load_settings()
    assert settings.api_port == 5123
    assert settings.internal_api_token == "from-env-" + "x" * 32
    assert settings.database_path == Path("/var/lib/coach/plans.db")
    assert (settings.log_level, settings.log_format, settings.cache_ttl_seconds) == (
        "DEBUG",
        "json",
        60,
    )
    monkeypatch.setenv("API_PORT", "6000")  # the environment wins over the file
    assert load_settings().api_port == 6000


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("api:\n  colour: blue\n", "api.colour"),
        ("nonsense:\n  a: 1\n", "nonsense"),
        ("- a\n- b\n", "mapping"),
        ("api: [\n", "cannot read"),
    ],
)
def test_bad_yaml_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    monkeypatch.setenv("CONFIG_FILE", str(config))
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_bad_yaml_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("api:\n  colour: blue\n")
    result = run_cli({"CONFIG_FILE": str(config), "MOCK_MODE": "true"})
    assert result.returncode == 2
    assert "api.colour" in result.stderr


def test_postgres_url_gets_the_psycopg_driver() -> None:
    settings = Settings(database_url="postgresql://u@h/db", internal_api_token=TOKEN)
    assert settings.sqlalchemy_url.drivername == "postgresql+psycopg"
    assert Settings(mock_mode=True).sqlalchemy_url.drivername == "sqlite"


def test_roster_is_configuration() -> None:
    settings = Settings(mock_mode=True, coaches="d:Dan,x")
    assert settings.roster == {"d": "Dan", "x": "Coach X"}
    with pytest.raises(ValueError, match="bad coach key"):
        Settings(mock_mode=True, coaches="Bad Key")


SECRET = "hunter2-s3cret"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DATABASE_URL": f"postgresql//coach:{SECRET}@db/plans"}, "DATABASE_URL"),
        ({"DATABASE_URL": f"postgresql://coach:{SECRET}@db:notaport/plans"}, "DATABASE_URL"),
        ({"DATABASE_URL": f"postgresql://coach:{SECRET}@[::1/plans"}, "DATABASE_URL"),
        ({"DATABASE_URL": f"oracle://coach:{SECRET}@db/plans"}, "DATABASE_URL"),
        ({"REDIS_URL": f"redis://:{SECRET}@cache:port/0"}, "REDIS_URL"),
        ({"REDIS_URL": f"http://:{SECRET}@cache/0"}, "REDIS_URL"),
    ],
)
def test_malformed_urls_are_named_never_echoed(env: dict[str, str], named: str) -> None:
    result = run_cli({"INTERNAL_API_TOKEN": TOKEN, **env})
    assert result.returncode == 2
    assert named in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_yaml_syntax_error_does_not_print_the_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"api:\n  port: 5000\n  internal_token: {SECRET}: oops\n")
    result = run_cli({"CONFIG_FILE": str(config)})
    assert result.returncode == 2
    assert "CONFIG_FILE" in result.stderr
    assert "line 3, column" in result.stderr
    assert SECRET not in result.stderr


def test_a_secret_setting_of_the_wrong_type_is_not_shown(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"api:\n  internal_token: [{SECRET}]\ndatabase:\n  url: {{password: {SECRET}}}\n")
    result = run_cli({"CONFIG_FILE": str(config)})
    assert result.returncode == 2
    assert "INTERNAL_API_TOKEN" in result.stderr
    assert "DATABASE_URL" in result.stderr
    assert SECRET not in result.stderr


@pytest.mark.parametrize("token", ["t", "short-" + "x" * 25])
def test_a_weak_token_is_refused_outside_mock_mode(token: str) -> None:
    for command in ("check-config", "serve"):
        result = run_cli({"INTERNAL_API_TOKEN": token}, command)
        assert result.returncode == 2
        assert "INTERNAL_API_TOKEN: must be at least 32 characters" in result.stderr
        assert "short-" not in result.stderr
    assert run_cli({"INTERNAL_API_TOKEN": "x" * 32}).returncode == 0
    assert run_cli({"INTERNAL_API_TOKEN": token, "MOCK_MODE": "true"}).returncode == 0


@pytest.mark.parametrize(
    ("env", "base"),
    [
        ({"API_HOST": "::1", "API_PORT": "5001"}, "http://[::1]:5001"),
        ({"API_HOST": "", "API_PORT": "5001"}, "http://localhost:5001"),
        ({"API_HOST": "0.0.0.0"}, "http://localhost:5000"),
        ({"PUBLIC_BASE_URL": "https://plans.example.org/coach/"}, "https://plans.example.org/coach"),
    ],
)
def test_the_charts_base_url_is_one_a_client_can_fetch(env: dict[str, str], base: str) -> None:
    """It was "http://::1:5001" (no brackets) and "http://:5001" (no host)."""
    values: dict[str, Any] = {name.lower(): value for name, value in env.items()}
    settings = Settings(internal_api_token=TOKEN, **values)
    assert settings.chart_base_url == base


def test_a_blank_log_file_is_no_log_file() -> None:
    """`LOG_FILE=` in an env file: it was the current directory, which no file can be."""
    result = run_cli({"INTERNAL_API_TOKEN": TOKEN, "LOG_FILE": ""})
    assert (result.returncode, result.stdout.strip()) == (0, "configuration OK"), result.stderr


# A real SIGINT, sent the moment the command line's module starts to load: a sleep before the
# signal raced the import (sometimes the command had already finished).
_INTERRUPT_WHILE_LOADING = """
import os, signal, sys

class SigintOnLoad:
    def find_spec(self, name, path=None, target=None):
        if name == "coach_plans_api.cli":
            os.kill(os.getpid(), signal.SIGINT)
        return None

# What Python installs at start-up unless SIGINT is ignored then, as it is in a shell's background
# job and the processes it starts (the suite run with `&`): a terminal's Ctrl-C.
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.meta_path.insert(0, SigintOnLoad())
sys.argv = ["coach-plans-api", "check-config"]
from coach_plans_api.__main__ import run
run()
"""


def test_ctrl_c_while_the_command_starts_is_one_line_and_exit_130() -> None:
    """Ctrl-C in the second or so its modules take to load printed a KeyboardInterrupt traceback."""
    result = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_WHILE_LOADING],
        env={"PATH": os.environ["PATH"], "MOCK_MODE": "true"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stdout, result.stderr) == (130, "", "coach-plans-api: interrupted\n")
