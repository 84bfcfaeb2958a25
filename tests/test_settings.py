"""Settings are read from the environment and .env exactly as SPEC names them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.__main__ import main
from bot.settings import DEFAULT_MODELS_FILE, Settings, environ_with_dotenv

ALL = [
    "BOT_TOKEN",
    "TELEGRAM_API_URL",
    "REDIS_URL",
    "MODELS_FILE",
    "ADMIN_IDS",
    "LIMITS_TIMEZONE",
    "WEBHOOK_URL",
    "WEBHOOK_SECRET",
    "WEBHOOK_HOST",
    "WEBHOOK_PORT",
    "METRICS_PORT",
    "LOG_LEVEL",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ALL:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", "123:abc")
    s = Settings()
    assert s.bot_token.get_secret_value() == "123:abc"
    assert s.telegram_api_url == "https://api.telegram.org"
    assert s.redis_url.get_secret_value() == "redis://localhost:6379/0"
    assert s.models_file == DEFAULT_MODELS_FILE
    assert s.admin_ids == frozenset()
    assert s.limits_timezone == "UTC"
    assert s.webhook_url is None
    assert (s.webhook_host, s.webhook_port, s.metrics_port) == ("0.0.0.0", 8080, None)
    assert s.log_level == "INFO"
    assert "123:abc" not in repr(s)


def test_every_setting_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "BOT_TOKEN": "1:x",
        "TELEGRAM_API_URL": "http://127.0.0.1:9/",
        "REDIS_URL": "redis://127.0.0.1:1/2",
        "MODELS_FILE": "/tmp/m.toml",
        "ADMIN_IDS": "1, 22,333",
        "LIMITS_TIMEZONE": "Europe/Moscow",
        "WEBHOOK_URL": "https://example.org/tg/hook",
        "WEBHOOK_SECRET": "s3cret",
        "WEBHOOK_HOST": "127.0.0.1",
        "WEBHOOK_PORT": "9000",
        "METRICS_PORT": "9100",
        "LOG_LEVEL": "debug",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    s = Settings()
    assert s.telegram_api_url == "http://127.0.0.1:9"
    assert s.models_file == Path("/tmp/m.toml")
    assert s.admin_ids == {1, 22, 333}
    assert s.is_admin(22) and not s.is_admin(4)
    assert s.timezone.key == "Europe/Moscow"
    assert s.webhook_secret is not None and s.webhook_secret.get_secret_value() == "s3cret"
    assert (s.webhook_host, s.webhook_port, s.metrics_port) == ("127.0.0.1", 9000, 9100)
    assert s.log_level == "DEBUG"


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BOT_TOKEN=9:from-file\nOPENAI_API_KEY=sk-file\n")
    assert Settings().bot_token.get_secret_value() == "9:from-file"
    assert environ_with_dotenv()["OPENAI_API_KEY"] == "sk-file"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("LIMITS_TIMEZONE", "Mars/Base", "unknown IANA time zone"),
        ("ADMIN_IDS", "1,bob", "ADMIN_IDS must be comma-separated"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be one of"),
        ("WEBHOOK_URL", "https://example.org/hook", "WEBHOOK_SECRET is required"),
    ],
)
def test_bad_values_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv("BOT_TOKEN", "1:x")
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=expected):
        Settings()


def test_cli_names_the_missing_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 2
    assert "BOT_TOKEN: is required" in capsys.readouterr().err
