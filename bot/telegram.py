"""The aiogram Bot, pointed at TELEGRAM_API_URL, patient with Telegram's refusals: the
one layer that retries Telegram calls.

aiogram never retries by itself: a 429 (``retry_after``) or a 5xx would reach the
handler as an exception and the user would get nothing. Every call is retried here: 429s
waited out (the chat's pacer is told, so its other updates wait too), server and network
errors backed off a bounded number of times. Calls made inside :func:`best_effort`
(streaming drafts and edits, chat actions) are tried once: the answer writer drops or
paces those itself, and waiting on one would only delay the rest of the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType

from bot.settings import Settings

log = logging.getLogger(__name__)

ATTEMPTS = 5
MAX_WAIT = 60.0  # the longest flood wait sat out; past it the call fails
_once: ContextVar[bool] = ContextVar("telegram_once", default=False)


@contextlib.contextmanager
def best_effort() -> Iterator[None]:
    """Calls made inside are tried once: a refusal reaches the caller at once."""
    token = _once.set(True)
    try:
        yield
    finally:
        _once.reset(token)


class Patient(BaseRequestMiddleware):
    def __init__(self) -> None:
        # told of every 429 with the chat it concerns (the pacer slows that chat down)
        self.on_flood: Callable[[int, float], None] | None = None

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        retried = not _once.get() and not isinstance(method, GetUpdates)
        for attempt in range(ATTEMPTS):
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
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    patient = Patient()
    session.middleware(patient)
    return Bot(settings.bot_token.get_secret_value(), session=session), patient
