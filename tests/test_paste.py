"""Long pastes Telegram split into parts, joined back against the real Redis, whatever
order concurrent handlers reach it in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bot.services.paste import HOLD_SECONDS, SPLIT_AT, Pastes, join

CHAT, USER = -100777, 4242


@pytest.fixture
async def pastes(redis_url: str) -> AsyncIterator[Pastes]:
    client = Redis.from_url(redis_url)
    try:
        yield Pastes(client)
    finally:
        await client.aclose()


async def take(pastes: Pastes) -> list[object]:
    async with pastes.redis.pipeline(transaction=True) as pipe:
        pastes.queue_take(pipe, CHAT, USER)
        held, _ = await pipe.execute()
    return list(held)


async def test_the_end_of_a_paste_waits_for_a_part_not_held_yet(pastes: Pastes) -> None:
    part = "a" * SPLIT_AT
    with pastes.arriving(CHAT, USER, 10, part):  # its update came first, its Redis call is late

        async def late_part() -> str | None:
            await asyncio.sleep(0.2)
            return await pastes.hold(CHAT, USER, 10, part)

        holding = asyncio.create_task(late_part())
        held = await pastes.complete(CHAT, USER, 11, await take(pastes))
        assert join(held, "tail") == part + "tail"
        assert await holding is None  # the tail answers it, not the part itself


async def test_a_take_that_reaches_redis_before_an_earlier_hold_takes_again(
    pastes: Pastes,
) -> None:
    """The tail's take and the part's hold go over different connections: Redis may run
    the take first, and the hold is done before the tail looks again. The part was not
    held when the take was queued, so the tail takes again and loses nothing."""
    part = "a" * SPLIT_AT
    with pastes.arriving(CHAT, USER, 10, part), pastes.arriving(CHAT, USER, 11, "tail"):
        late = pastes.late(CHAT, USER, 11)
        held = await take(pastes)  # ran before the part's hold
        assert held == []
        assert await pastes.hold(CHAT, USER, 10, part) is None  # held now; the tail answers
        held = await pastes.complete(CHAT, USER, 11, held, late)
        assert join(held, "tail") == part + "tail"
    assert await take(pastes) == []  # nothing left over for the next message


async def test_a_last_part_claims_only_once_the_parts_before_it_are_held(
    pastes: Pastes,
) -> None:
    first, second = "a" * SPLIT_AT, "b" * SPLIT_AT
    with pastes.arriving(CHAT, USER, 1, first), pastes.arriving(CHAT, USER, 2, second):
        last = asyncio.create_task(pastes.hold(CHAT, USER, 2, second))
        await asyncio.sleep(HOLD_SECONDS + 0.5)  # past its hold: the first part is late
        assert not last.done()
        assert await pastes.hold(CHAT, USER, 1, first) is None
    assert await last == first + second


async def test_parts_held_out_of_order_are_joined_in_order(pastes: Pastes) -> None:
    first, second = "a" * SPLIT_AT, "b" * SPLIT_AT
    later = asyncio.create_task(pastes.hold(CHAT, USER, 2, second))
    await asyncio.sleep(0.05)
    earlier = asyncio.create_task(pastes.hold(CHAT, USER, 1, first))
    assert await later == first + second  # the last part takes the paste
    assert await earlier is None


async def test_a_message_from_someone_else_does_not_take_the_parts(pastes: Pastes) -> None:
    with pastes.arriving(CHAT, USER, 10, "x" * SPLIT_AT):
        holding = asyncio.create_task(pastes.hold(CHAT, USER, 10, "x" * SPLIT_AT))
        assert await pastes.complete(CHAT, USER + 1, 11, []) == []
    assert await holding == "x" * SPLIT_AT


async def test_a_part_never_takes_the_paste_while_a_later_message_is_in_flight(
    pastes: Pastes,
) -> None:
    """However late the tail's Redis call (a loaded machine), the part leaves the paste
    to it: the rule is what has arrived, not how long to wait."""
    part = "a" * SPLIT_AT
    with pastes.arriving(CHAT, USER, 10, part), pastes.arriving(CHAT, USER, 11, "tail"):
        assert await pastes.hold(CHAT, USER, 10, part) is None  # returns at once
        assert join(await take(pastes), "tail") == part + "tail"


async def test_the_tail_waits_for_every_earlier_part_however_late(pastes: Pastes) -> None:
    first, second = "a" * SPLIT_AT, "b" * SPLIT_AT
    with (
        pastes.arriving(CHAT, USER, 10, first),
        pastes.arriving(CHAT, USER, 11, second),
        pastes.arriving(CHAT, USER, 12, "tail"),
    ):
        tail = asyncio.create_task(pastes.complete(CHAT, USER, 12, await take(pastes)))
        await asyncio.sleep(0.3)
        assert not tail.done()  # the parts arrived before it: it waits for them
        assert await pastes.hold(CHAT, USER, 11, second) is None
        await asyncio.sleep(2.0)  # longer than any hold: still waiting for the first part
        assert not tail.done()
        assert await pastes.hold(CHAT, USER, 10, first) is None
        assert join(await tail, "tail") == first + second + "tail"
