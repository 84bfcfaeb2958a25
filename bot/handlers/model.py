"""/model: pick the model by button or by id."""

from __future__ import annotations

import contextlib

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InaccessibleMessage, Message

from bot.catalog import Catalog
from bot.keyboards import PickModel, model_keyboard
from bot.services.prefs import Prefs
from bot.texts import Texts
from bot.texts.base import html


def router() -> Router:
    r = Router(name=__name__)
    r.message.register(model_command, Command("model"))
    r.callback_query.register(model_pressed, PickModel.filter())
    return r


async def model_command(
    message: Message, command: CommandObject, texts: Texts, prefs: Prefs, catalog: Catalog
) -> None:
    assert message.from_user is not None
    user_id = message.from_user.id
    wanted = (command.args or "").strip().lower()
    if wanted:
        model = catalog.get(wanted)
        if model is None:
            models = ", ".join(catalog.models)
            await message.answer(texts.model_unknown.format(model_id=wanted, models=models))
            return
        await prefs.set(user_id, model=model.id)
        await message.answer(texts.model_switched.format(model=model.title))
        return
    current = (await prefs.get(user_id)).model
    await message.answer(
        html(texts.model_choose, model=catalog.models[current].title),
        parse_mode="HTML",
        reply_markup=model_keyboard(catalog, current, texts),
    )


async def model_pressed(
    query: CallbackQuery,
    callback_data: PickModel,
    texts: Texts,
    prefs: Prefs,
    catalog: Catalog,
) -> None:
    model = catalog.get(callback_data.id)
    if model is None:  # hidden or removed since the keyboard was shown
        await query.answer(
            texts.model_unknown.format(model_id=callback_data.id, models=", ".join(catalog.models)),
            show_alert=True,
        )
        return
    await prefs.set(query.from_user.id, model=model.id)
    switched = texts.model_switched.format(model=model.title)
    await query.answer(switched)
    message = query.message
    if message is not None and not isinstance(message, InaccessibleMessage):
        with contextlib.suppress(TelegramBadRequest):  # pressed twice: nothing changed
            await message.edit_text(
                switched,
                reply_markup=model_keyboard(catalog, model.id, texts),
            )
