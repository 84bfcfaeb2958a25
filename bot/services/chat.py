"""A chat turn: the user's model and history from Redis with the chat's lock (one round
trip), the reservation (one), the model's answer streamed into the chat, and the
outcome recorded with the lock given back (one): three round trips per message."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiogram import Bot
from aiogram.enums import ChatType
from aiogram.types import Message as TgMessage
from aiogram.types import ReplyParameters
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.catalog import Catalog, ModelSpec
from bot.keyboards import retry_keyboard, stop_keyboard
from bot.services.answer_writer import AnswerWriter
from bot.services.generate import Outcome, generate
from bot.services.generations import Generations, new_id
from bot.services.history import History, fit_context
from bot.services.pacer import Pacer
from bot.services.pool import ProviderPool
from bot.services.prefs import Prefs
from bot.services.quota import Grant, Quota, Reservation
from bot.texts import Texts
from bot.texts.base import reset_time
from providers import ChatRequest, Message

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Where an answer goes and whose it is."""

    chat_id: int
    user_id: int
    private: bool
    reply_to: int | None = None  # in groups, the message answered
    thread_id: int | None = None

    @classmethod
    def of(cls, message: TgMessage, user_id: int, reply: bool = True) -> Target:
        private = message.chat.type == ChatType.PRIVATE
        return cls(
            chat_id=message.chat.id,
            user_id=user_id,
            private=private,
            reply_to=None if private or not reply else message.message_id,
            thread_id=message.message_thread_id if message.is_topic_message else None,
        )

    async def say(self, bot: Bot, text: str) -> None:
        """A short plain message from the bot here."""
        reply = ReplyParameters(message_id=self.reply_to, allow_sending_without_reply=True)
        await bot.send_message(
            self.chat_id,
            text,
            message_thread_id=self.thread_id,
            reply_parameters=reply if self.reply_to is not None else None,
        )


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
        generations: Generations,
    ) -> None:
        self.redis = redis
        self.catalog = catalog
        self.prefs = prefs
        self.history = history
        self.pool = pool
        self.pacer = pacer
        self.quota = quota
        self.generations = generations

    def writer(self, bot: Bot, target: Target, texts: Texts, gen_id: int) -> AnswerWriter:
        """Drafts in private chats, an edited reply in groups; a Stop button either way."""
        return AnswerWriter(
            bot,
            self.pacer,
            target.chat_id,
            private=target.private,
            placeholder=texts.thinking,
            reply_to=target.reply_to,
            thread_id=target.thread_id,
            draft_id=gen_id,
            stop_markup=stop_keyboard(gen_id, texts),
        )

    async def answer(self, bot: Bot, target: Target, prompt: str, texts: Texts) -> Outcome | None:
        """Answer ``prompt`` with the user's model; None when it could not be asked
        (a limit, or an answer already being written in this chat)."""
        chat_id, user_id = target.chat_id, target.user_id
        gen_id = new_id()
        async with self.redis.pipeline(transaction=False) as pipe:
            self.prefs.queue_read(pipe, user_id)
            self.history.queue_read(pipe, chat_id, user_id)
            self.generations.queue_lock(pipe, chat_id, user_id, gen_id)
            raw_prefs, raw_history, locked = await pipe.execute()
        if not locked and not await self.generations.lock_soon(
            target.chat_id, target.user_id, gen_id
        ):
            await target.say(bot, texts.still_answering)
            return None
        outcome: Outcome | None = None
        question = Message(role="user", content=prompt)
        try:
            model = self.catalog.models[self.prefs.parse(raw_prefs).model]
            reservation = await self.quota.reserve(user_id, [model])
            if not reservation.ok(model.id):
                await target.say(bot, self.limit_text(reservation, model, texts))
                return None
            messages = fit_context(self.history.parse(raw_history), question, model.context)
            request = ChatRequest(model=model.name, messages=messages)
            writer = self.writer(bot, target, texts, gen_id)
            with self.generations.running(gen_id) as stop:
                try:
                    outcome = await generate(
                        self.pool.for_model(model),
                        model,
                        request,
                        writer,
                        texts,
                        retry_markup=retry_keyboard(gen_id, texts),
                        stop=stop,
                    )
                finally:
                    if not writer.text.strip():  # nothing reached the user: it is free
                        await self.quota.refund(reservation, [model.id])
        finally:
            await self._record(target, gen_id, question, outcome)
        return outcome

    async def _record(
        self, target: Target, gen_id: int, question: Message, outcome: Outcome | None
    ) -> None:
        """Give the chat back, and keep the exchange (or the request, for Retry)."""
        chat_id, user_id = target.chat_id, target.user_id
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                self.generations.queue_unlock(pipe, chat_id, user_id)
                if outcome is not None and outcome.ok:
                    answer = Message(role="assistant", content=outcome.text)
                    self.history.queue_append(pipe, chat_id, user_id, question, answer)
                elif outcome is not None:
                    self.generations.queue_retry(pipe, chat_id, user_id, gen_id, question.content)
                await pipe.execute()
        except RedisError as exc:  # the answer is delivered: don't tell the user otherwise
            log.error("chat %s: could not record the outcome in Redis: %s", chat_id, exc)

    def limit_text(self, reservation: Reservation, model: ModelSpec, texts: Texts) -> str:
        """Which limit stopped the request, and when it resets."""
        when = reset_time(texts, reservation.resets_at, self.quota.clock())
        if reservation.grants[model.id] == Grant.MODEL_CAP:
            return texts.limit_model.format(model=model.title, limit=model.daily_limit, **when)
        return texts.limit_overall.format(limit=self.quota.overall_cap, **when)
