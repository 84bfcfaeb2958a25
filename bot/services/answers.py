"""The one path from an admitted request to what the user sees: a streamed answer (chat,
/compare, and every later kind) written by an answer writer, stoppable from any replica,
settled (a refund when the provider did no billable work) before its buttons show; or a
one-off provider call (a picture, a transcript) with the same accounting."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiogram import Bot
from redis.exceptions import RedisError

from bot.catalog import ModelSpec
from bot.keyboards import retry_keyboard, stop_keyboard
from bot.metrics import Metrics
from bot.render import Part
from bot.services import gate
from bot.services.admission import Admission, Ticket
from bot.services.answer_writer import AnswerWriter
from bot.services.generate import generate
from bot.services.generations import Generations, Retry, new_id
from bot.services.layouts import RichSwitch
from bot.services.notices import describe
from bot.services.outcome import PLAIN, Delivery, Outcome
from bot.services.pacer import Pacer
from bot.services.pool import ProviderPool
from bot.services.target import Target
from bot.texts import Texts
from providers import ChatRequest, Provider, ProviderError

log = logging.getLogger(__name__)

T = TypeVar("T")


class Answers:
    def __init__(
        self,
        admission: Admission,
        pool: ProviderPool,
        pacer: Pacer,
        generations: Generations,
        metrics: Metrics,
        rich: RichSwitch | None = None,
    ) -> None:
        self.admission = admission
        self.rich = rich or RichSwitch("off")
        self.pool = pool
        self.pacer = pacer
        self.generations = generations
        self.metrics = metrics

    def writer(
        self,
        bot: Bot,
        target: Target,
        texts: Texts,
        gen_id: int,
        part: int | None = None,
        header: Part | None = None,
        after: AnswerWriter | None = None,
        header_room: int = 0,
    ) -> AnswerWriter:
        """A chat answer (``part`` None): a draft in private chats, an edited reply in
        groups. One answer of several (``part`` n of a comparison): always an edited
        message under its ``header``, placed ``after`` the one before it, the first one
        showing "typing". A Stop button either way."""
        return AnswerWriter(
            bot,
            self.pacer,
            target,
            texts=texts,
            header=header,
            header_room=header_room,
            use_draft=None if part is None else False,
            typing=not part,
            draft_id=gen_id,
            stop_markup=stop_keyboard(gen_id, texts, part),
            after=after.placed if after is not None else None,
            rich=self.rich,
        )

    async def stream(
        self,
        ticket: Ticket,
        model: ModelSpec,
        request: ChatRequest,
        writer: AnswerWriter,
        texts: Texts,
        generation: tuple[int, int],  # the generation's id, and the part (0: all of it)
        delivery: Delivery = PLAIN,
        on_complete: Callable[[str], Awaitable[object]] | None = None,
    ) -> Outcome:
        """``model``'s answer to ``request``, streamed into ``writer``. ``on_complete``
        gets a complete answer's text before its buttons show."""

        async def settle(outcome: Outcome) -> None:
            await self.admission.settle(ticket, model, outcome)
            if outcome.ok and on_complete is not None:
                await on_complete(outcome.text)

        gate.started()  # from here on this update waits on its model
        with self.generations.running(*generation) as stop:
            outcome = await generate(
                self.pool.for_model(model), model, request, writer, texts, delivery, stop, settle
            )
        self.metrics.observe(model, outcome)
        return outcome

    async def once(
        self,
        bot: Bot,
        target: Target,
        texts: Texts,
        ticket: Ticket,
        model: ModelSpec,
        work: Callable[[Provider], Awaitable[T]],
        *,
        switchable: bool = True,
        retry: Retry | None = None,
    ) -> T | None:
        """One provider call for an admitted request (a picture, a transcript), counted
        in the stats. When the provider fails, the request is given back (it did no
        billable work) and the user told why, with a Retry button for ``retry``; None
        then."""
        gate.started()
        try:
            result = await work(self.pool.for_model(model))
        except ProviderError as exc:
            log.warning("%s failed: %s: %s", model.id, type(exc).__name__, exc)
            await self.admission.refund(ticket, model)
            retry_id = new_id()
            try:
                async with self.admission.redis.pipeline(transaction=False) as pipe:
                    self.admission.queue_counted(pipe, ticket, model, Outcome("", exc))
                    if retry is not None:
                        self.generations.queue_retry(pipe, ticket.user_id, retry_id, retry)
                    await pipe.execute()
            except RedisError as error:
                log.error("could not record a failed %s request: %s", model.id, error)
                retry = None
            markup = retry_keyboard(retry_id, texts) if retry is not None else None
            text = describe(exc, texts, model, switchable=switchable)
            await target.say(bot, text, reply_markup=markup)
            return None
        except BaseException:  # cancelled (shutdown) before the provider answered
            await self.admission.refund(ticket, model)
            raise
        await self.admission.count(ticket, [(model, Outcome("", None))])
        return result
