"""A chat turn: the user's model and history from Redis with the chat's lock and any
held paste parts (one round trip), the admission (one: the reservation), the model's
answer streamed into the chat, and the outcome recorded with the lock given back (one):
three round trips per message."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Sequence

from aiogram import Bot
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from bot.catalog import Catalog, ModelSpec
from bot.keyboards import retry_keyboard
from bot.services.admission import Admission, Ticket
from bot.services.answers import Answers
from bot.services.generations import Generations, Photo, Retry, new_id
from bot.services.history import History, fit_context
from bot.services.outcome import Delivery, Outcome
from bot.services.paste import Pastes, join
from bot.services.prefs import Prefs
from bot.services.target import Target
from bot.texts import LANGUAGES, Texts
from providers import ChatRequest, Image, Message

log = logging.getLogger(__name__)

# An outcome is tried again every RECORD_EVERY seconds while Redis is away, for as long
# as the chat's lock lease lasts: a Sentinel failover's gap (about 12 s) is covered, and
# the chat is freed as soon as the new master takes writes.
RECORD_SECONDS = 30.0
RECORD_EVERY = 1.0


class ChatService:
    def __init__(
        self,
        redis: Redis,
        catalog: Catalog,
        prefs: Prefs,
        history: History,
        generations: Generations,
        pastes: Pastes,
        admission: Admission,
        answers: Answers,
    ) -> None:
        self.redis = redis
        self.catalog = catalog
        self.prefs = prefs
        self.history = history
        self.generations = generations
        self.pastes = pastes
        self.admission = admission
        self.answers = answers

    async def answer(
        self,
        bot: Bot,
        target: Target,
        prompt: str,
        texts: Texts,
        images: Sequence[Image] = (),
        shown: str | None = None,
        photo: Photo | None = None,
        model: ModelSpec | None = None,
        fresh: Retry | None = None,
    ) -> Outcome | None:
        """Answer ``prompt`` (after any parts of a long paste held before it) with the
        user's model; None when it could not be asked (refused by admission, or an
        answer already being written in this chat).

        ``images`` go to the model with the prompt; the history keeps only ``shown`` in
        their place (e.g. "[photo] caption"), never their bytes. Such a turn has a Retry
        only when it is one Telegram ``photo``, which Retry downloads again.

        ``fresh`` (a merge): ``model`` answers ``prompt`` alone, with no history; a
        complete answer starts the conversation afresh (``shown`` and the answer) with
        that model as the user's; ``fresh`` is what its Retry asks again."""
        chat_id, user_id = target.chat_id, target.user_id
        gen_id = new_id()
        async with self.redis.pipeline(transaction=False) as pipe:
            self.prefs.queue_read(pipe, user_id)
            self.history.queue_read(pipe, chat_id, user_id)
            self.generations.queue_lock(pipe, chat_id, user_id, gen_id)
            self.pastes.queue_take(pipe, chat_id, user_id)
            message_id = target.message_id
            late = message_id is not None and self.pastes.late(chat_id, user_id, message_id)
            raw_prefs, raw_history, locked, held, _ = await pipe.execute()
        prefs = self.prefs.parse(raw_prefs)
        if prefs.language is not None:  # chosen with /language (see TextsMiddleware)
            texts = LANGUAGES[prefs.language]
        if not locked and not await self.generations.lock_soon(chat_id, user_id, gen_id):
            await target.say(bot, texts.still_answering)
            return None
        model = model or self.catalog.models[prefs.model]
        if message_id is not None:
            held = await self.pastes.complete(chat_id, user_id, message_id, held, late)
        question = Message(role="user", content=join(held, prompt), images=tuple(images))
        retryable = not images or (photo is not None and len(images) == 1)
        retry = fresh or (Retry(chat_id, question.content, photo) if retryable else None)
        kept = Message(role="user", content=join(held, shown)) if shown else question
        ticket: Ticket | None = None
        outcome: Outcome | None = None
        try:
            async with self.generations.lease(chat_id, user_id, gen_id):
                asked = kept if fresh else question  # a merge's answers are not the user's
                ticket = await self.admission.admit(
                    bot, target, texts, [model], prompt=asked.content, images=bool(images)
                )
                if ticket is None:
                    return None
                history = [] if fresh else self.history.parse(raw_history)
                messages = fit_context(history, question, model.context)
                request = ChatRequest(model=model.name, messages=messages)
                writer = self.answers.writer(bot, target, texts, gen_id)
                delivery = Delivery(retry_markup=retry_keyboard(gen_id, texts) if retry else None)
                outcome = await self.answers.stream(
                    ticket, model, request, writer, texts, (gen_id, 0), delivery
                )
        finally:
            with self.generations.finishing(chat_id, user_id):
                await self._record(target, gen_id, kept, model, ticket, outcome, retry, fresh)
        return outcome

    async def _record(
        self,
        target: Target,
        gen_id: int,
        question: Message,
        model: ModelSpec,
        ticket: Ticket | None,
        outcome: Outcome | None,
        retry: Retry | None,
        fresh: Retry | None = None,
    ) -> None:
        """Give the chat back, keep the exchange (or the request, for Retry), count it;
        a fresh exchange replaces the conversation and makes its model the user's.
        While Redis is away this is tried a few more times: the answer was delivered, and
        the conversation should not lose it."""
        chat_id, user_id = target.chat_id, target.user_id
        give_up = time.monotonic() + RECORD_SECONDS
        recorded = False  # a send went through: only the lock is given back again

        def queue(pipe: Pipeline, again: bool) -> None:
            # Under Sentinel the record is sent again while no replica has it: a failover
            # would bring the lock back on the new primary, and the user's next message
            # would be told an answer is still being written. The rest is not sent twice
            # (it would count twice).
            nonlocal recorded
            recorded = recorded or again
            self.generations.queue_unlock(pipe, chat_id, user_id, gen_id)
            if recorded:
                return
            if ticket is not None:
                self.admission.queue_counted(pipe, ticket, model, outcome)
            if outcome is not None and outcome.ok:
                answer = Message(role="assistant", content=outcome.text)
                if fresh is not None:
                    self.history.queue_clear(pipe, chat_id, user_id)
                    self.prefs.queue_set(pipe, user_id, model=model.id)
                self.history.queue_append(pipe, chat_id, user_id, question, answer)
            elif ticket is not None and retry is not None:  # failed, stopped, cut
                self.generations.queue_retry(pipe, user_id, gen_id, retry)

        for attempt in itertools.count():
            try:
                await self.generations.replicated.execute(self.redis, queue)
                return
            except RedisError as exc:
                if time.monotonic() >= give_up:
                    log.error("chat %s: outcome not recorded, Redis away: %s", chat_id, exc)
                    return
                if attempt == 0:
                    log.error("chat %s: could not record the outcome in Redis: %s", chat_id, exc)
                await asyncio.sleep(RECORD_EVERY)
            except Exception:  # the pipeline never ran: free the chat
                log.exception("chat %s: could not record the outcome", chat_id)
                with contextlib.suppress(RedisError):
                    await self.generations.unlock(chat_id, user_id, gen_id)
                return
