"""A chat turn: the user's model and history from Redis (one round trip), the model's
answer streamed into the chat, and the exchange added to the history on success."""

from __future__ import annotations

from aiogram import Bot
from aiogram.enums import ChatType
from aiogram.types import Message as TgMessage
from redis.asyncio import Redis

from bot.catalog import Catalog
from bot.services.answer_writer import AnswerWriter
from bot.services.generate import Outcome, generate
from bot.services.history import History, fit_context
from bot.services.pacer import Pacer
from bot.services.pool import ProviderPool
from bot.services.prefs import Prefs
from bot.texts import Texts
from providers import ChatRequest, Message


class ChatService:
    def __init__(
        self,
        redis: Redis,
        catalog: Catalog,
        prefs: Prefs,
        history: History,
        pool: ProviderPool,
        pacer: Pacer,
    ) -> None:
        self.redis = redis
        self.catalog = catalog
        self.prefs = prefs
        self.history = history
        self.pool = pool
        self.pacer = pacer

    def writer(self, bot: Bot, message: TgMessage, texts: Texts) -> AnswerWriter:
        """An answer writer for a reply to ``message``: drafts in private chats, an
        edited reply in groups."""
        private = message.chat.type == ChatType.PRIVATE
        return AnswerWriter(
            bot,
            self.pacer,
            message.chat.id,
            private=private,
            placeholder=texts.thinking,
            reply_to=None if private else message.message_id,
            thread_id=message.message_thread_id if message.is_topic_message else None,
        )

    async def answer(self, bot: Bot, message: TgMessage, prompt: str, texts: Texts) -> Outcome:
        assert message.from_user is not None
        chat_id, user_id = message.chat.id, message.from_user.id
        async with self.redis.pipeline(transaction=False) as pipe:
            self.prefs.queue_read(pipe, user_id)
            self.history.queue_read(pipe, chat_id, user_id)
            raw_prefs, raw_history = await pipe.execute()
        model = self.catalog.models[self.prefs.parse(raw_prefs).model]
        question = Message(role="user", content=prompt)
        messages = fit_context(self.history.parse(raw_history), question, model.context)
        request = ChatRequest(model=model.name, messages=messages)
        writer = self.writer(bot, message, texts)
        outcome = await generate(self.pool.for_model(model), model, request, writer, texts)
        if outcome.ok:
            answer = Message(role="assistant", content=outcome.text)
            await self.history.append(chat_id, user_id, question, answer)
        return outcome
