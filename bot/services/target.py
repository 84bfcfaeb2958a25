"""Where an answer goes and whose it is: the chat, the user, the message answered; the
one place that builds reply parameters and shows a chat action while work goes on."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiogram import Bot
from aiogram.enums import ChatAction, ChatType
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.types import CallbackQuery, InaccessibleMessage, InlineKeyboardMarkup, ReplyParameters
from aiogram.types import Message as TgMessage

from bot.telegram import best_effort

ACTION_EVERY = 4.5  # seconds: Telegram shows a chat action for about five


@dataclass(frozen=True)
class Target:
    chat_id: int
    user_id: int
    private: bool
    reply_to: int | None = None  # in groups, the message answered
    thread_id: int | None = None
    message_id: int | None = None  # the user's message, when there is one

    @classmethod
    def of(cls, message: TgMessage, user_id: int, reply: bool = True) -> Target:
        private = message.chat.type == ChatType.PRIVATE
        return cls(
            chat_id=message.chat.id,
            user_id=user_id,
            private=private,
            reply_to=None if private or not reply else message.message_id,
            thread_id=message.message_thread_id if message.is_topic_message else None,
            message_id=message.message_id,
        )

    @classmethod
    def of_query(cls, query: CallbackQuery) -> Target | None:
        """Where a button's answer goes: the chat (and topic) of the message under which
        it was pressed; None when that message is out of reach."""
        message = query.message
        if message is None:
            return None
        thread = None
        if not isinstance(message, InaccessibleMessage) and message.is_topic_message:
            thread = message.message_thread_id
        return cls(
            chat_id=message.chat.id,
            user_id=query.from_user.id,
            private=message.chat.type == ChatType.PRIVATE,
            thread_id=thread,
        )

    def reply_parameters(self) -> ReplyParameters | None:
        if self.reply_to is None:
            return None
        return ReplyParameters(message_id=self.reply_to, allow_sending_without_reply=True)

    async def say(
        self,
        bot: Bot,
        text: str,
        parse_mode: str | None = None,
        reply_markup: InlineKeyboardMarkup | None = None,
    ) -> None:
        """A short message from the bot here."""
        await bot.send_message(
            self.chat_id,
            text,
            parse_mode=parse_mode,
            message_thread_id=self.thread_id,
            reply_parameters=self.reply_parameters(),
            reply_markup=reply_markup,
        )


async def show_action(
    bot: Bot,
    chat_id: int,
    thread_id: int | None,
    action: ChatAction,
    until: asyncio.Event,
    after: float = 0.0,
) -> bool:
    """Show ``action`` ("typing…") in the chat, renewed every few seconds, from ``after``
    seconds on until ``until`` is set. Best effort: a refused call is skipped. Returns
    False when Telegram answered 403 (blocked, or not in the group): nobody is there."""
    await wait_for(until, after)
    while not until.is_set():
        try:
            with best_effort():
                await bot.send_chat_action(chat_id, action, message_thread_id=thread_id)
        except TelegramForbiddenError:
            return False
        except TelegramAPIError:
            pass
        await wait_for(until, ACTION_EVERY)
    return True


@contextlib.asynccontextmanager
async def chat_action(bot: Bot, target: Target, action: ChatAction) -> AsyncIterator[None]:
    """Show ``action`` ("sending a photo…") in the chat while the block runs."""
    done = asyncio.Event()
    task = asyncio.create_task(show_action(bot, target.chat_id, target.thread_id, action, done))
    try:
        yield
    finally:
        done.set()
        task.cancel()
        await asyncio.wait({task})  # a cancel of the block's own task is not swallowed


async def wait_for(event: asyncio.Event, seconds: float) -> None:
    """Until ``event`` is set or ``seconds`` pass, whichever comes first."""
    if seconds > 0 and not event.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # unlike 3.11's wait_for, never eats a cancel
                await event.wait()
