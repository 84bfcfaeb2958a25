"""Webhook mode under attack: bodies nested too deep to parse, and a flood of requests
without the secret token (refused, and not a flood in the log either)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.webhook import REFUSALS_LOG_EVERY
from tests.harness import WEBHOOK_SECRET, running_webhook_bot
from tests.test_webhook import text_update

pytestmark = pytest.mark.asyncio

DEPTH = 100_000


@pytest.mark.parametrize(
    "body",
    [
        b"[" * DEPTH + b"]" * DEPTH,
        b'{"update_id": 1, "message": ' + b'{"a": ' * DEPTH + b"1" + b"}" * (DEPTH + 1),
    ],
    ids=["arrays", "objects"],
)
async def test_a_body_nested_too_deep_is_a_bad_request(
    redis_url: str, tmp_path: Path, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_webhook_bot(redis_url, tmp_path) as h:
        assert h.client is not None
        headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
        with caplog.at_level(logging.ERROR):
            async with h.client.post(h.replicas[0].url, data=body, headers=headers) as response:
                assert response.status == 400  # not a 500 from a RecursionError
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
        await h.idle()
        assert h.replicas[0].server.receiver.accepted == 0
        assert h.tg.calls("sendMessage") == []
        # and the replica goes on serving
        ann = h.tg.user(first_name="Ann")
        await ann.send("still there?")
        assert (await ann.next_message())["text"] == "echo: still there?"


async def test_refused_requests_are_logged_once_then_counted_once_a_minute(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_webhook_bot(redis_url, tmp_path) as h:
        receiver = h.replicas[0].server.receiver
        now = 1000.0
        receiver.clock = lambda: now
        ann = h.tg.user(first_name="Ann")

        def refusals() -> list[str]:
            return [
                r.getMessage()
                for r in caplog.records
                if r.name == "bot.webhook" and r.levelno >= logging.WARNING
            ]

        async def knock(times: int, secret: str | None) -> None:
            for i in range(times):
                update = text_update(ann, "let me in", 700_000 + i)
                assert await h.post(update, secret=secret) == 401

        with caplog.at_level(logging.INFO, logger="bot.webhook"):
            await knock(40, "wrong-secret")  # the first line, then silence
            assert len(refusals()) == 1
            assert "secret token was refused" in refusals()[0]
            now += REFUSALS_LOG_EVERY / 2
            await knock(20, None)
            assert len(refusals()) == 1
            now += REFUSALS_LOG_EVERY / 2  # a minute after the first line
            await knock(1, WEBHOOK_SECRET + "x")
            assert len(refusals()) == 2
            assert "60 request(s)" in refusals()[1], refusals()[1]  # 39 + 20 + this one
            await knock(5, "")  # and silence again
            assert len(refusals()) == 2
        assert receiver.accepted == 0
        assert h.tg.calls("sendMessage") == []
        assert h.llm_requests() == []
