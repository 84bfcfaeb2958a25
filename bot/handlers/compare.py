"""/compare <question>, /compare (choose the set), Continue with, Best, /top."""

from __future__ import annotations

import contextlib

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InaccessibleMessage, Message

from bot.catalog import MAX_COMPARE, MIN_COMPARE, Catalog
from bot.keyboards import ContinueWith, ToggleCompare, VoteBest, compare_set_keyboard
from bot.services.compare import CompareService
from bot.services.compare_store import CompareStore
from bot.services.history import History
from bot.services.prefs import Prefs
from bot.services.target import Target
from bot.texts import Texts
from bot.texts.base import html
from providers import Message as ChatMessage


def router() -> Router:
    r = Router(name=__name__)
    r.message.register(compare, Command("compare"))
    r.message.register(top, Command("top"))
    r.callback_query.register(toggle, ToggleCompare.filter())
    r.callback_query.register(continue_with, ContinueWith.filter())
    r.callback_query.register(vote, VoteBest.filter())
    return r


def _titles(catalog: Catalog, ids: list[str] | tuple[str, ...]) -> str:
    return ", ".join(catalog.models[m].title for m in ids)


async def compare(
    message: Message,
    command: CommandObject,
    bot: Bot,
    texts: Texts,
    prefs: Prefs,
    catalog: Catalog,
    compare_service: CompareService,
) -> None:
    assert message.from_user is not None
    question = (command.args or "").strip()
    if question:
        target = Target.of(message, message.from_user.id)
        await compare_service.run(bot, target, question, texts)
        return
    chosen = (await prefs.get(message.from_user.id)).compare
    # a reply (in groups): the keyboard is the asker's alone (see ButtonOwner)
    await Target.of(message, message.from_user.id).say(
        bot,
        texts.compare_choose.format(models=_titles(catalog, chosen)),
        reply_markup=compare_set_keyboard(catalog, chosen, texts),
    )


async def toggle(
    query: CallbackQuery,
    callback_data: ToggleCompare,
    texts: Texts,
    prefs: Prefs,
    catalog: Catalog,
) -> None:
    chosen = list((await prefs.get(query.from_user.id)).compare)
    model_id = callback_data.id
    if catalog.get(model_id) is None:
        await query.answer()
        return
    if model_id in chosen:
        chosen.remove(model_id)
    else:
        chosen.append(model_id)
    if not MIN_COMPARE <= len(chosen) <= MAX_COMPARE:
        bounds = texts.compare_toggle_bounds.format(low=MIN_COMPARE, high=MAX_COMPARE)
        await query.answer(bounds, show_alert=True)
        return
    chosen = [m for m in catalog.models if m in chosen]  # catalog order
    await prefs.set(query.from_user.id, compare=",".join(chosen))
    await query.answer()
    if query.message is not None and not isinstance(query.message, InaccessibleMessage):
        with contextlib.suppress(TelegramBadRequest):
            await query.message.edit_text(
                texts.compare_choose.format(models=_titles(catalog, chosen)),
                reply_markup=compare_set_keyboard(catalog, chosen, texts),
            )


async def continue_with(
    query: CallbackQuery,
    callback_data: ContinueWith,
    bot: Bot,
    texts: Texts,
    prefs: Prefs,
    history: History,
    catalog: Catalog,
    compare_store: CompareStore,
) -> None:
    """Switch to that model, its answer being the start of the conversation."""
    user_id = query.from_user.id
    model = catalog.get(callback_data.id)
    kept = await compare_store.load(user_id, callback_data.cid, callback_data.id)
    if model is None or kept is None or query.message is None:
        await query.answer(texts.compare_expired, show_alert=True)
        return
    chat_id = query.message.chat.id
    await prefs.set(user_id, model=model.id)
    await history.replace(
        chat_id,
        user_id,
        ChatMessage(role="user", content=kept.question),
        ChatMessage(role="assistant", content=kept.answer),
    )
    continued = texts.compare_continued.format(model=model.title)
    await query.answer(continued)
    await bot.send_message(chat_id, continued)


async def vote(
    query: CallbackQuery,
    callback_data: VoteBest,
    texts: Texts,
    catalog: Catalog,
    compare_store: CompareStore,
) -> None:
    """ "Best": one vote per comparison, by the user who asked it, for a model whose
    answer is in it."""
    model = catalog.all_models.get(callback_data.id)
    counted = None
    if model is not None:
        counted = await compare_store.vote(query.from_user.id, callback_data.cid, model.id)
    if model is None or counted is None:
        await query.answer(texts.compare_expired, show_alert=True)
        return
    await query.answer(
        texts.vote_counted.format(model=model.title) if counted else texts.vote_already
    )


async def top(
    message: Message, texts: Texts, catalog: Catalog, compare_store: CompareStore
) -> None:
    rows = [(m, v) for m, v in await compare_store.top() if m in catalog.all_models]
    if not rows:
        await message.answer(texts.top_empty)
        return
    lines = [texts.top_title]
    for place, (model_id, votes) in enumerate(rows, start=1):
        title = catalog.all_models[model_id].title
        lines.append(html(texts.top_line, place=place, model=title, votes=votes))
    await message.answer("\n".join(lines), parse_mode="HTML")
