"""What the user sees when a part of the bot itself (not a model) fails."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.filters import ExceptionTypeFilter
from aiogram.types import ErrorEvent
from redis.exceptions import RedisError

from bot.texts import Texts, texts_for

log = logging.getLogger(__name__)


def router() -> Router:
    r = Router(name=__name__)
    r.errors.register(redis_down, ExceptionTypeFilter(RedisError))
    return r


async def redis_down(event: ErrorEvent, bot: Bot, texts: Texts | None = None) -> None:
    """Redis is unreachable: tell the user in one sentence; the bot stays up."""
    log.error("update %s: Redis failed: %s", event.update.update_id, event.exception)
    await _tell(event, bot, texts)


async def _tell(event: ErrorEvent, bot: Bot, texts: Texts | None) -> None:
    update = event.update
    query = update.callback_query
    message = update.message
    user = query.from_user if query is not None else message.from_user if message else None
    texts = texts or texts_for(user.language_code if user else None)
    if query is not None:
        await query.answer(texts.service_unavailable, show_alert=True)
    elif message is not None:
        await bot.send_message(message.chat.id, texts.service_unavailable)
