"""A chat turn: the user's model and history from Redis (one round trip), the model's
answer streamed into the chat, and the exchange added to the history on success."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.enums import ChatType
from aiogram.types import Message as TgMessage
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.catalog import Catalog, ModelSpec
from bot.services.answer_writer import AnswerWriter
from bot.services.generate import Outcome, generate
from bot.services.history import History, fit_context
from bot.services.pacer import Pacer
from bot.services.pool import ProviderPool
from bot.services.prefs import Prefs
from bot.services.quota import Grant, Quota, Reservation
from bot.texts import Texts
from bot.texts.base import reset_time
from providers import ChatRequest, Message

log = logging.getLogger(__name__)


class ChatService:
    def __init__(
        self,
        redis: Redis,
        catalog: Catalog,
        prefs: Prefs,
        history: History,
        pool: ProviderPool,
        pacer: Pacer,
        quota: Quota,
    ) -> None:
        self.redis = redis
        self.catalog = catalog
        self.prefs = prefs
        self.history = history
        self.pool = pool
        self.pacer = pacer
        self.quota = quota

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

    async def answer(
        self, bot: Bot, message: TgMessage, prompt: str, texts: Texts
    ) -> Outcome | None:
        """Answer ``prompt`` with the user's model; None when a limit stopped it."""
        assert message.from_user is not None
        chat_id, user_id = message.chat.id, message.from_user.id
        async with self.redis.pipeline(transaction=False) as pipe:
            self.prefs.queue_read(pipe, user_id)
            self.history.queue_read(pipe, chat_id, user_id)
            raw_prefs, raw_history = await pipe.execute()
        model = self.catalog.models[self.prefs.parse(raw_prefs).model]
        reservation = await self.quota.reserve(user_id, [model])
        if not reservation.ok(model.id):
            await message.answer(self.limit_text(reservation, model, texts))
            return None
        question = Message(role="user", content=prompt)
        messages = fit_context(self.history.parse(raw_history), question, model.context)
        request = ChatRequest(model=model.name, messages=messages)
        writer = self.writer(bot, message, texts)
        try:
            outcome = await generate(self.pool.for_model(model), model, request, writer, texts)
        except BaseException:  # cancelled (shutdown): free unless the user saw text
            if not writer.text.strip():
                await self.quota.refund(reservation, [model.id])
            raise
        try:
            if not outcome.text.strip():  # nothing reached the user: the request is free
                await self.quota.refund(reservation, [model.id])
            elif outcome.ok:
                answer = Message(role="assistant", content=outcome.text)
                await self.history.append(chat_id, user_id, question, answer)
        except RedisError as exc:  # the answer is delivered: don't tell the user otherwise
            log.error("chat %s: could not record the outcome in Redis: %s", chat_id, exc)
        return outcome

    def limit_text(self, reservation: Reservation, model: ModelSpec, texts: Texts) -> str:
        """Which limit stopped the request, and when it resets."""
        when = reset_time(texts, reservation.resets_at, self.quota.clock())
        if reservation.grants[model.id] == Grant.MODEL_CAP:
            return texts.limit_model.format(model=model.title, limit=model.daily_limit, **when)
        return texts.limit_overall.format(limit=self.quota.overall_cap, **when)
