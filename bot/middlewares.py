"""Dispatcher middlewares: the user's texts, the register of running handlers, and the
note of long messages arriving."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update, User
from redis.exceptions import RedisError

from bot.redact import current_update
from bot.services.paste import Pastes
from bot.services.prefs import Prefs
from bot.texts import texts_for


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
    """Notes a long text message as soon as its update arrives, before any I/O, so that
    the end of a paste Telegram split waits for the parts before it (see
    :mod:`bot.services.paste`)."""

    def __init__(self, pastes: Pastes) -> None:
        self.pastes = pastes

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        message = event.message if isinstance(event, Update) else None
        if message is None or message.from_user is None or not Pastes.is_part(message.text or ""):
            return await handler(event, data)
        with self.pastes.arriving(message.chat.id, message.from_user.id, message.message_id):
            return await handler(event, data)
