"""The per-chat pacer of drafts and edits: its slot, flood waits, recovery, and memory.

Time is a fake monotonic clock (``time.monotonic`` replaced for the test's duration), so
that waits of minutes take no time and every delay is exact.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc

import pytest

from bot.services.pacer import (
    DRAFT_INTERVAL,
    EDIT_INTERVAL,
    LAG_EVERY,
    LAG_HIGH,
    LAG_LOW,
    MAX_SLOWDOWN,
    MAX_STRETCH,
    Pacer,
)

CHAT, OTHER = 1001, -1001234567890


class Clock:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(time, "monotonic", fake)
    return fake


def test_a_new_chat_may_be_updated_now(clock: Clock) -> None:
    pacer = Pacer()
    assert pacer.delay(CHAT) == 0.0
    assert pacer.delay(OTHER) == 0.0


def test_claim_makes_the_next_update_wait_the_interval(clock: Clock) -> None:
    pacer = Pacer()
    pacer.claim(CHAT, DRAFT_INTERVAL)
    assert pacer.delay(CHAT) == pytest.approx(DRAFT_INTERVAL)
    clock.advance(0.5)
    assert pacer.delay(CHAT) == pytest.approx(DRAFT_INTERVAL - 0.5)
    clock.advance(DRAFT_INTERVAL)
    assert pacer.delay(CHAT) == 0.0  # never negative


def test_a_claim_in_a_chat_does_not_touch_another(clock: Clock) -> None:
    pacer = Pacer()
    pacer.claim(CHAT, EDIT_INTERVAL)
    assert pacer.delay(OTHER) == 0.0
    pacer.flood(OTHER, 7)
    assert pacer.delay(CHAT) == pytest.approx(EDIT_INTERVAL)
    assert pacer.delay(OTHER) == pytest.approx(7)
    clock.advance(EDIT_INTERVAL)
    pacer.claim(CHAT, EDIT_INTERVAL)
    assert pacer.delay(CHAT) == pytest.approx(EDIT_INTERVAL)  # not slowed by OTHER's flood


def test_flood_waits_retry_after_then_slows_the_chat(clock: Clock) -> None:
    pacer = Pacer()
    pacer.claim(CHAT, EDIT_INTERVAL)
    pacer.flood(CHAT, 5)
    assert pacer.delay(CHAT) == pytest.approx(5)
    clock.advance(5)
    assert pacer.delay(CHAT) == 0.0
    pacer.claim(CHAT, EDIT_INTERVAL)
    assert pacer.delay(CHAT) == pytest.approx(2 * EDIT_INTERVAL)  # twice as slow


def test_flood_never_shortens_a_longer_wait(clock: Clock) -> None:
    pacer = Pacer()
    pacer.flood(CHAT, 30)
    pacer.flood(CHAT, 1)
    assert pacer.delay(CHAT) == pytest.approx(30)


@pytest.mark.parametrize(("floods", "slowdown"), [(1, 2.0), (2, 4.0), (3, 4.0), (6, 4.0)])
def test_each_flood_doubles_the_slowdown_up_to_a_cap(
    clock: Clock, floods: int, slowdown: float
) -> None:
    assert slowdown == min(2.0**floods, MAX_SLOWDOWN)
    pacer = Pacer()
    for _ in range(floods):
        pacer.flood(CHAT, 1)
    clock.advance(1)
    pacer.claim(CHAT, EDIT_INTERVAL)
    assert pacer.delay(CHAT) == pytest.approx(slowdown * EDIT_INTERVAL)


def test_recovers_to_the_normal_pace_after_claims(clock: Clock) -> None:
    pacer = Pacer()
    pacer.flood(CHAT, 1)
    pacer.flood(CHAT, 1)  # slowdown 4
    clock.advance(1)
    waits = []
    for _ in range(20):
        pacer.claim(CHAT, EDIT_INTERVAL)
        waits.append(pacer.delay(CHAT))
        clock.advance(pacer.delay(CHAT))
    assert waits[0] == pytest.approx(4 * EDIT_INTERVAL)
    assert waits == sorted(waits, reverse=True)  # gradually faster
    assert waits[1] < waits[0]
    assert waits[-1] == pytest.approx(EDIT_INTERVAL)  # back to normal, never faster
    assert min(waits) == pytest.approx(EDIT_INTERVAL)


def _memory_after(claims: int, spacing: float, then_new: int, clock: Clock) -> int:
    """Bytes a pacer holds after ``claims`` chats (one every ``spacing`` s), an hour of
    quiet, then ``then_new`` further chats."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        pacer = Pacer()
        for chat in range(claims):
            pacer.claim(1_000_000 + chat, DRAFT_INTERVAL)
            clock.advance(spacing)
        clock.advance(3600)
        for chat in range(then_new):
            pacer.claim(5_000_000 + chat, DRAFT_INTERVAL)
            clock.advance(spacing)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        if then_new:
            assert pacer.delay(5_000_000 + then_new - 1) > 0  # the newest is still paced
        return held
    finally:
        tracemalloc.stop()


