"""Dispatcher middlewares: the register of running handlers, the note of messages
arriving, the drop of duplicated updates, the user's texts. :func:`bot.app.App.build`
registers them, in one list, in the order they run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.enums import ChatType
from aiogram.types import CallbackQuery, InaccessibleMessage, TelegramObject, Update, User
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.redact import current_update
from bot.services.gate import StartGate
from bot.services.paste import Pastes
from bot.services.prefs import Prefs
from bot.texts import texts_for

log = logging.getLogger(__name__)

DEDUP_TTL_SECONDS = 86_400  # Telegram gives up redelivering an update long before a day


class TextsMiddleware(BaseMiddleware):
    """Gives every handler ``texts``: in the language the user chose with /language, or
    else their Telegram app's; and that choice itself as ``chosen_language`` (None: none).

    A chat message (text that is not a command) skips the lookup: the chat turn reads
    the choice with the rest of the user's preferences, in a round trip it makes anyway
    (:meth:`bot.services.chat.ChatService.answer`)."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        chosen = None
        prefs: Prefs | None = data.get("prefs")
        if user is not None and prefs is not None and not _chat_text(event):
            # Redis down: the Telegram language; the handler reports the outage
            with contextlib.suppress(RedisError):
                chosen = await prefs.language(user.id)
        data["chosen_language"] = chosen
        data["texts"] = texts_for(user.language_code if user else None, chosen)
        return await handler(event, data)


def _chat_text(event: TelegramObject) -> bool:
    message = event.message if isinstance(event, Update) else None
    text = message.text if message is not None else None
    return text is not None and not text.startswith("/")


class InFlight(BaseMiddleware):
    """Knows the handler tasks that are running, so that shutdown can let them finish
    (aiogram does not wait for them by itself)."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        update_id = getattr(event, "update_id", None)
        if update_id is not None:
            current_update.set(str(update_id))
        task = asyncio.current_task()
        if task is None:
            return await handler(event, data)
        self.tasks.add(task)
        try:
            return await handler(event, data)
        finally:
            self.tasks.discard(task)

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for running handlers, cancel the rest.

        Returns how many had to be cancelled.
        """
        current = asyncio.current_task()
        pending = {t for t in self.tasks if t is not current and not t.done()}
        if not pending:
            return 0
        _, still = await asyncio.wait(pending, timeout=grace)
        for task in still:
            task.cancel()
        if still:
            await asyncio.wait(still, timeout=2)
        return len(still)


class PasteArrivals(BaseMiddleware):
    """Notes every chat message (text, not a command) as soon as its update arrives,
    before any I/O, so that the parts of a paste Telegram split are joined by what has
    arrived, not by timing (see :mod:`bot.services.paste`)."""

    def __init__(self, pastes: Pastes) -> None:
        self.pastes = pastes

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        message = event.message if isinstance(event, Update) else None
        text = message.text if message is not None else None
        if message is None or message.from_user is None or not text or text.startswith("/"):
            return await handler(event, data)
        with self.pastes.arriving(message.chat.id, message.from_user.id, message.message_id, text):
            return await handler(event, data)


class UpdateDedup(BaseMiddleware):
    """Outer update middleware: an update id seen before (by any replica) is dropped.

    ``SET dedup:<bot id>:<update_id> 1 NX EX 86400``; when Redis does not answer the
    update goes through, so that the normal Redis-down handling tells the user.
    """

    def __init__(self, redis: Redis, ttl: int = DEDUP_TTL_SECONDS) -> None:
        self.redis = redis
        self.ttl = ttl

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if not isinstance(event, Update):
            return await handler(event, data)
        bot: Bot = data["bot"]
        key = f"dedup:{bot.id}:{event.update_id}"
        try:
            first = await self.redis.set(key, 1, nx=True, ex=self.ttl)
        except RedisError as exc:
            log.warning("update %s: cannot check for a duplicate: %s", event.update_id, exc)
            first = True
        if not first:
            log.info("update %s: a duplicate, skipped", event.update_id)
            return None
        return await handler(event, data)


class ButtonOwner(BaseMiddleware):
    """Callback middleware: in a group, a button under the bot's answer to someone's
    message is that person's. Anyone else who presses it is told so, and nothing
    happens. (Every keyboard the bot shows in a group replies to the message that asked
    for it; in private chats there is nobody else.)"""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if isinstance(event, CallbackQuery) and not _owned_by_presser(event):
            await event.answer(data["texts"].not_your_button)
            return None
        return await handler(event, data)


def _owned_by_presser(query: CallbackQuery) -> bool:
    message = query.message
    if message is None or isinstance(message, InaccessibleMessage):
        return True  # nothing to tell by: the handlers check what they act on
    if message.chat.type == ChatType.PRIVATE:
        return True
    asked = message.reply_to_message
    if asked is None or asked.from_user is None:
        return True
    return asked.from_user.id == query.from_user.id


class Gate(BaseMiddleware):
    """Outer middleware: an update waits here for a start slot (see
    :mod:`bot.services.gate`)."""

    def __init__(self, gate: StartGate) -> None:
        self.gate = gate

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        async with self.gate.slot():
            return await handler(event, data)
