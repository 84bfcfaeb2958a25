"""Dispatcher middlewares: the user's texts, the register of running handlers, and the
note of long messages arriving."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update, User

from bot.redact import current_update
from bot.services.paste import Pastes
from bot.texts import texts_for


class TextsMiddleware(BaseMiddleware):
    """Gives every handler ``texts`` in the user's Telegram language."""

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user: User | None = data.get("event_from_user")
        data["texts"] = texts_for(user.language_code if user else None)
        return await handler(event, data)


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
