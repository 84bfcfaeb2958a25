"""Whatever no feature took: content the bot can't handle, unknown commands."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.types import CallbackQuery, Message

from bot.filters import Addressed
from bot.texts import Texts


def router() -> Router:
    r = Router(name=__name__)
    r.message.register(unsupported, F.chat.type == ChatType.PRIVATE)
    r.message.register(unsupported, Addressed())
    r.callback_query.register(stale_button)
    return r


async def unsupported(message: Message, texts: Texts) -> None:
    """Stickers, voice, files, photos, locations, unknown commands: say what works."""
    await message.answer(texts.unsupported)


async def stale_button(query: CallbackQuery) -> None:
    """A button from an old keyboard: answer it so the client stops waiting."""
    await query.answer()
