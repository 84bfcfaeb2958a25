"""The aiogram Bot, pointed at TELEGRAM_API_URL, patient with Telegram's refusals: the
one layer that retries Telegram calls.

aiogram never retries by itself: a 429 (``retry_after``) or a 5xx would reach the
handler as an exception and the user would get nothing. Every call is retried here: 429s
waited out (the chat's pacer is told, so its other updates wait too), server and network
errors backed off a bounded number of times. Calls made inside :func:`best_effort`
(streaming drafts and edits, chat actions) are tried once: the answer writer drops or
paces those itself, and waiting on one would only delay the rest of the answer.

With ``TELEGRAM_CALLS_PER_SECOND`` set, every call (``getUpdates`` aside) first takes a
turn from one :class:`CallBudget` the whole process shares: final messages, replies and
an answer's first visible text go first; intermediate drafts and edits wait behind them,
so it is they that slow down as load grows.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType

from bot.json_session import JsonSession
from bot.settings import Settings

log = logging.getLogger(__name__)

ATTEMPTS = 5
MAX_WAIT = 60.0  # the longest flood wait sat out; past it the call fails
_once: ContextVar[bool] = ContextVar("telegram_once", default=False)
_urgent: ContextVar[bool] = ContextVar("telegram_urgent", default=False)


@contextlib.contextmanager
def best_effort(urgent: bool = False) -> Iterator[None]:
    """Calls made inside are tried once: a refusal reaches the caller at once. ``urgent``
    (an answer's first visible text): ahead of other such calls for the budget."""
    token, urgency = _once.set(True), _urgent.set(urgent)
    try:
        yield
    finally:
        _once.reset(token)
        _urgent.reset(urgency)


class CallBudget:
    """At most ``rate`` calls a second, one every 1/rate s (no bursts), in the order of
    their priority (0 first), then of their arrival. The spacing counts from when a call
    goes, not from when its turn came: on a busy loop a task resumes late, and calls
    spaced by their turns would leave bunched (rate + 1 of them in some second). The
    interval is a thousandth over 1/rate so that ``rate`` intervals span over a second."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.001 / rate
        self._next = 0.0  # when the next call may go
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    async def take(self, priority: int) -> None:
        now = time.monotonic()
        if not self._waiting and now >= self._next:
            self._next = now + self.interval
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), turn))
        self._arm()
        await turn
        self._next = max(self._next, time.monotonic() + self.interval)  # it goes now

    def _arm(self) -> None:
        if self._timer is None and self._waiting:
            delay = max(0.0, self._next - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._grant)

    def _grant(self) -> None:
        self._timer = None
        if time.monotonic() < self._next:  # the call before went later than its turn
            self._arm()
            return
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():  # a waiter cancelled meanwhile gives its turn on
                self._next = time.monotonic() + self.interval
                turn.set_result(None)
                break
        self._arm()


class Patient(BaseRequestMiddleware):
    def __init__(self, budget: CallBudget | None = None) -> None:
        # told of every 429 with the chat it concerns (the pacer slows that chat down)
        self.on_flood: Callable[[int, float], None] | None = None
        self.budget = budget
        # aiogram reads every answer as ``Response[<the method's result type>]``, a
        # class pydantic builds once and caches only weakly: whenever the collector ran,
        # the next call rebuilt it (5 to 10 ms of CPU, about once per message on a busy
        # bot). One strong reference per method used keeps each built once.
        self._responses: dict[type[Any], type[Any]] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        kind = type(method)
        if kind not in self._responses:
            self._responses[kind] = Response[method.__returning__]  # type: ignore[name-defined]
        polling = isinstance(method, GetUpdates)
        retried = not _once.get() and not polling
        # finals and replies first, then an answer's first text, then streaming updates
        priority = 0 if retried else 1 if _urgent.get() else 2
        for attempt in range(ATTEMPTS):
            if self.budget is not None and not polling:
                await self.budget.take(priority)
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                chat_id = getattr(method, "chat_id", None)
                if self.on_flood is not None and isinstance(chat_id, int):
                    self.on_flood(chat_id, exc.retry_after)
                if not retried or attempt == ATTEMPTS - 1 or exc.retry_after > MAX_WAIT:
                    raise
                log.info("%s: flood wait %ss", type(method).__name__, exc.retry_after)
                await asyncio.sleep(exc.retry_after)
            except (TelegramNetworkError, TelegramServerError) as exc:
                if not retried or attempt == ATTEMPTS - 1:
                    raise
                log.info("%s: %s, retrying", type(method).__name__, type(exc).__name__)
                await asyncio.sleep(min(0.5 * 2**attempt, 8.0))
        raise AssertionError("unreachable")


def make_bot(settings: Settings) -> tuple[Bot, Patient]:
    """The bot, and its retry layer (to hand it the pacer once there is one)."""
    session = JsonSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    rate = settings.telegram_calls_per_second
    patient = Patient(CallBudget(rate) if rate else None)
    session.middleware(patient)
    return Bot(settings.bot_token.get_secret_value(), session=session), patient
