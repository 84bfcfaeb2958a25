"""/compare: one question to several models at once, each answer in its own message.

One admission covers every model of the comparison; models over a cap are skipped and
named, the rest answer concurrently (the wall time is the slowest model's). Each answer
streams by editing its own message (a chat shows one live draft at a time, so drafts
can't carry several answers), all of them sharing the chat's pacer. A comparison is a
one-off question: no history goes in and none is written. The answers are kept for two
days so that "Continue with" can start a conversation from one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Sequence

from aiogram import Bot
from aiogram.types import MessageEntity
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.catalog import Catalog, ModelSpec
from bot.keyboards import compare_answer_keyboard, retry_keyboard
from bot.render import Part, utf16_len
from bot.services.admission import Admission, Ticket
from bot.services.answer_writer import AnswerWriter
from bot.services.answers import Answers
from bot.services.compare_store import CompareStore
from bot.services.generations import Generations, Retry, new_id
from bot.services.outcome import Delivery, Outcome
from bot.services.prefs import Prefs, UserPrefs
from bot.services.target import Target
from bot.texts import Texts
from providers import ChatRequest, Message

log = logging.getLogger(__name__)

BLIND_TITLE_ROOM = 72  # units kept free in a blind answer's first message for its title


def title_header(model: ModelSpec) -> Part:
    """The model's title in bold, on a line of its own above its answer."""
    title = model.title
    return Part(f"{title}\n", [MessageEntity(type="bold", offset=0, length=utf16_len(title))])


class CompareService:
    def __init__(
        self,
        redis: Redis,
        catalog: Catalog,
        prefs: Prefs,
        generations: Generations,
        admission: Admission,
        answers: Answers,
        store: CompareStore,
    ) -> None:
        self.redis = redis
        self.catalog = catalog
        self.prefs = prefs
        self.generations = generations
        self.admission = admission
        self.answers = answers
        self.store = store

    @contextlib.asynccontextmanager
    async def holding(
        self, bot: Bot, target: Target, texts: Texts
    ) -> AsyncIterator[tuple[UserPrefs, int] | None]:
        """The chat's lock for a one-off question to several models (its lease renewed
        while they answer), with the user's preferences and the generation id; None
        (the user told) while another answer is being written in this chat."""
        chat_id, user_id, gen_id = target.chat_id, target.user_id, new_id()
        async with self.redis.pipeline(transaction=False) as pipe:
            self.prefs.queue_read(pipe, user_id)
            self.generations.queue_lock(pipe, chat_id, user_id, gen_id)
            raw_prefs, locked = await pipe.execute()
        if not locked and not await self.generations.lock_soon(chat_id, user_id, gen_id):
            await target.say(bot, texts.still_answering)
            yield None
            return
        try:
            async with self.generations.lease(chat_id, user_id, gen_id):
                yield self.prefs.parse(raw_prefs), gen_id
        finally:
            try:
                await self.generations.unlock(chat_id, user_id, gen_id)
            except RedisError as exc:
                log.error("compare: could not free chat %s: %s", chat_id, exc)

    async def run(
        self,
        bot: Bot,
        target: Target,
        question: str,
        texts: Texts,
        only: ModelSpec | None = None,
    ) -> dict[str, Outcome]:
        """Ask every model of the user's set (or ``only`` that one: a Retry of its
        answer); the outcomes of those that answered."""
        async with self.holding(bot, target, texts) as held:
            if held is None:
                return {}
            prefs, gen_id = held
            models = [self.catalog.models[m] for m in prefs.compare]
            if only is not None:
                models = [only]
            elif len(models) < 2:
                await target.say(bot, texts.compare_need_models)
                return {}
            ticket = await self.admission.admit(
                bot, target, texts, models, prompt=question, partial=True
            )
            if ticket is None:
                return {}
            headers = [title_header(m) for m in ticket.models]
            cid = secrets.token_hex(4)
            answered = await self.ask(bot, target, ticket, question, texts, gen_id, cid, headers)
            return {m.id: outcome for m, (outcome, _) in zip(ticket.models, answered, strict=True)}

    async def ask(
        self,
        bot: Bot,
        target: Target,
        ticket: Ticket,
        question: str,
        texts: Texts,
        gen_id: int,
        cid: str,
        headers: Sequence[Part],
        blind: bool = False,
    ) -> list[tuple[Outcome, AnswerWriter]]:
        """Every model of ``ticket`` at once, each answer under its header; the answers
        kept under ``cid`` (for "Continue with" and "Merge"). A comparison's answers get
        their buttons (Continue with, Best; Retry when one failed); ``blind`` ones (a
        battle) get none, and room in their first message for a longer header later."""
        # The placeholders go out in the background, in order (each after the one
        # before). One "typing" is enough.
        writers: list[AnswerWriter] = []
        for i, header in enumerate(headers):
            after = writers[-1] if writers else None
            room = BLIND_TITLE_ROOM if blind else 0
            writers.append(self.answers.writer(bot, target, texts, gen_id, i, header, after, room))
        retry_ids = [new_id() for _ in ticket.models]
        outcomes = await asyncio.gather(
            *(
                self._ask(ticket, model, writer, question, texts, cid, (gen_id, i), retry_id, blind)
                for i, (model, writer, retry_id) in enumerate(
                    zip(ticket.models, writers, retry_ids, strict=True)
                )
            )
        )
        answered = list(zip(ticket.models, outcomes, strict=True))
        try:  # /stats, and a Retry for each answer that failed or was stopped
            async with self.redis.pipeline(transaction=False) as pipe:
                for (model, outcome), retry_id in zip(answered, retry_ids, strict=True):
                    self.admission.queue_counted(pipe, ticket, model, outcome)
                    if not outcome.ok and not blind:
                        retry = Retry(target.chat_id, question, kind="compare", model=model.id)
                        self.generations.queue_retry(pipe, ticket.user_id, retry_id, retry)
                await pipe.execute()
        except RedisError as exc:
            log.error("compare: could not record the outcomes: %s", exc)
        return list(zip(outcomes, writers, strict=True))

    async def _ask(
        self,
        ticket: Ticket,
        model: ModelSpec,
        writer: AnswerWriter,
        question: str,
        texts: Texts,
        cid: str,
        generation: tuple[int, int],  # the comparison's id, and this model's number in it
        retry_id: int,
        blind: bool,
    ) -> Outcome:
        """One model's answer, stopped by its own Stop button or by /stop for all."""
        request = ChatRequest(model=model.name, messages=[Message(role="user", content=question)])

        async def keep(text: str) -> None:  # before its "Continue with" button shows
            await self.store.keep(ticket.user_id, cid, question, model.id, text)

        delivery = Delivery(
            reply_markup=None if blind else compare_answer_keyboard(cid, model, texts),
            retry_markup=None if blind else retry_keyboard(retry_id, texts),
            footer=True,
        )
        return await self.answers.stream(
            ticket, model, request, writer, texts, generation, delivery, on_complete=keep
        )
