"""Text messages: answered by the user's current model. /new forgets the conversation."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import Message

from bot.filters import Addressed
from bot.services.chat import ChatService
from bot.services.history import History
from bot.texts import Texts


def router() -> Router:
    r = Router(name=__name__)
    r.message.register(new_conversation, Command("new"))
    r.message.register(chat, F.text, ~F.text.startswith("/"), F.from_user, Addressed())
    return r


async def new_conversation(message: Message, texts: Texts, history: History) -> None:
    assert message.from_user is not None
    await history.clear(message.chat.id, message.from_user.id)
    await message.answer(texts.new_done)


async def chat(
    message: Message, prompt: str, bot: Bot, texts: Texts, chat_service: ChatService
) -> None:
    if prompt:
        await chat_service.answer(bot, message, prompt, texts)
