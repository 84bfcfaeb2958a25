"""The aiogram Bot, pointed at TELEGRAM_API_URL, patient with Telegram's refusals.

aiogram never retries by itself: a 429 (``retry_after``) or a 5xx would reach the
handler as an exception and the user would get nothing. Every call that puts something
in a chat is retried here: 429s waited out, server and network errors backed off.
Streaming updates (drafts, edits, chat actions) are not: the answer writer drops or
paces those itself, and waiting on one would only delay the rest of the answer.
"""

from __future__ import annotations

import asyncio
import logging

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import (
    EditMessageText,
    GetUpdates,
    Response,
    SendChatAction,
    SendMessageDraft,
    TelegramMethod,
)
from aiogram.methods.base import TelegramType

from bot.settings import Settings

log = logging.getLogger(__name__)

ATTEMPTS = 5
MAX_WAIT = 30.0  # the longest flood wait sat out; past it the call fails
_NOT_RETRIED = (GetUpdates, SendMessageDraft, EditMessageText, SendChatAction)


class Patient(BaseRequestMiddleware):
    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        retried = not isinstance(method, _NOT_RETRIED)
        for attempt in range(ATTEMPTS):
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
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


def make_bot(settings: Settings) -> Bot:
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    session.middleware(Patient())
    return Bot(settings.bot_token.get_secret_value(), session=session)
