"""Whatever no feature took: content the bot can't handle, unknown commands."""

from __future__ import annotations

from typing import Any

from aiogram import Bot, Router
from aiogram.enums import ChatType
from aiogram.filters import BaseFilter
from aiogram.types import CallbackQuery, Message

from bot.catalog import Catalog
from bot.filters import Addressed, private
from bot.texts import Texts
from bot.texts.base import shorten


class UnknownCommand(BaseFilter):
    """A command no router took (``/foo``, or ``/stats`` from someone not an admin),
    meant for this bot: any in a private chat; in a group one that names this bot
    (``/foo@thisbot``) or, naming no bot, mentions it or replies to it. Gives the
    handler ``command``: its name as typed, without this bot's @username."""

    async def __call__(self, message: Message, bot: Bot) -> bool | dict[str, Any]:
        text = message.text
        if text is None or not text.startswith("/") or message.from_user is None:
            return False
        head = text.split(maxsplit=1)[0]
        name, _, addressee = head.partition("@")
        me = await bot.me()
        ours = not addressee or (me.username or "").lower() == addressee.lower()
        if message.chat.type == ChatType.PRIVATE:
            return {"command": name if ours else head}
        if addressee:
            return {"command": name} if ours else False
        return {"command": name} if await Addressed()(message, bot) else False


def router() -> Router:
    r = Router(name=__name__)
    r.message.register(unknown_command, UnknownCommand())
    r.message.register(unsupported, private)
    r.message.register(unsupported, Addressed())
    r.callback_query.register(stale_button)
    return r


async def unknown_command(message: Message, texts: Texts, command: str) -> None:
    await message.answer(texts.unknown_command.format(command=shorten(command)))


async def unsupported(message: Message, texts: Texts, catalog: Catalog) -> None:
    """Stickers, files, locations (and photos or voice where no model takes them): say
    what works."""
    await message.answer(unsupported_text(catalog, texts))


def unsupported_text(catalog: Catalog, texts: Texts) -> str:
    """What the bot understands with this catalog: text, and photos and voice messages
    when a model for them is usable."""
    things = [texts.can_text]
    if catalog.vision_models:
        things.append(texts.can_photos)
    if catalog.transcription_model is not None:
        things.append(texts.can_voice)
    if len(things) == 1:
        return texts.unsupported
    listed = ", ".join(things[:-1]) + texts.list_and + things[-1]
    return texts.unsupported_media.format(things=listed)


async def stale_button(query: CallbackQuery) -> None:
    """A button from an old keyboard: answer it so the client stops waiting."""
    await query.answer()
