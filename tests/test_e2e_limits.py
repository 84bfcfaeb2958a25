"""End to end: daily limits through the fake Bot API, the model doubles and a real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from tests.doubles.base import Reply
from tests.harness import running_bot
from tests.redis_server import RedisServer


async def wait_for_key(redis_url: str, pattern: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        async with asyncio.timeout(5):
            while not [k async for k in client.scan_iter(pattern)]:
                await asyncio.sleep(0.02)
    finally:
        await client.aclose()


CAPPED = """
[[models]]
id = "capped"
title = "Capped Test"
provider = "openai"
name = "capped-test"
daily_limit = 3

[[models]]
id = "dear"
title = "Dear Test"
provider = "mistral"
name = "dear-test"
cost = 4
"""


async def test_model_cap_gives_three_answers_and_two_limit_messages(
    redis_url: str, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path, extra_catalog=CAPPED) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/model capped")
        await ann.next_message()
        texts = []
        for i in range(5):
            await ann.send(f"question {i}")
            texts.append((await ann.next_message())["text"])
        assert texts[:3] == [f"echo: question {i}" for i in range(3)]
        for text in texts[3:]:
            assert "3 requests to Capped Test" in text
            assert "resets at 00:00 UTC" in text
        assert len(h.openai.calls("/chat/completions")) == 3


async def test_overall_allowance_counts_credits(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=5, extra_catalog=CAPPED) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/model dear")
        await ann.next_message()
        await ann.send("one")  # 4 credits of 5
        assert (await ann.next_message())["text"] == "echo: one"
        await ann.send("two")  # 8 > 5: refused
        refused = (await ann.next_message())["text"]
        assert "free allowance of 5 credits" in refused
        await ann.send("/model gpt")
        await ann.next_message()
        await ann.send("three")  # 5 of 5
        assert (await ann.next_message())["text"] == "echo: three"
        assert len(h.mistral.calls("/chat/completions")) == 1


async def test_a_provider_failure_costs_nothing(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, extra_catalog=CAPPED) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/model capped")
        await ann.next_message()
        h.openai.replies["capped-test"] = Reply(status=503)
        for _ in range(4):  # more failures than the cap
            await ann.send("are you there?")
            assert "unavailable" in (await ann.next_message())["text"]
        await ann.send("/limits")
        limits = (await ann.next_message())["text"]
        assert "Capped Test: 1 credit a request, 3 of 3 requests left" in limits
        del h.openai.replies["capped-test"]
        await ann.send("now?")
        assert (await ann.next_message())["text"] == "echo: now?"


async def test_limits_shows_what_is_left(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(redis_url, tmp_path, daily_limit=10, extra_catalog=CAPPED) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("/model capped")
        await ann.next_message()
        await ann.send("hi")
        await ann.next_message()
        await ann.send("/usage")
        text = (await ann.next_message())["text"]
        assert "Today: 9 of 10 credits left." in text
        assert "Capped Test: 1 credit a request, 2 of 3 requests left" in text
        assert "Dear Test: 4 credits a request" in text
        assert "Limits reset at 00:00 UTC" in text
        ru = h.tg.user(first_name="Иван", language_code="ru")
        await ru.send("/limits")
        assert "осталось 10 из 10 кредитов" in (await ru.next_message())["text"]


async def test_admins_are_not_limited(redis_url: str, tmp_path: Path) -> None:
    async with running_bot(
        redis_url, tmp_path, extra_catalog=CAPPED, admin_ids=frozenset({4242})
    ) as h:
        boss = h.tg.user(id=4242, first_name="Boss")
        await boss.send("/model capped")
        await boss.next_message()
        for i in range(5):
            await boss.send(f"q{i}")
            assert (await boss.next_message())["text"] == f"q{i}".join(["echo: ", ""])
        await boss.send("/limits")
        assert "admin" in (await boss.next_message())["text"]


async def test_redis_outage_fails_closed_and_recovers(
    redis_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    async with running_bot(redis_url, tmp_path) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("before")
        assert (await ann.next_message())["text"] == "echo: before"
        await wait_for_key(redis_url, f"history:{{{ann.id}}}:*")  # written after the answer
        redis_server.stop()
        try:
            await ann.send("during")
            reply = await ann.next_message(timeout=10)
            assert (
                reply["text"] == "The bot is temporarily unavailable. Please try again in a minute."
            )
            assert len(h.openai.calls("/chat/completions")) == 1  # nothing unmetered
        finally:
            redis_server.start()
        await ann.send("after")
        reply = await ann.next_message(timeout=10)
        assert reply["text"] == "echo: after"


async def test_a_flood_wait_on_a_limit_notice_is_waited_out(redis_url: str, tmp_path: Path) -> None:
    """Short notices are delivered like answers: Telegram's 429 never loses them."""
    async with running_bot(redis_url, tmp_path, daily_limit=1) as h:
        ann = h.tg.user(first_name="Ann")
        await ann.send("one")
        assert (await ann.next_message())["text"] == "echo: one"
        h.tg.fail_next("sendMessage", 429, retry_after=1)
        await ann.send("two")
        notice = await ann.next_message(timeout=10)
        assert "free allowance of 1 credit." in notice["text"]
        sends = h.tg.calls("sendMessage", ann.id)
        assert [c.status for c in sends[-2:]] == [429, 200]
        assert sends[-1].time - sends[-2].time >= 0.95
