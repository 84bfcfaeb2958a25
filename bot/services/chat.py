"""A chat turn: the user's model and history from Redis with the chat's lock and any
held paste parts (one round trip), the reservation (one), the model's answer streamed
into the chat, and the outcome recorded with the lock given back (one): three round
trips per message."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiogram import Bot
from aiogram.enums import ChatType
from aiogram.types import Message as TgMessage
from aiogram.types import ReplyParameters
from redis.exceptions import RedisError

from bot.catalog import ModelSpec
from bot.keyboards import retry_keyboard, stop_keyboard
from bot.services.answer_writer import AnswerWriter
from bot.services.generate import Outcome, generate
from bot.services.generations import Photo, Retry, new_id
from bot.services.history import fit_context
from bot.services.media import vision_hint
from bot.services.paste import join
from bot.services.quota import Grant, Reservation
from bot.texts import LANGUAGES, Texts
from bot.texts.base import reset_time
from providers import ChatRequest, Image, Message

if TYPE_CHECKING:
    from bot.services.core import Core

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Where an answer goes and whose it is."""

    chat_id: int
    user_id: int
    private: bool
    reply_to: int | None = None  # in groups, the message answered
    thread_id: int | None = None
    message_id: int | None = None  # the user's message, when there is one

    @classmethod
    def of(cls, message: TgMessage, user_id: int, reply: bool = True) -> Target:
        private = message.chat.type == ChatType.PRIVATE
        return cls(
            chat_id=message.chat.id,
            user_id=user_id,
            private=private,
            reply_to=None if private or not reply else message.message_id,
            thread_id=message.message_thread_id if message.is_topic_message else None,
            message_id=message.message_id,
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
    def __init__(self, core: Core) -> None:
        self.core = core
        self.redis = core.redis
        self.catalog = core.catalog
        self.prefs = core.prefs
        self.history = core.history
        self.quota = core.quota
        self.generations = core.generations
        self.metrics = core.metrics

    def writer(self, bot: Bot, target: Target, texts: Texts, gen_id: int) -> AnswerWriter:
        """Drafts in private chats, an edited reply in groups; a Stop button either way."""
        return AnswerWriter(
            bot,
            self.core.pacer,
            target.chat_id,
            private=target.private,
            placeholder=texts.thinking,
            reply_to=target.reply_to,
            thread_id=target.thread_id,
            draft_id=gen_id,
            stop_markup=stop_keyboard(gen_id, texts),
        )

    async def answer(
        self,
        bot: Bot,
        target: Target,
        prompt: str,
        texts: Texts,
        images: Sequence[Image] = (),
        shown: str | None = None,
        photo: Photo | None = None,
    ) -> Outcome | None:
        """Answer ``prompt`` (after any parts of a long paste held before it) with the
        user's model; None when it could not be asked (too long, a limit, a model that
        can't see the ``images``, or an answer already being written in this chat).

        ``images`` go to the model with the prompt; the history keeps only ``shown`` in
        their place (e.g. "[photo] caption"), never their bytes. Such a turn has a Retry
        only when it is one Telegram ``photo``, which Retry downloads again."""
        chat_id, user_id = target.chat_id, target.user_id
        gen_id = new_id()
        async with self.redis.pipeline(transaction=False) as pipe:
            self.prefs.queue_read(pipe, user_id)
            self.history.queue_read(pipe, chat_id, user_id)
            self.generations.queue_lock(pipe, chat_id, user_id, gen_id)
            self.core.pastes.queue_take(pipe, chat_id, user_id)
            raw_prefs, raw_history, locked, held, _ = await pipe.execute()
        prefs = self.prefs.parse(raw_prefs)
        if prefs.language is not None:  # chosen with /language (see TextsMiddleware)
            texts = LANGUAGES[prefs.language]
        if not locked and not await self.generations.lock_soon(chat_id, user_id, gen_id):
            await target.say(bot, texts.still_answering)
            return None
        outcome: Outcome | None = None
        model = self.catalog.models[prefs.model]
        if target.message_id is not None:
            held = await self.core.pastes.complete(chat_id, user_id, target.message_id, held)
        question = Message(role="user", content=join(held, prompt), images=tuple(images))
        retryable = not images or (photo is not None and len(images) == 1)
        retry = Retry(chat_id, question.content, photo) if retryable else None
        kept = Message(role="user", content=join(held, shown)) if images and shown else question
        try:
            if images and not model.vision:
                await target.say(bot, vision_hint(self.catalog, model, texts))
                return None
            limit = self.core.settings.max_prompt_chars
            if len(question.content) > limit:
                length = len(question.content)
                await target.say(bot, texts.prompt_too_long.format(length=length, limit=limit))
                return None
            reservation = await self.quota.reserve(user_id, [model])
            if not reservation.ok(model.id):
                self.metrics.denials.labels(reservation.grants[model.id].name.lower()).inc()
                await target.say(bot, self.limit_text(reservation, model, texts))
                return None
            messages = fit_context(self.history.parse(raw_history), question, model.context)
            request = ChatRequest(model=model.name, messages=messages)
            writer = self.writer(bot, target, texts, gen_id)
            with self.generations.running(gen_id) as stop:
                outcome = await generate(
                    self.core.pool.for_model(model),
                    model,
                    request,
                    writer,
                    texts,
                    retry_markup=retry_keyboard(gen_id, texts) if retry else None,
                    stop=stop,
                    refund=lambda: self.quota.refund(reservation, [model.id]),
                )
            self.metrics.observe(model, outcome)
        finally:
            await self._record(target, gen_id, kept, model, outcome, retry)
        return outcome

    async def _record(
        self,
        target: Target,
        gen_id: int,
        question: Message,
        model: ModelSpec,
        outcome: Outcome | None,
        retry: Retry | None,
    ) -> None:
        """Give the chat back, keep the exchange (or the request, for Retry), count it."""
        chat_id, user_id = target.chat_id, target.user_id
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                self.generations.queue_unlock(pipe, chat_id, user_id)
                if outcome is not None:
                    date, _ = self.quota.day()
                    failed = outcome.error is not None
                    self.core.stats.queue_request(
                        pipe, date, user_id, model.id, model.provider, failed
                    )
                if outcome is not None and outcome.ok:
                    answer = Message(role="assistant", content=outcome.text)
                    self.history.queue_append(pipe, chat_id, user_id, question, answer)
                elif outcome is not None and retry is not None:
                    self.generations.queue_retry(pipe, user_id, gen_id, retry)
                await pipe.execute()
        except Exception as exc:  # the answer is delivered: don't tell the user otherwise
            log.error("chat %s: could not record the outcome in Redis: %s", chat_id, exc)
            if not isinstance(exc, RedisError):  # the pipeline never ran: free the chat
                with contextlib.suppress(RedisError):
                    await self.generations.unlock(chat_id, user_id)

    def limit_text(self, reservation: Reservation, model: ModelSpec, texts: Texts) -> str:
        """Which limit stopped the request, and when it resets."""
        when = reset_time(texts, reservation.resets_at, self.quota.clock())
        if reservation.grants[model.id] == Grant.MODEL_CAP:
            return texts.limit_model.format(model=model.title, limit=model.daily_limit, **when)
        return texts.limit_overall.format(limit=self.quota.overall_cap, **when)
