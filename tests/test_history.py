"""Chat history against the real Redis, and ``fit_context``: what of it goes to a model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.services.history import ANSWER_RESERVE, History, estimate_tokens, fit_context
from providers import Message

CHAT, USER = -100777, 4242
TTL = 3600


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def user(text: str) -> Message:
    return Message(role="user", content=text)


def assistant(text: str) -> Message:
    return Message(role="assistant", content=text)


def exchanges(count: int) -> list[Message]:
    """``u1, a1, u2, a2, ...``"""
    return [m for i in range(1, count + 1) for m in (user(f"u{i}"), assistant(f"a{i}"))]


def contents(messages: list[Message]) -> list[str]:
    return [m.content for m in messages]


# --- History in Redis ----------------------------------------------------------------


async def test_append_and_load_keep_the_order(redis: Redis) -> None:
    history = History(redis, max_messages=10, ttl_seconds=TTL)
    assert await history.load(CHAT, USER) == []
    await history.append(CHAT, USER, user("hello"), assistant("hi! how can I help?"))
    await history.append(CHAT, USER, user("тест ✓ 🙂"), assistant('a "quoted"\nline'))
    assert await history.load(CHAT, USER) == [
        user("hello"),
        assistant("hi! how can I help?"),
        user("тест ✓ 🙂"),
        assistant('a "quoted"\nline'),
    ]


async def test_each_chat_and_user_has_its_own_history(redis: Redis) -> None:
    history = History(redis, max_messages=10, ttl_seconds=TTL)
    await history.append(CHAT, USER, user("mine"))
    await history.append(CHAT, USER + 1, user("someone else in the group"))
    await history.append(USER, USER, user("my private chat"))
    assert contents(await history.load(CHAT, USER)) == ["mine"]
    assert contents(await history.load(CHAT, USER + 1)) == ["someone else in the group"]
    assert contents(await history.load(USER, USER)) == ["my private chat"]


async def test_capped_at_max_messages_oldest_dropped(redis: Redis) -> None:
    history = History(redis, max_messages=4, ttl_seconds=TTL)
    for message in exchanges(3):
        await history.append(CHAT, USER, message)
    assert contents(await history.load(CHAT, USER)) == ["u2", "a2", "u3", "a3"]
    await history.append(CHAT, USER, *exchanges(5))  # more than the cap at once
    assert contents(await history.load(CHAT, USER)) == ["u4", "a4", "u5", "a5"]
    assert await redis.llen(History.key(CHAT, USER)) == 4  # stored capped, not only read


async def test_idle_expiry_is_set_and_renewed_on_append(redis: Redis) -> None:
    history = History(redis, max_messages=10, ttl_seconds=TTL)
    key = History.key(CHAT, USER)
    await history.append(CHAT, USER, user("one"))
    assert TTL - 5 <= await redis.ttl(key) <= TTL
    await redis.expire(key, 30)  # as if it had been idle for almost the whole time
    await history.append(CHAT, USER, assistant("two"))
    assert TTL - 5 <= await redis.ttl(key) <= TTL


async def test_clear_forgets_the_conversation(redis: Redis) -> None:
    history = History(redis, max_messages=10, ttl_seconds=TTL)
    await history.append(CHAT, USER, *exchanges(2))
    await history.append(CHAT, USER + 1, user("another user's"))
    await history.clear(CHAT, USER)
    assert await history.load(CHAT, USER) == []
    assert await redis.exists(History.key(CHAT, USER)) == 0
    assert contents(await history.load(CHAT, USER + 1)) == ["another user's"]
    await history.clear(CHAT, USER)  # clearing nothing is fine


async def test_replace_starts_afresh(redis: Redis) -> None:
    history = History(redis, max_messages=10, ttl_seconds=TTL)
    await history.append(CHAT, USER, *exchanges(3))
    await history.replace(CHAT, USER, user("the question"), assistant("the chosen answer"))
    assert await history.load(CHAT, USER) == [
        user("the question"),
        assistant("the chosen answer"),
    ]
    assert TTL - 5 <= await redis.ttl(History.key(CHAT, USER)) <= TTL
    await history.replace(CHAT, USER)  # nothing: an empty conversation
    assert await history.load(CHAT, USER) == []


async def test_a_damaged_entry_is_skipped_not_the_conversation(redis: Redis) -> None:
    history = History(redis, max_messages=20, ttl_seconds=TTL)
    await history.append(CHAT, USER, user("before"))
    await redis.rpush(
        History.key(CHAT, USER),
        b'{"r": "user", "c": "cut off in the mid',  # not JSON
        b"\xff\xfe not even UTF-8",
        b'{"r": "assistant"}',  # no content
        b'{"c": "no role"}',
        b"[1, 2, 3]",  # JSON, wrong shape
        b'"a bare string"',
        b"null",
    )
    await history.append(CHAT, USER, assistant("after"))
    assert await history.load(CHAT, USER) == [user("before"), assistant("after")]


async def test_an_entry_with_wrong_types_is_skipped(redis: Redis) -> None:
    history = History(redis, max_messages=20, ttl_seconds=TTL)
    await history.append(CHAT, USER, user("before"))
    await redis.rpush(
        History.key(CHAT, USER),
        json.dumps({"r": "user", "c": None}),
        json.dumps({"r": "robot", "c": "no such role"}),
    )
    await history.append(CHAT, USER, assistant("after"))
    loaded = await history.load(CHAT, USER)
    assert loaded == [user("before"), assistant("after")]
    assert fit_context(loaded, user("next"), 8000)[-1] == user("next")


# --- fit_context ----------------------------------------------------------------------

SIZE = estimate_tokens("u1")  # every short test message costs the same


def context_for(messages: int) -> int:
    """The smallest context window whose budget fits the prompt and ``messages`` more."""
    needed = SIZE * (messages + 1)  # + the prompt
    window = int(needed / (1 - ANSWER_RESERVE))
    while int(window * (1 - ANSWER_RESERVE)) < needed:
        window += 1
    return window


def test_the_budget_helper_is_tight() -> None:
    prompt = user("p1")
    for messages in range(1, 8):
        window = context_for(messages)
        assert len(fit_context(exchanges(10), prompt, window)) <= messages + 1
        assert len(fit_context(exchanges(10), prompt, window - 1)) < messages + 1


def test_no_budget_sends_everything() -> None:
    history = exchanges(50)
    assert fit_context(history, user("now"), None) == [*history, user("now")]
    assert fit_context([], user("now"), None) == [user("now")]


def test_keeps_the_newest_that_fit() -> None:
    prompt = user("p1")
    result = fit_context(exchanges(4), prompt, context_for(4))
    assert contents(result) == ["u3", "a3", "u4", "a4", "p1"]


def test_a_big_budget_keeps_all() -> None:
    history = exchanges(4)
    assert fit_context(history, user("p1"), 100_000) == [*history, user("p1")]


def test_drops_whole_exchanges_and_never_starts_with_an_answer() -> None:
    prompt = user("p1")
    # room for 5 of the 8 messages: a2 would fit, but not without its question
    result = fit_context(exchanges(4), prompt, context_for(5))
    assert contents(result) == ["u3", "a3", "u4", "a4", "p1"]
    for room in range(0, 9):
        result = fit_context(exchanges(4), prompt, context_for(room))
        assert result[0].role == "user"
        assert result[-1] == prompt
        assert len(result) % 2 == 1  # whole exchanges, then the prompt


def test_history_that_starts_with_an_answer_is_not_sent_so() -> None:
    """An odd cap can leave an answer as the oldest entry: trimming drops it."""
    history = exchanges(3)[1:]  # a1, u2, a2, u3, a3
    result = fit_context(history, user("p1"), 100_000)
    assert contents(result) == ["u2", "a2", "u3", "a3", "p1"]


def test_the_newest_are_kept_contiguous() -> None:
    """A long old message ends what is kept: nothing older is picked past it."""
    history = [user("u1"), assistant("a1"), user("x" * 3500), assistant("a2")]
    history += [user("u3"), assistant("a3")]
    result = fit_context(history, user("p1"), context_for(4))
    assert contents(result) == ["u3", "a3", "p1"]


def test_the_prompt_is_always_kept() -> None:
    huge = user("y" * 100_000)
    assert fit_context(exchanges(3), huge, 1000) == [huge]
    assert fit_context([], huge, 1000) == [huge]
    assert fit_context(exchanges(3), user("p1"), 1) == [user("p1")]
