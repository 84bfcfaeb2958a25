"""/language: the language the bot speaks to a user, by button or by code; or back to
the Telegram app's."""

from __future__ import annotations

import contextlib

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InaccessibleMessage, Message, User

from bot.keyboards import AUTO, PickLanguage, language_keyboard
from bot.services.prefs import Prefs
from bot.services.target import Target
from bot.texts import LANGUAGES, Texts, texts_for
from bot.texts.base import html, shorten


def router() -> Router:
    r = Router(name=__name__)
    r.message.register(language_command, Command("language", "lang"))
    r.callback_query.register(language_pressed, PickLanguage.filter())
    return r


async def _pick(user: User, code: str, prefs: Prefs, texts: Texts) -> tuple[Texts, str]:
    """Store the choice; the texts to speak from now on, and what to tell the user (in
    them). An unknown code changes nothing."""
    if code == AUTO:
        await prefs.forget(user.id, "lang")
        now = texts_for(user.language_code)
        return now, now.language_auto_set.format(language=now.language_name_inline)
    if code not in LANGUAGES:
        codes = ", ".join([*LANGUAGES, AUTO])
        return texts, texts.language_unknown.format(code=shorten(code), codes=codes)
    await prefs.set(user.id, lang=code)
    return LANGUAGES[code], LANGUAGES[code].language_set


def _choose_text(texts: Texts) -> str:
    return html(texts.language_choose, language=texts.language_name_inline)


async def language_command(
    message: Message,
    command: CommandObject,
    bot: Bot,
    texts: Texts,
    prefs: Prefs,
    chosen_language: str | None,
) -> None:
    assert message.from_user is not None
    wanted = (command.args or "").strip().lower()
    if wanted:
        _, said = await _pick(message.from_user, wanted, prefs, texts)
        await message.answer(said)
        return
    # a reply (in groups): the keyboard is the asker's alone (see ButtonOwner)
    await Target.of(message, message.from_user.id).say(
        bot,
        _choose_text(texts),
        parse_mode="HTML",
        reply_markup=language_keyboard(chosen_language, texts),
    )


async def language_pressed(
    query: CallbackQuery, callback_data: PickLanguage, texts: Texts, prefs: Prefs
) -> None:
    now, said = await _pick(query.from_user, callback_data.code, prefs, texts)
    await query.answer(said)
    message = query.message
    if message is not None and not isinstance(message, InaccessibleMessage):
        chosen = None if callback_data.code == AUTO else callback_data.code
        with contextlib.suppress(TelegramBadRequest):  # pressed twice: nothing changed
            await message.edit_text(
                _choose_text(now), parse_mode="HTML", reply_markup=language_keyboard(chosen, now)
            )
