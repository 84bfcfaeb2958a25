"""Which messages are for the bot: all in private chats; in groups, only those that
mention the bot or reply to it. And what kind of message it is.

The kinds are coroutine functions rather than aiogram's magic ``F`` filters or plain
functions: aiogram runs a filter that is not a coroutine in a worker thread, some 80 µs
per filter for every message, where a coroutine costs 1 µs.
"""

from __future__ import annotations

from typing import Any

from aiogram import Bot
from aiogram.enums import ChatType, MessageEntityType
from aiogram.filters import BaseFilter
from aiogram.types import Message

# Images a vision API takes, when they come as a file rather than a photo.
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})


async def text_prompt(message: Message) -> bool:
    """Text from a user that is not a command."""
    text = message.text
    return text is not None and message.from_user is not None and not text.startswith("/")


async def from_user(message: Message) -> bool:
    return message.from_user is not None


async def image(message: Message) -> bool:
    """A photo from a user, or an image file a vision API takes."""
    document = message.document
    return message.from_user is not None and (
        bool(message.photo) or (document is not None and document.mime_type in IMAGE_TYPES)
    )


async def sound(message: Message) -> bool:
    """A voice message or an audio file from a user."""
    return message.from_user is not None and (
        message.voice is not None or message.audio is not None
    )


async def private(message: Message) -> bool:
    return message.chat.type == ChatType.PRIVATE


class Addressed(BaseFilter):
    """Passes messages meant for the bot and gives the handler ``prompt``: the text with
    the bot's @mention taken out."""

    async def __call__(self, message: Message, bot: Bot) -> bool | dict[str, Any]:
        text = message.text or message.caption or ""
        if message.chat.type == ChatType.PRIVATE:
            return {"prompt": text}
        me = await bot.me()
        mention = f"@{me.username}".lower() if me.username else None
        entities = message.entities or message.caption_entities or []
        mentioned = mention is not None and any(
            e.type == MessageEntityType.MENTION and e.extract_from(text).lower() == mention
            for e in entities
        )
        replied = (
            message.reply_to_message is not None
            and message.reply_to_message.from_user is not None
            and message.reply_to_message.from_user.id == me.id
        )
        if not (mentioned or replied):
            return False
        if mentioned and mention:
            text = _remove_mention(text, mention)
        return {"prompt": text.strip()}


def _remove_mention(text: str, mention: str) -> str:
    lower = text.lower()
    start = lower.find(mention)
    while start != -1:
        text = text[:start] + text[start + len(mention) :]
        lower = text.lower()
        start = lower.find(mention)
    return text
