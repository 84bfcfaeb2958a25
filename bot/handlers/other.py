"""Whatever no feature took: content the bot can't handle, unknown commands."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, Message

from bot.catalog import Catalog
from bot.filters import Addressed, private
from bot.texts import Texts


def router() -> Router:
    r = Router(name=__name__)
    r.message.register(unsupported, private)
    r.message.register(unsupported, Addressed())
    r.callback_query.register(stale_button)
    return r


async def unsupported(message: Message, texts: Texts, catalog: Catalog) -> None:
    """Stickers, files, locations, unknown commands (and photos or voice where no model
    takes them): say what works."""
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
