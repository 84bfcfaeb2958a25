"""/compare: one question to several models at once, each answer in its own message.

One reservation covers every model of the comparison; models over a cap are skipped and
named, the rest answer concurrently (the wall time is the slowest model's). Each answer
streams by editing its own message (a chat shows one live draft at a time, so drafts
can't carry several answers), all of them sharing the chat's pacer. A comparison is a
one-off question: no history goes in and none is written. The answers are kept for two
days so that "Continue with" can start a conversation from one of them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiogram import Bot
from aiogram.types import Message as TgMessage
from aiogram.types import MessageEntity
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.catalog import ModelSpec
from bot.keyboards import compare_answer_keyboard, stop_keyboard
from bot.render import Part, utf16_len
from bot.services.answer_writer import AnswerWriter
from bot.services.chat import Target
from bot.services.generate import Outcome, generate
from bot.services.generations import new_id
from bot.services.quota import Reservation
from bot.texts import Texts
from providers import ChatRequest, Message

if TYPE_CHECKING:
    from bot.services.core import Core

log = logging.getLogger(__name__)

KEEP_SECONDS = 2 * 24 * 3600


@dataclass(frozen=True)
class Kept:
    question: str
    answer: str


class CompareStore:
    """The answers of recent comparisons, the votes they got, and the leaderboard."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    @staticmethod
    def key(user_id: int, cid: str) -> str:
        return f"compare:{{{user_id}}}:{cid}"

    @staticmethod
    def votes_key(bot_id: int) -> str:
        return f"votes:{bot_id}"

    async def keep(self, user_id: int, cid: str, question: str, model_id: str, text: str) -> None:
        key = self.key(user_id, cid)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"q": question, f"a:{model_id}": text})
            pipe.expire(key, KEEP_SECONDS)
            await pipe.execute()

    async def load(self, user_id: int, cid: str, model_id: str) -> Kept | None:
        question, answer = await self.redis.hmget(self.key(user_id, cid), ["q", f"a:{model_id}"])
        if question is None or answer is None:
            return None
        return Kept(_text(question), _text(answer))

    async def vote(self, bot_id: int, user_id: int, cid: str, model_id: str) -> bool:
        """Count a vote, once per comparison and user; False if they voted already."""
        key = self.key(user_id, cid)
        if not await self.redis.hsetnx(key, "voted", model_id):
            return False
        await self.redis.zincrby(self.votes_key(bot_id), 1, model_id)
        return True

    async def top(self, bot_id: int) -> list[tuple[str, int]]:
        rows: list[Any] = await self.redis.zrevrange(self.votes_key(bot_id), 0, -1, withscores=True)
        return [(_text(model), int(score)) for model, score in rows]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class CompareService:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.generations = core.generations
        self.catalog = core.catalog
        self.prefs = core.prefs
        self.quota = core.quota
        self.pool = core.pool
        self.pacer = core.pacer
        self.store = core.compare_store

    async def run(
        self, bot: Bot, message: TgMessage, question: str, texts: Texts
    ) -> dict[str, Outcome]:
        """Ask every model of the user's set; the outcomes of those that answered."""
        assert message.from_user is not None
        target = Target.of(message, message.from_user.id)
        user_id, gen_id = target.user_id, new_id()
        async with self.prefs.redis.pipeline(transaction=False) as pipe:
            self.prefs.queue_read(pipe, user_id)
            self.generations.queue_lock(pipe, target.chat_id, user_id, gen_id)
            raw_prefs, locked = await pipe.execute()
        if not locked and not await self.generations.lock_soon(
            target.chat_id, target.user_id, gen_id
        ):
            await target.say(bot, texts.still_answering)
            return {}
        try:
            models = [self.catalog.models[m] for m in self.prefs.parse(raw_prefs).compare]
            if len(models) < 2:
                await target.say(bot, texts.compare_need_models)
                return {}
            return await self._compare(bot, target, models, question, texts, gen_id)
        finally:
            try:
                await self.generations.unlock(target.chat_id, user_id)
            except RedisError as exc:
                log.error("compare: could not free chat %s: %s", target.chat_id, exc)

    async def _compare(
        self,
        bot: Bot,
        target: Target,
        models: list[ModelSpec],
        question: str,
        texts: Texts,
        gen_id: int,
    ) -> dict[str, Outcome]:
        reservation = await self.quota.reserve(target.user_id, models)
        for model in models:
            if not reservation.ok(model.id):
                self.core.metrics.denials.labels(reservation.grants[model.id].name.lower()).inc()
        skipped = [m.title for m in models if not reservation.ok(m.id)]
        if skipped:
            await target.say(bot, texts.compare_skipped.format(models=", ".join(skipped)))
        granted = [m for m in models if reservation.ok(m.id)]
        # The models are asked at once; the placeholders go out in the background, in
        # the set's order (each after the one before). One "typing" is enough.
        writers: list[AnswerWriter] = []
        for i, model in enumerate(granted):
            after = writers[-1].placed if writers else None
            writers.append(self.writer(bot, target, texts, model, gen_id, i, after))
        cid = secrets.token_hex(4)
        user_id = target.user_id
        outcomes = await asyncio.gather(
            *(
                self._ask(model, writer, question, texts, cid, user_id, reservation, (gen_id, i))
                for i, (model, writer) in enumerate(zip(granted, writers, strict=True))
            )
        )
        return {m.id: o for m, o in zip(granted, outcomes, strict=True)}

    async def _ask(
        self,
        model: ModelSpec,
        writer: AnswerWriter,
        question: str,
        texts: Texts,
        cid: str,
        user_id: int,
        reservation: Reservation,
        generation: tuple[int, int],  # the comparison's id, and this model's number in it
    ) -> Outcome:
        """One model's answer, stopped by its own Stop button or by /stop for all; its
        share of the reservation back if no text was shown."""
        request = ChatRequest(model=model.name, messages=[Message(role="user", content=question)])

        async def keep(text: str) -> None:  # before its "Continue with" button shows
            await self.store.keep(user_id, cid, question, model.id, text)

        with self.generations.running(*generation) as stop:
            outcome = await generate(
                self.pool.for_model(model),
                model,
                request,
                writer,
                texts,
                reply_markup=compare_answer_keyboard(cid, model, texts),
                footer=True,
                stop=stop,
                refund=lambda: self.quota.refund(reservation, [model.id]),
                on_complete=keep,
            )
        self.core.metrics.observe(model, outcome)
        return outcome

    def writer(
        self,
        bot: Bot,
        target: Target,
        texts: Texts,
        model: ModelSpec,
        gen_id: int,
        part: int,
        after: asyncio.Event | None,
    ) -> AnswerWriter:
        """Model number ``part`` of the comparison ``gen_id``: an edited message under
        its title, with its own Stop button; the first one shows "typing"."""
        title = model.title
        header = Part(f"{title}\n", [MessageEntity(type="bold", offset=0, length=utf16_len(title))])
        return AnswerWriter(
            bot,
            self.pacer,
            target.chat_id,
            private=target.private,
            placeholder=texts.thinking,
            reply_to=target.reply_to,
            thread_id=target.thread_id,
            header=header,
            use_draft=False,
            typing=part == 0,
            stop_markup=stop_keyboard(gen_id, texts, part),
            after=after,
        )
