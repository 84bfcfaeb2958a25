"""The bot through Redis Sentinel (``REDIS_SENTINELS``, ``REDIS_SENTINEL_MASTER``): a real
primary, a replica and three Sentinels; a failover forced in the middle of a run of
messages. The bot follows it by itself: service back within 15 s, every message answered
or told "temporarily unavailable", and every request that reached the model counted
exactly once (nothing unmetered, nothing twice)."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bot.check import _check_redis as check_redis
from bot.settings import Settings
from bot.texts import EN
from tests.doubles.base import Reply
from tests.doubles.telegram import FakeUser
from tests.harness import Harness, running_bot
from tests.redis_sentinel import MASTER_NAME, SentinelSet

USERS = 8
BACK_WITHIN = 15.0  # seconds from the failover to service back (the bound)
NOWHERE = "redis://127.0.0.1:1/0"  # with Sentinel, REDIS_URL's host is not used


@pytest.fixture
def sentinel_set() -> Iterator[SentinelSet]:
    with SentinelSet(quick=True) as cell:  # Sentinel's own delays short: the bot is under test
        yield cell


@dataclass
class Talk:
    """What one user sent and got back, in order: (sent at, prompt, reply, replied at)."""

    user: FakeUser
    turns: list[tuple[float, str, str, float]] = field(default_factory=list)


def prompt_of(request_json: dict[str, object]) -> str:
    messages = request_json["messages"]
    assert isinstance(messages, list)
    return str(messages[-1]["content"])


async def talk(user: FakeUser, log: Talk, until: asyncio.Event) -> None:
    """Send a message, wait for the bot's one reply, pause, again, until ``until``."""
    i = 0
    while not until.is_set():
        prompt = f"u{user.id} m{i}"
        sent = time.monotonic()
        await user.send(prompt)
        reply = await user.next_message(timeout=30)
        log.turns.append((sent, prompt, reply["text"], time.monotonic()))
        i += 1
        await asyncio.sleep(0.2)


def kind(prompt: str, reply: str) -> str:
    if reply == f"echo: {prompt}":
        return "answer"
    if reply == EN.service_unavailable:
        return "unavailable"
    return f"other: {reply[:80]}"


async def test_the_bot_follows_a_failover_by_itself(
    sentinel_set: SentinelSet, tmp_path: Path
) -> None:
    async with running_bot(
        NOWHERE,
        tmp_path,
        redis_sentinels=sentinel_set.sentinels,
        redis_sentinel_master=MASTER_NAME,
    ) as h:
        h.openai.replies["gpt-test"] = Reply(first_delay=0.05, chunk_delay=0.02)
        users = [h.tg.user(first_name=f"U{i}") for i in range(USERS)]
        logs = [Talk(u) for u in users]
        done = asyncio.Event()
        talking = [
            asyncio.create_task(talk(u, log, done)) for u, log in zip(users, logs, strict=True)
        ]
        try:
            await asyncio.sleep(2.0)  # a steady run first
            old = sentinel_set.master_port()
            failed_over = time.monotonic()
            new = await asyncio.to_thread(sentinel_set.failover)
            # run until every user had three answers in a row after the failover (or long
            # past the bound: the assertions below say what went wrong)
            deadline = failed_over + BACK_WITHIN + 20
            while time.monotonic() < deadline and not all(
                _answered_since(log, failed_over, 3) for log in logs
            ):
                await asyncio.sleep(0.2)
        finally:
            done.set()
            await asyncio.gather(*talking)
        assert sentinel_set.master_port() == new != old, sentinel_set.events()
        await _check_run(h, logs, failed_over, sentinel_set)


def _around(log: Talk, failed_over: float, odd: list[tuple[int, float, float, str]]) -> list[str]:
    """A user's turns from 3 s before an odd reply to 1 s after it, briefly."""
    times = [sent for user, sent, _, _ in odd if user == log.user.id]
    return [
        f"{sent - failed_over:.2f}-{at - failed_over:.2f} {kind(p, r)[:6]}"
        for sent, p, r, at in log.turns
        if any(t - 3 <= sent - failed_over <= t + 1 for t in times)
    ]


def _answered_since(log: Talk, since: float, count: int) -> bool:
    """The last ``count`` turns were sent after ``since`` and answered."""
    last = log.turns[-count:]
    return len(last) == count and all(
        sent > since and kind(prompt, reply) == "answer" for sent, prompt, reply, _ in last
    )


async def _check_run(
    h: Harness, logs: list[Talk], failed_over: float, sentinel_set: SentinelSet
) -> None:
    kinds = Counter(kind(p, r) for log in logs for _, p, r, _ in log.turns)
    not_answered = [
        (round(sent - failed_over, 1), kind(p, r)[:20])
        for log in logs
        for sent, p, r, _ in log.turns
        if kind(p, r) != "answer"
    ]
    gap = (min(not_answered), max(not_answered)) if not_answered else None
    what = f"{kinds}; not answered (s after the failover, first and last): {gap}"
    odd = [
        (log.user.id, round(sent - failed_over, 2), round(at - failed_over, 2), kind(p, r)[:20])
        for log in logs
        for sent, p, r, at in log.turns
        if kind(p, r) not in ("answer", "unavailable")
    ]
    if odd:  # each with the user's turns around it (user, sent, replied: s after the failover)
        what += f"; odd replies: {odd}; " + "; ".join(
            f"{log.user.id}: {_around(log, failed_over, odd)}" for log in logs
        )
        asked_at = time.time() - (time.monotonic() - failed_over)
        wall = time.strftime("%H:%M:%S", time.localtime(asked_at))
        what += f"\nSentinel's events (the failover was asked at {wall}):\n{sentinel_set.events()}"
    # no answer lost: every message got the answer or "temporarily unavailable"
    assert set(kinds) <= {"answer", "unavailable"}, what
    assert kinds["unavailable"] > 0, "no gap was seen: was the failover forced?"
    # service back: after the last "unavailable" every message is answered
    gap_end = max(at for log in logs for _, p, r, at in log.turns if kind(p, r) != "answer")
    assert gap_end - failed_over < BACK_WITHIN, what
    print(f"failover: service back {gap_end - failed_over:.1f} s after it; {what}")
    # nothing unmetered, nothing counted twice: per user, the requests that reached the
    # model are exactly those counted in the (new) primary's quota hash, and they are the
    # answered ones
    asked = Counter(
        re.match(r"u(\d+) ", prompt_of(r.json)).group(1)  # type: ignore[union-attr]
        for r in h.openai.calls("/chat/completions")
    )
    date, _ = h.app.core.quota.day()
    for log in logs:
        raw = await h.app.redis.hgetall(h.app.core.quota.key(log.user.id, date))
        counted = int(raw.get(b"m:gpt", 0))
        answers = sum(1 for _, p, r, _ in log.turns if kind(p, r) == "answer")
        assert counted == asked[str(log.user.id)] == answers, (log.user.id, raw, answers)


async def test_check_names_the_master_it_found(sentinel_set: SentinelSet) -> None:
    """``python -m bot check``'s Redis row (the rest of check is tested elsewhere)."""
    settings = Settings(
        bot_token="1:x",
        redis_url=NOWHERE,
        redis_sentinels=sentinel_set.sentinels,
        redis_sentinel_master=MASTER_NAME,
    )
    row = await check_redis(settings)
    port = sentinel_set.primary.port
    assert row.ok and f"'{MASTER_NAME}' at 127.0.0.1:{port} (Sentinel)" in row.detail, row
