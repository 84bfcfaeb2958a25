"""Text messages, answered by the user's current model; /new; Stop and Retry."""

from __future__ import annotations

import contextlib

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InaccessibleMessage, Message, MessageGenerationStopped

from bot.catalog import Catalog
from bot.filters import Addressed, text_prompt
from bot.keyboards import RetryAnswer, StopAnswer
from bot.services.chat import ChatService
from bot.services.compare import CompareService
from bot.services.generations import Generations
from bot.services.history import History
from bot.services.media import MediaService
from bot.services.merge import MergeService
from bot.services.paste import Pastes
from bot.services.target import Target
from bot.texts import Texts


def router() -> Router:
    r = Router(name=__name__)
    r.message.register(new_conversation, Command("new"))
    r.message.register(stop_command, Command("stop"))
    r.message.register(chat, text_prompt, Addressed())
    r.callback_query.register(stop_pressed, StopAnswer.filter())
    r.callback_query.register(retry_pressed, RetryAnswer.filter())
    r.stopped_message_generation.register(draft_stopped)
    return r


async def new_conversation(message: Message, texts: Texts, history: History) -> None:
    assert message.from_user is not None
    await history.clear(message.chat.id, message.from_user.id)
    await message.answer(texts.new_done)


async def chat(
    message: Message,
    prompt: str,
    bot: Bot,
    texts: Texts,
    pastes: Pastes,
    chat_service: ChatService,
) -> None:
    assert message.from_user is not None
    target = Target.of(message, message.from_user.id)
    if pastes.is_part(prompt):  # maybe a part of a long paste that Telegram split
        whole = await pastes.hold(target.chat_id, target.user_id, message.message_id, prompt)
        if whole is None:
            return  # a later part of the paste carries it
        prompt = whole
    if prompt:
        await chat_service.answer(bot, target, prompt, texts)


async def stop_command(message: Message, texts: Texts, generations: Generations) -> None:
    assert message.from_user is not None
    if not await generations.stop_chat(message.chat.id, message.from_user.id):
        await message.answer(texts.nothing_to_stop)


async def stop_pressed(
    query: CallbackQuery, callback_data: StopAnswer, texts: Texts, generations: Generations
) -> None:
    """The Stop button under a streaming answer: its user's, nobody else's."""
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    user_id = query.from_user.id
    if await generations.stop_own(chat_id, user_id, callback_data.gen, callback_data.part):
        await query.answer()
    else:
        await query.answer(texts.nothing_to_stop)


async def draft_stopped(event: MessageGenerationStopped, generations: Generations) -> None:
    """Stop pressed on a draft: drafts are in private chats, where the chat is the user;
    only the answer that holds that chat stops."""
    await generations.stop_own(event.chat.id, event.chat.id, event.draft_id)


async def retry_pressed(
    query: CallbackQuery,
    callback_data: RetryAnswer,
    bot: Bot,
    texts: Texts,
    generations: Generations,
    catalog: Catalog,
    chat_service: ChatService,
    compare_service: CompareService,
    media_service: MediaService,
    merge_service: MergeService,
) -> None:
    """Ask again what failed or was stopped, as a new message in the chat where it was
    asked: a chat turn (its photo downloaded from Telegram again), a picture, a voice
    message, or one model's answer of a comparison."""
    message = query.message
    target = Target.of_query(query)
    kept = None
    if target is not None:
        kept = await generations.take_retry(query.from_user.id, callback_data.gen, target.chat_id)
    compared = catalog.get(kept.model) if kept is not None and kept.model else None
    if (
        message is None
        or target is None
        or kept is None
        or (kept.kind == "compare" and compared is None)
    ):
        await query.answer(texts.retry_expired, show_alert=True)
        return
    await query.answer()
    if not isinstance(message, InaccessibleMessage):
        with contextlib.suppress(TelegramBadRequest):
            await message.edit_reply_markup(reply_markup=None)
    photo = kept.photo
    if kept.kind == "compare":
        await compare_service.run(bot, target, kept.prompt, texts, only=compared)
    elif kept.kind == "merge":
        await merge_service.merge(bot, target, kept.prompt, texts)
    elif kept.kind == "image":
        await media_service.draw(bot, target, kept.prompt, texts, photo=photo)
    elif kept.kind == "voice" and photo is not None:
        transcript = await media_service.listen(
            bot, target, photo.file_id, 0, None, kept.prompt, texts
        )
        if transcript:
            await chat_service.answer(bot, target, transcript, texts)
    elif photo is not None:
        await media_service.see(bot, target, photo.file_id, None, photo.mime, kept.prompt, texts)
    else:
        await chat_service.answer(bot, target, kept.prompt, texts)
