"""/arena <question> (or /arena, then the question as a reply), the vote under a battle,
and /top: the arena leaderboard, then the /compare "Best" counts."""

from __future__ import annotations

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, ForceReply, Message

from bot.catalog import Catalog
from bot.filters import Addressed
from bot.keyboards import ArenaVote
from bot.services.arena import ArenaService
from bot.services.arena_store import Vote
from bot.services.compare_store import CompareStore
from bot.services.target import Target
from bot.texts import LANGUAGES, Texts
from bot.texts.base import html

_ASKED = frozenset(t.arena_usage for t in LANGUAGES.values())


def router() -> Router:
    r = Router(name=__name__)
    r.message.register(arena, Command("arena"))
    r.message.register(top, Command("top"))
    r.callback_query.register(vote, ArenaVote.filter())
    return r


def replies() -> Router:
    """The question sent as a reply to /arena's prompt (tried before the chat router)."""
    r = Router(name=f"{__name__}.replies")
    r.message.register(question_given, answers_arena_prompt, Addressed())
    return r


async def answers_arena_prompt(message: Message, bot: Bot) -> bool:
    """A reply to the bot's "send your question" message of /arena."""
    asked = message.reply_to_message
    return (
        message.text is not None
        and message.from_user is not None
        and asked is not None
        and asked.from_user is not None
        and asked.from_user.id == bot.id
        and asked.text in _ASKED
    )


async def arena(
    message: Message, command: CommandObject, bot: Bot, texts: Texts, arena_service: ArenaService
) -> None:
    assert message.from_user is not None
    target = Target.of(message, message.from_user.id)
    question = (command.args or "").strip()
    if not question:
        await bot.send_message(
            target.chat_id,
            texts.arena_usage,
            message_thread_id=target.thread_id,
            reply_parameters=target.reply_parameters(),
            reply_markup=ForceReply(selective=True),
        )
        return
    await arena_service.battle(bot, target, question, texts)


async def question_given(
    message: Message, prompt: str, bot: Bot, texts: Texts, arena_service: ArenaService
) -> None:
    assert message.from_user is not None
    if prompt.strip():
        target = Target.of(message, message.from_user.id)
        await arena_service.battle(bot, target, prompt.strip(), texts)


async def vote(
    query: CallbackQuery,
    callback_data: ArenaVote,
    bot: Bot,
    texts: Texts,
    catalog: Catalog,
    arena_service: ArenaService,
) -> None:
    """The asker's one vote; then both answers show their models."""
    result = await arena_service.vote(
        bot, query.from_user.id, callback_data.bid, callback_data.c, texts
    )
    if result.vote == Vote.COUNTED:
        await query.answer(texts.arena_counted)
    elif result.vote == Vote.NAMED and result.battle is not None:
        named = [
            catalog.all_models[m].title for m in result.battle.named if m in catalog.all_models
        ]
        await query.answer(texts.arena_named.format(models=", ".join(named)), show_alert=True)
    elif result.vote == Vote.OVER_CAP:
        await query.answer(texts.arena_over_cap.format(limit=arena_service.daily_votes))
    elif result.vote == Vote.ALREADY:
        await query.answer(texts.arena_already)
    elif result.vote == Vote.NOT_READY:
        await query.answer(texts.arena_not_ready)
    else:
        await query.answer(texts.arena_expired, show_alert=True)


async def top(
    message: Message,
    texts: Texts,
    catalog: Catalog,
    arena_service: ArenaService,
    compare_store: CompareStore,
) -> None:
    """The arena leaderboard (rated, then provisional), then the /compare "Best" votes."""
    lines = await arena_service.board_lines(texts)
    best = [(m, v) for m, v in await compare_store.top() if m in catalog.all_models]
    if not lines and not best:
        await message.answer(texts.top_empty)
        return
    if not lines:
        lines = [texts.top_arena_empty]
    if best:
        lines += ["", texts.top_best_title]
        for place, (model_id, votes) in enumerate(best, start=1):
            title = catalog.all_models[model_id].title
            lines.append(html(texts.top_line, place=place, model=title, votes=votes))
    await message.answer("\n".join(lines), parse_mode="HTML")
