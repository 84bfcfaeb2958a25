"""/model: pick the chat model (or the image model for /image) by button or by id."""

from __future__ import annotations

import contextlib
from html import escape

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InaccessibleMessage, Message

from bot.catalog import Catalog
from bot.keyboards import PickModel, model_keyboard
from bot.services.prefs import Prefs, UserPrefs
from bot.services.target import Target
from bot.texts import Texts
from bot.texts.base import html, shorten


def router() -> Router:
    r = Router(name=__name__)
    r.message.register(model_command, Command("model"))
    r.callback_query.register(model_pressed, PickModel.filter())
    return r


def _choose_text(catalog: Catalog, prefs: UserPrefs, texts: Texts) -> str:
    text = html(texts.model_choose, model=catalog.models[prefs.model].title)
    image = catalog.get_image(prefs.image) if prefs.image else None
    if image is not None:
        text += "\n" + html(texts.model_image_current, model=image.title)
    return text


def _available(catalog: Catalog) -> str:
    return ", ".join([*catalog.models, *catalog.image_models])


async def _pick(user_id: int, model_id: str, prefs: Prefs, catalog: Catalog, texts: Texts) -> str:
    """Switch the chat model, or the image model; what to tell the user."""
    chat_model = catalog.get(model_id)
    if chat_model is not None:
        await prefs.set(user_id, model=chat_model.id)
        return texts.model_switched.format(model=chat_model.title)
    image = catalog.get_image(model_id)
    if image is not None:
        await prefs.set(user_id, image=image.id)
        return texts.model_image_switched.format(model=image.title)
    return texts.model_unknown.format(model_id=shorten(model_id), models=_available(catalog))


def _known(catalog: Catalog, model_id: str) -> bool:
    return catalog.get(model_id) is not None or catalog.get_image(model_id) is not None


async def model_command(
    message: Message,
    command: CommandObject,
    bot: Bot,
    texts: Texts,
    prefs: Prefs,
    catalog: Catalog,
) -> None:
    assert message.from_user is not None
    user_id = message.from_user.id
    wanted = (command.args or "").strip().lower()
    if wanted:
        await message.answer(await _pick(user_id, wanted, prefs, catalog, texts))
        return
    current = await prefs.get(user_id)
    # a reply (in groups): the keyboard is the asker's alone (see ButtonOwner)
    await Target.of(message, user_id).say(
        bot,
        _choose_text(catalog, current, texts),
        parse_mode="HTML",
        reply_markup=model_keyboard(catalog, current.model, texts, current.image),
    )


async def model_pressed(
    query: CallbackQuery,
    callback_data: PickModel,
    texts: Texts,
    prefs: Prefs,
    catalog: Catalog,
) -> None:
    user_id = query.from_user.id
    said = await _pick(user_id, callback_data.id, prefs, catalog, texts)
    if not _known(catalog, callback_data.id):  # hidden or removed since the keyboard was shown
        await query.answer(said, show_alert=True)
        return
    await query.answer(said)
    current = await prefs.get(user_id)
    message = query.message
    if message is not None and not isinstance(message, InaccessibleMessage):
        # the whole menu as /model shows it (the image model's line too), and the switch
        text = f"{_choose_text(catalog, current, texts)}\n\n{escape(said, quote=False)}"
        with contextlib.suppress(TelegramBadRequest):  # pressed twice: nothing changed
            await message.edit_text(
                text,
                parse_mode="HTML",
                reply_markup=model_keyboard(catalog, current.model, texts, current.image),
            )
