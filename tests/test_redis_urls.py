"""REDIS_URL's other schemes on one machine, ``rediss://`` (TLS, with a throwaway
certificate authority made by the openssl command) and ``unix://`` (a socket in the
test's directory), end to end; and the topology settings' checks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.settings import Settings
from tests.harness import running_bot
from tests.redis_server import RedisServer
from tests.support import make_certificates


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tls=make_certificates(tmp_path))
    try:
        server.start()
    except RuntimeError:
        server.cleanup()
        pytest.skip("this redis-server does not start with TLS (built without it?)")
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def unix_server() -> Iterator[RedisServer]:
    server = RedisServer(unix_socket=True)
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


async def chat_and_count(url: str, tmp_path: Path) -> None:
    """A conversation and its limits, through Redis at ``url``."""
    async with running_bot(url, tmp_path, daily_limit=5) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("hello")
        assert (await ann.next_message())["text"] == "echo: hello"
        await ann.send("and again")
        assert (await ann.next_message())["text"] == "echo: and again"
        sent = [m["content"] for m in h.openai.calls("/chat/completions")[-1].json["messages"]]
        assert sent == ["hello", "echo: hello", "and again"]
        await ann.send("/limits")
        assert "3 of 5 credits left" in (await ann.next_message())["text"]


async def test_rediss_url_talks_tls(tls_server: RedisServer, tmp_path: Path) -> None:
    assert tls_server.tls_url.startswith("rediss://127.0.0.1:")
    await chat_and_count(tls_server.tls_url, tmp_path)


async def test_unix_url_talks_over_the_socket(unix_server: RedisServer, tmp_path: Path) -> None:
    assert unix_server.unix_url.startswith("unix://")
    await chat_and_count(unix_server.unix_url, tmp_path)


def settings(**values: object) -> Settings:
    return Settings(bot_token="1:x", **values)  # type: ignore[arg-type]


def test_sentinels_are_read_as_host_port_pairs() -> None:
    read = settings(
        redis_sentinels=" s1:26379, 10.0.0.2:26380,[::1]:26381", redis_sentinel_master="main"
    )
    assert read.redis_sentinels == (("s1", 26379), ("10.0.0.2", 26380), ("::1", 26381))
    assert settings().redis_sentinels == () and not settings().redis_cluster


def test_the_topology_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", "127.0.0.1:26379,127.0.0.1:26380")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "botmaster")
    read = settings()
    assert read.redis_sentinels == (("127.0.0.1", 26379), ("127.0.0.1", 26380))
    assert read.redis_sentinel_master == "botmaster"
    monkeypatch.delenv("REDIS_SENTINELS")
    monkeypatch.delenv("REDIS_SENTINEL_MASTER")
    monkeypatch.setenv("REDIS_CLUSTER", "1")
    assert settings().redis_cluster


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"redis_sentinels": "s1:26379"}, "go together"),
        ({"redis_sentinel_master": "main"}, "go together"),
        ({"redis_sentinels": "s1", "redis_sentinel_master": "main"}, "not host:port"),
        ({"redis_sentinels": "s1:http", "redis_sentinel_master": "main"}, "not host:port"),
        (
            {"redis_sentinels": "s1:1", "redis_sentinel_master": "m", "redis_cluster": True},
            "exclude each other",
        ),
        ({"redis_cluster": True, "redis_url": "unix:///run/redis.sock"}, "redis://"),
    ],
)
def test_topology_settings_that_cannot_work_are_refused(
    values: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        settings(**values)
