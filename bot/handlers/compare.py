"""/compare <question>, /compare (choose the set and the merge model), Continue with,
Best, Merge."""

from __future__ import annotations

import contextlib

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InaccessibleMessage, Message

from bot.catalog import MAX_COMPARE, MIN_COMPARE, Catalog
from bot.keyboards import (
    ContinueWith,
    CycleMerge,
    MergeAnswers,
    ToggleCompare,
    VoteBest,
    compare_set_keyboard,
)
from bot.services.compare import CompareService
from bot.services.compare_store import CompareStore
from bot.services.history import History
from bot.services.merge import MergeService
from bot.services.prefs import Prefs
from bot.services.target import Target
from bot.texts import Texts
from providers import Message as ChatMessage


def router() -> Router:
    r = Router(name=__name__)
    r.message.register(compare, Command("compare"))
    r.callback_query.register(toggle, ToggleCompare.filter())
    r.callback_query.register(continue_with, ContinueWith.filter())
    r.callback_query.register(vote, VoteBest.filter())
    r.callback_query.register(merge_pressed, MergeAnswers.filter())
    r.callback_query.register(cycle_merge, CycleMerge.filter())
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
    current = await prefs.get(message.from_user.id)
    chosen = current.compare
    # a reply (in groups): the keyboard is the asker's alone (see ButtonOwner)
    await Target.of(message, message.from_user.id).say(
        bot,
        texts.compare_choose.format(models=_titles(catalog, chosen)),
        reply_markup=compare_set_keyboard(catalog, chosen, texts, current.merge),
    )


async def toggle(
    query: CallbackQuery,
    callback_data: ToggleCompare,
    texts: Texts,
    prefs: Prefs,
    catalog: Catalog,
) -> None:
    current = await prefs.get(query.from_user.id)
    chosen = list(current.compare)
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
                reply_markup=compare_set_keyboard(catalog, chosen, texts, current.merge),
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


async def cycle_merge(
    query: CallbackQuery, callback_data: CycleMerge, texts: Texts, prefs: Prefs, catalog: Catalog
) -> None:
    """The merge model's button: the next chat model merges from now on."""
    ids = list(catalog.models)
    now = callback_data.id if callback_data.id in ids else catalog.default_merge
    chosen = ids[(ids.index(now) + 1) % len(ids)]
    await prefs.set(query.from_user.id, merge=chosen)
    await query.answer(texts.merge_with.format(model=catalog.models[chosen].title))
    current = await prefs.get(query.from_user.id)
    if query.message is not None and not isinstance(query.message, InaccessibleMessage):
        with contextlib.suppress(TelegramBadRequest):
            await query.message.edit_reply_markup(
                reply_markup=compare_set_keyboard(catalog, current.compare, texts, chosen)
            )


async def merge_pressed(
    query: CallbackQuery,
    callback_data: MergeAnswers,
    bot: Bot,
    texts: Texts,
    merge_service: MergeService,
) -> None:
    """Merge: the user's merge model reads the question and every answer that arrived,
    writes the one best answer, and the conversation goes on with it."""
    target = Target.of_query(query)
    if target is None or not await merge_service.can_merge(target.user_id, callback_data.cid):
        await query.answer(texts.compare_expired, show_alert=True)
        return
    await query.answer()
    await merge_service.merge(bot, target, callback_data.cid, texts)
