"""Per-chat pacing of intermediate updates (drafts and edits) at Telegram's pace.

Every writer in a chat shares its chat's slot, so three answers streaming at once in one
chat (``/compare``) still make one update per interval between them, and they take turns:
of the writers waiting for the slot, the one whose text was shown longest ago goes first
(none starves). After a 429 the chat waits out ``retry_after`` and then goes slower for
a while.

When the process runs short of CPU (its event loop runs late: thousands of answers
streaming at once), every chat's intermediate updates stretch (``stretch``, up to 4×):
they are what a user misses least, and each costs a Bot API call. An answer's first text
and its final messages are not slowed. The loop's lateness is sampled by a timer that runs
only while updates are being made.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

DRAFT_INTERVAL = 0.7  # private chats, sendMessageDraft
EDIT_INTERVAL = 1.0  # private chats, editMessageText
GROUP_INTERVAL = 3.0  # groups allow about 20 messages a minute
FIRST_INTERVAL = 0.3  # after a placeholder: the first text may show soon
MAX_SLOWDOWN = 4.0
_PRUNE_AT = 10_000  # chats remembered before the idle ones are forgotten
_IDLE = 60.0  # seconds without an update after which a chat is idle
MAX_STRETCH = 4.0
LAG_EVERY = 0.1  # seconds between samples of the event loop's lateness
LAG_HIGH = 0.05  # a sample this late (s): intermediate updates stretch
LAG_LOW = 0.02  # a sample this early: they recover, gradually
_WATCH_IDLE = 5.0  # seconds without an update after which sampling stops

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Slot:
    next_at: float = 0.0
    slowdown: float = 1.0
    used_at: float = 0.0
    # writers waiting for this slot: their place -> when their text was last shown
    waiting: dict[int, tuple[float, int]] = field(default_factory=dict)


class Pacer:
    def __init__(self) -> None:
        # in order of use, least recent first: the idle chats are at the front
        self._slots: OrderedDict[int, _Slot] = OrderedDict()
        self._places = itertools.count()
        # intermediate updates wait this many times their interval (see the module)
        self.stretch = 1.0
        self._sampler: asyncio.TimerHandle | None = None
        self._sample_due = 0.0
        self._claimed_at = 0.0

    @contextlib.contextmanager
    def in_line(self, chat_id: int, shown_at: float) -> Iterator[Callable[[], bool]]:
        """Wait in the chat's line: yields whether it is this writer's turn (it was
        shown longest ago of those waiting; the first to queue among equals)."""
        slot = self._slot(chat_id)
        place = next(self._places)
        slot.waiting[place] = (shown_at, place)
        try:
            yield lambda: min(slot.waiting.values())[1] == place
        finally:
            del slot.waiting[place]

    def __len__(self) -> int:
        """How many chats are remembered."""
        return len(self._slots)

    def _slot(self, chat_id: int) -> _Slot:
        slot = self._slots.get(chat_id)
        if slot is None:
            self._prune()
            slot = self._slots[chat_id] = _Slot()
        else:
            self._slots.move_to_end(chat_id)
        slot.used_at = time.monotonic()
        return slot

    def delay(self, chat_id: int) -> float:
        """Seconds until this chat may be updated again (0: now)."""
        slot = self._slots.get(chat_id)
        return 0.0 if slot is None else max(0.0, slot.next_at - time.monotonic())

    def claim(self, chat_id: int, interval: float) -> None:
        """Take the chat's slot now; the next update waits ``interval`` (slowed if needed)."""
        slot = self._slot(chat_id)
        slot.next_at = time.monotonic() + interval * slot.slowdown
        slot.slowdown = max(1.0, slot.slowdown * 0.9)  # recover gradually
        self._claimed_at = slot.used_at
        if self._sampler is None:
            self._sample_soon()

    def landed(self, chat_id: int, interval: float) -> None:
        """An update was accepted: the next waits ``interval`` from now, since Telegram
        counts from when the call arrived, which may be well after ``claim``."""
        slot = self._slot(chat_id)
        slot.next_at = max(slot.next_at, time.monotonic() + interval * slot.slowdown)

    def flood(self, chat_id: int, retry_after: float) -> None:
        """Telegram said 429: wait it out, then update this chat less often for a while."""
        slot = self._slot(chat_id)
        slot.next_at = max(slot.next_at, time.monotonic() + retry_after)
        slot.slowdown = min(MAX_SLOWDOWN, slot.slowdown * 2)

    def lag(self, seconds: float) -> None:
        """The event loop ran ``seconds`` late: stretch intermediate updates (quickly)
        while it lags, and recover (slowly) once it keeps time again."""
        before = self.stretch
        if seconds > LAG_HIGH:
            self.stretch = min(MAX_STRETCH, self.stretch * 1.25)
        elif seconds < LAG_LOW:
            self.stretch = max(1.0, self.stretch / 1.05)
        if (before == 1.0) != (self.stretch == 1.0):
            log.info(
                "the event loop lags: streaming updates go slower"
                if before == 1.0
                else "the event loop keeps time again: streaming updates at their pace"
            )

    def _sample_soon(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # used outside a loop: nothing to sample
            return
        self._sample_due = loop.time() + LAG_EVERY
        self._sampler = loop.call_at(self._sample_due, self._sample)

    def _sample(self) -> None:
        self._sampler = None
        self.lag(asyncio.get_running_loop().time() - self._sample_due)
        if time.monotonic() - self._claimed_at < _WATCH_IDLE:
            self._sample_soon()
        else:
            self.stretch = 1.0  # nothing streams: the next burst starts at full pace

    def _prune(self) -> None:
        """Forget idle chats, from the front, once many are remembered: a constant cost
        per new chat however many are active."""
        if len(self._slots) < _PRUNE_AT:
            return
        now = time.monotonic()
        for _ in range(len(self._slots)):
            chat_id, slot = next(iter(self._slots.items()))
            if slot.used_at >= now - _IDLE:
                return  # this one and every one after it were used since
            if slot.next_at > now:
                self._slots.move_to_end(chat_id)  # still waiting out a long flood: keep
            else:
                del self._slots[chat_id]
