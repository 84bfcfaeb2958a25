"""The bot's settings: environment variables or a ``.env`` file (SPEC "Settings")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_MODELS_FILE = Path(__file__).with_name("models.toml")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    bot_token: SecretStr
    telegram_api_url: str = "https://api.telegram.org"
    redis_url: SecretStr = SecretStr("redis://localhost:6379/0")
    models_file: Path = DEFAULT_MODELS_FILE
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    limits_timezone: str = "UTC"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_host: str = "0.0.0.0"  # noqa: S104 - the webhook server listens on every interface
    webhook_port: int = Field(default=8080, ge=1, le=65535)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    log_level: str = "INFO"
    rich_messages: Literal["auto", "off"] = "auto"  # SPEC "Rich answers"

    # Beyond SPEC's table: tuning with sensible defaults, documented in .env.example.
    max_prompt_chars: int = Field(default=20_000, ge=100)
    history_max_messages: int = Field(default=40, ge=2, le=1000)
    history_ttl_hours: float = Field(default=72.0, gt=0)
    max_concurrent_answers: int = Field(default=5000, ge=1)  # answers in flight
    max_starting_updates: int = Field(default=64, ge=1)  # updates starting (CPU) at once
    telegram_calls_per_second: float | None = Field(default=None, gt=0)  # a shared budget
    shutdown_grace_seconds: float = Field(default=20.0, ge=0)
    voice_max_seconds: int = Field(default=300, ge=1)  # longer voice messages are refused
    arena_daily_votes: int = Field(default=50, ge=0)  # a user's counted arena votes a day
    # SPEC "Paid credits": the key invoice payloads are signed with (default: derived
    # from BOT_TOKEN), and the text /terms shows (default: a short standard one)
    payments_secret: SecretStr | None = None
    terms_text: str | None = None

    # SPEC "Redis topologies": a Redis Cluster (REDIS_URL names a node), or Sentinel
    redis_cluster: bool = False
    redis_sentinels: Annotated[tuple[tuple[str, int], ...], NoDecode] = ()
    redis_sentinel_master: str | None = None

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _parse_admin_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",")]
            try:
                return frozenset(int(p) for p in parts if p)
            except ValueError:
                raise ValueError("ADMIN_IDS must be comma-separated Telegram user ids") from None
        if isinstance(value, int):
            return frozenset({value})
        return value

    @field_validator("limits_timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value

    @field_validator("telegram_api_url", "webhook_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}:
            raise ValueError("LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("WEBHOOK_SECRET is required when WEBHOOK_URL is set")
        return self

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _parse_sentinels(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        found = []
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            host, _, port = part.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"REDIS_SENTINELS: {part!r} is not host:port")
            found.append((host.strip("[]"), int(port)))
        return tuple(found)

    @model_validator(mode="after")
    def _check_topology(self) -> Settings:
        if bool(self.redis_sentinels) != bool(self.redis_sentinel_master):
            raise ValueError("REDIS_SENTINELS and REDIS_SENTINEL_MASTER go together")
        if self.redis_sentinels and self.redis_cluster:
            raise ValueError("REDIS_CLUSTER and REDIS_SENTINELS exclude each other")
        scheme = self.redis_url.get_secret_value().partition("://")[0]
        if self.redis_cluster and scheme not in ("redis", "rediss"):
            raise ValueError("REDIS_CLUSTER=1 needs a redis:// or rediss:// REDIS_URL")
        return self

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.limits_timezone)

    def is_admin(self, user_id: int) -> bool:
        return user_id in self.admin_ids


def environ_with_dotenv(path: Path = Path(".env")) -> dict[str, str]:
    """The process environment over the ``.env`` file: where provider keys are read."""
    from dotenv import dotenv_values

    merged = {k: v for k, v in dotenv_values(path).items() if v is not None}
    merged.update(os.environ)
    return merged
