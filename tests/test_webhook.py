"""Webhook mode: the real app behind its aiohttp webhook server, against the fake Bot API
(whose setWebhook makes it push updates to the bot, with the secret header), the model
doubles and a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from bot.middlewares import DEDUP_TTL_SECONDS
from bot.texts import EN
from tests.doubles.base import Reply
from tests.doubles.ollama_api import OllamaDouble
from tests.doubles.telegram import FakeUser, TelegramDouble
from tests.harness import WEBHOOK_SECRET, WebhookHarness, running_webhook_bot
from tests.redis_server import RedisServer, free_port
from tests.support import spawn_bot, until_started

pytestmark = pytest.mark.asyncio


def text_update(
    user: FakeUser, text: str, update_id: int, message_id: int = 90_001
) -> dict[str, Any]:
    """An update as Telegram would push it, for a message the double never saw."""
    chat = {"id": user.id, "type": "private", "first_name": user.info["first_name"]}
    message = {
        "message_id": message_id,
        "date": int(time.time()),
        "chat": chat,
        "from": user.info,
        "text": text,
    }
    return {"update_id": update_id, "message": message}


def last_delivered(h: WebhookHarness) -> int:
    """The update_id of the last update the double pushed to the webhook."""
    update_id, status = h.tg.webhook_deliveries[-1]
    assert status == 200
    return update_id


async def test_sets_the_webhook_and_answers_through_it(redis_url: str, tmp_path: Path) -> None:
    async with running_webhook_bot(redis_url, tmp_path) as h:
        [call] = h.tg.calls("setWebhook")
        assert call.params["url"] == h.webhook_url
        assert call.params["secret_token"] == WEBHOOK_SECRET
        allowed = call.params["allowed_updates"]
        assert allowed == h.app.dispatcher.resolve_used_update_types()
        assert {"message", "callback_query"} <= set(allowed)
        assert str(call.params.get("drop_pending_updates", "false")).lower() == "false"

        ann = h.tg.user(first_name="Ann")
        await ann.send("hello over the webhook")
        assert (await ann.next_message())["text"] == "echo: hello over the webhook"
        await ann.send("/model")  # a keyboard, and a press on it: a callback query
        await ann.next_message()
        await ann.click("Mistral Test")
        await h.tg.wait_for("answerCallbackQuery")
        await ann.send("and now?")
        assert (await ann.next_message())["text"] == "echo: and now?"
        assert len(h.mistral.calls("/chat/completions")) == 1
        assert all(status == 200 for _, status in h.tg.webhook_deliveries)
        assert len(h.tg.webhook_deliveries) == 4
        # never polled, and the webhook stays set for the other replicas
        assert h.tg.calls("getUpdates") == []
        assert h.tg.calls("deleteWebhook") == []
    assert h.tg.calls("deleteWebhook") == []


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", WEBHOOK_SECRET + "x"])
async def test_a_request_without_the_right_secret_is_refused(
    redis_url: str, tmp_path: Path, secret: str | None
) -> None:
    async with running_webhook_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        status = await h.post(text_update(ann, "let me in", 555_001), secret=secret)
        assert status == 401
        await h.idle()
        assert h.replicas[0].server.receiver.accepted == 0
        assert h.tg.calls("sendMessage") == []
        assert h.tg.calls("sendMessageDraft") == []
        assert h.llm_requests() == []
        # nothing claimed the update id either: Telegram's own delivery would still count
        client = Redis.from_url(redis_url)
        try:
            assert [k async for k in client.scan_iter("dedup:*")] == []
        finally:
            await client.aclose()

        await ann.send("the real thing")
        assert (await ann.next_message())["text"] == "echo: the real thing"
        await h.idle()
        assert [c.text for c in h.tg.calls("sendMessage")] == ["echo: the real thing"]
        assert len(h.llm_requests()) == 1


async def test_bad_bodies_with_the_right_secret_are_refused(redis_url: str, tmp_path: Path) -> None:
    async with running_webhook_bot(redis_url, tmp_path) as h:
        assert h.client is not None
        headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
        url = h.replicas[0].url
        for body in (b"not json", b"[1, 2]", b'{"message": {}}'):
            async with h.client.post(url, data=body, headers=headers) as response:
                assert response.status == 400
        await h.idle()
        assert h.tg.calls("sendMessage") == []


async def test_the_same_update_twice_is_answered_once(redis_url: str, tmp_path: Path) -> None:
    async with running_webhook_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        message = await ann.send("only once please")
        assert (await ann.next_message())["text"] == "echo: only once please"
        update_id = last_delivered(h)

        # Telegram delivers it again (its 200 got lost), twice even, once concurrently
        update = {"update_id": update_id, "message": message}
        assert await h.post(update) == 200
        assert list(await asyncio.gather(h.post(update), h.post(update))) == [200, 200]
        await h.idle()
        assert h.replicas[0].server.receiver.accepted == 4
        assert [c.text for c in h.tg.calls("sendMessage")] == ["echo: only once please"]
        assert len(h.openai.calls("/chat/completions")) == 1

        client = Redis.from_url(redis_url)
        try:
            key = f"dedup:{h.tg.bot_id}:{update_id}"
            assert 0 < await client.ttl(key) <= DEDUP_TTL_SECONDS
        finally:
            await client.aclose()

        # the conversation is not doubled either
        await ann.send("and then?")
        await ann.next_message()
        sent = h.openai.calls("/chat/completions")[-1].json["messages"]
        assert [m["content"] for m in sent] == [
            "only once please",
            "echo: only once please",
            "and then?",
        ]


async def test_healthz_follows_redis(
    redis_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    async with running_webhook_bot(redis_url, tmp_path) as h:
        assert await h.get("/healthz") == (200, "ok")
        redis_server.stop()
        try:
            status, _ = await h.get("/healthz")
            assert status == 503
            # an update still gets through the de-duplication, to the Redis-down answer
            ann = h.tg.user(first_name="Ann")
            await ann.send("anyone there?")
            assert (await ann.next_message())["text"] == EN.service_unavailable
            assert h.llm_requests() == []
        finally:
            redis_server.start()
        assert await h.get("/healthz") == (200, "ok")


# --- the real command line in webhook mode ---------------------------------------------

CATALOG = """\
[defaults]
model = "local"
daily_limit = 0