def test_memory_stays_bounded_as_chats_come_and_go(clock: Clock) -> None:
    """20,000 chats claimed long ago do not all stay once new chats come."""
    reference = _memory_after(5_000, 0.01, 0, clock)  # 5,000 chats: well under any cap
    held = _memory_after(20_000, 0.01, 20_000, clock)  # 40,000 chats over ~an hour
    # kept forever, 40,000 chats would take about 8 times the reference
    assert held < 4 * reference, (held, reference)


def test_pruning_forgets_no_chat_that_is_still_waiting(clock: Clock) -> None:
    pacer = Pacer()
    for chat in range(12_000):  # chats far in the past: pruned once the register is full
        pacer.claim(2_000_000 + chat, DRAFT_INTERVAL)
        clock.advance(0.01)
        if chat == 100:
            pacer.flood(OTHER, 1000)  # a long flood wait, still running at the end
    assert pacer.delay(OTHER) > 800


def test_a_busy_minute_forgets_no_chat_in_it(clock: Clock) -> None:
    """More chats within a minute than the register holds: none of them is forgotten
    (a slowed chat stays slowed), and the idle ones before them are."""
    pacer = Pacer()
    for chat in range(5_000):  # idle since long ago: forgotten as the new ones come
        pacer.claim(1_000_000 + chat, DRAFT_INTERVAL)
    clock.advance(3600)
    pacer.flood(OTHER, 1)  # slowed: twice the interval for a while
    for chat in range(12_000):  # 12,000 chats within 12 seconds
        pacer.claim(3_000_000 + chat, DRAFT_INTERVAL)
        clock.advance(0.001)
    clock.advance(2)
    pacer.claim(OTHER, DRAFT_INTERVAL)
    assert pacer.delay(OTHER) == pytest.approx(DRAFT_INTERVAL * 2)
    assert len(pacer) == 12_001


def test_writers_in_a_chat_take_turns_by_when_they_were_last_shown() -> None:
    pacer = Pacer()
    with pacer.in_line(7, shown_at=5.0) as a, pacer.in_line(7, shown_at=1.0) as b:
        assert b() and not a()  # shown longest ago: first
        with pacer.in_line(7, shown_at=0.0) as never:  # no text shown yet: before both
            assert never() and not b()
        assert b()
    with pacer.in_line(7, shown_at=3.0) as alone, pacer.in_line(8, shown_at=0.0):
        assert alone()  # another chat's line is its own


def test_the_interval_counts_from_when_a_slow_call_landed(clock: Clock) -> None:
    """Telegram counts from a call's arrival: a call that took 0.4 s to land moves the
    next slot on, and a quick one does not shorten it."""
    pacer = Pacer()
    pacer.claim(CHAT, DRAFT_INTERVAL)
    clock.advance(0.4)
    pacer.landed(CHAT, DRAFT_INTERVAL)
    assert pacer.delay(CHAT) == pytest.approx(DRAFT_INTERVAL)
    pacer.claim(OTHER, DRAFT_INTERVAL)
    pacer.landed(OTHER, DRAFT_INTERVAL / 2)
    assert pacer.delay(OTHER) == pytest.approx(DRAFT_INTERVAL)


# -- stretching under CPU pressure -----------------------------------------------------


def test_a_lagging_loop_stretches_updates_and_a_punctual_one_recovers() -> None:
    pacer = Pacer()
    assert pacer.stretch == 1.0
    for _ in range(3):
        pacer.lag(LAG_HIGH * 2)
    assert pacer.stretch == pytest.approx(1.25**3)
    for _ in range(50):
        pacer.lag(1.0)
    assert pacer.stretch == MAX_STRETCH  # never beyond
    pacer.lag((LAG_LOW + LAG_HIGH) / 2)
    assert pacer.stretch == MAX_STRETCH  # between the marks: held
    pacer.lag(0.0)
    assert 1.0 < pacer.stretch < MAX_STRETCH  # recovers gradually
    for _ in range(100):
        pacer.lag(0.0)
    assert pacer.stretch == 1.0


async def test_the_loop_is_sampled_while_updates_are_made() -> None:
    """A claim starts sampling; a loop held up for longer than LAG_HIGH is seen late."""
    pacer = Pacer()
    pacer.claim(CHAT, DRAFT_INTERVAL)
    time.sleep(LAG_EVERY + 3 * LAG_HIGH)  # noqa: ASYNC251 - the loop stuck: a late sample
    await asyncio.sleep(LAG_EVERY / 2)
    assert pacer.stretch > 1.0