[providers.local]
kind = "ollama"
base_url = "{url}"
timeout = 30
max_retries = 0

[[models]]
id = "local"
title = "Local Test"
provider = "local"
name = "llama3.2"
"""


@contextlib.asynccontextmanager
async def bot_process(
    tmp_path: Path, env: dict[str, str]
) -> AsyncIterator[asyncio.subprocess.Process]:
    """``python -m bot`` in ``tmp_path`` (no stray .env), killed if the test leaves it."""
    log = tmp_path / "bot.log"
    with log.open("wb") as out:
        process = await spawn_bot(tmp_path, env, out, out)
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def refused(url: str) -> bool:
    """Whether the webhook no longer takes an update (connection refused, or a 5xx)."""
    try:
        async with (
            aiohttp.ClientSession() as client,
            client.post(
                url,
                json={"update_id": 1},
                headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET},
                timeout=aiohttp.ClientTimeout(total=2),
            ) as response,
        ):
            return response.status >= 500
    except (aiohttp.ClientError, TimeoutError):
        return True


async def test_python_m_bot_serves_the_webhook_and_drains_on_sigterm(
    redis_url: str, tmp_path: Path
) -> None:
    grace = 8.0
    text = " ".join(f"word{i}" for i in range(1, 16))  # 15 pieces, 0.1 s apart
    async with TelegramDouble() as tg, OllamaDouble() as ollama:
        catalog = tmp_path / "models.toml"
        catalog.write_text(CATALOG.format(url=ollama.url))
        port = free_port()
        url = f"http://127.0.0.1:{port}/hook"
        env = {
            "BOT_TOKEN": tg.token,
            "TELEGRAM_API_URL": tg.url,
            "REDIS_URL": redis_url,
            "MODELS_FILE": str(catalog),
            "WEBHOOK_URL": url,
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "WEBHOOK_HOST": "127.0.0.1",
            "WEBHOOK_PORT": str(port),
            "SHUTDOWN_GRACE_SECONDS": str(grace),
        }
        async with bot_process(tmp_path, env) as process:
            log = tmp_path / "bot.log"
            await until_started(
                process,
                lambda: bool(tg.calls("setWebhook")),
                "setWebhook",
                lambda: log.read_text(errors="replace"),
            )
            call = tg.calls("setWebhook")[0]
            assert call.params["url"] == url
            assert call.params["secret_token"] == WEBHOOK_SECRET
            ann = tg.user(first_name="Ann")
            await ann.send("hello")
            assert (await ann.next_message(timeout=10))["text"] == "echo: hello"

            ollama.default = Reply(text=text, chunk_delay=0.1)
            await ann.send("a long one")
            drafted = "sendRichMessageDraft"  # the default: rich answers
            await tg.wait_for(drafted, lambda c: "word1" in (c.text or ""), timeout=10)
            process.send_signal(signal.SIGTERM)
            # it stops taking updates at once ...
            async with asyncio.timeout(5):
                while not await refused(url):
                    await asyncio.sleep(0.02)
            # ... and the answer in flight still arrives whole
            assert (await ann.next_message(timeout=grace))["text"] == text
            assert await asyncio.wait_for(process.wait(), grace + 5) == 0
        output = (tmp_path / "bot.log").read_text(errors="replace")
        assert tg.calls("deleteWebhook") == []
        assert tg.calls("getUpdates") == []
        assert tg.token not in output
        assert WEBHOOK_SECRET not in output
        assert "did not finish in time" not in output
