"""Admission and accounting, written once for every kind of request (a chat turn,
/compare, /image, a voice message, Retry): is the model usable, is the prompt within
bounds, can a model that is sent images see them, what the daily limits allow (one
reservation, one round trip); the refusal in the user's language when not; afterwards,
the refund when the provider failed before doing billable work, and the request counted
in the stats."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiogram import Bot
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from bot.catalog import Catalog, ModelSpec
from bot.metrics import Metrics
from bot.services.notices import limit_text, prompt_too_long, skipped_text, vision_hint
from bot.services.outcome import Outcome
from bot.services.quota import Grant, Quota, Reservation
from bot.services.stats import Stats
from bot.services.target import Target
from bot.texts import Texts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ticket:
    """An admitted request: its reservation and the models it may ask."""

    user_id: int
    reservation: Reservation
    models: list[ModelSpec]
    date: str  # the day it counts in, for the stats


class Admission:
    def __init__(
        self,
        redis: Redis,
        catalog: Catalog,
        quota: Quota,
        stats: Stats,
        metrics: Metrics,
        max_prompt_chars: int,
    ) -> None:
        self.redis = redis
        self.catalog = catalog
        self.quota = quota
        self.stats = stats
        self.metrics = metrics
        self.max_prompt_chars = max_prompt_chars

    async def admit(
        self,
        bot: Bot,
        target: Target,
        texts: Texts,
        models: Sequence[ModelSpec],
        *,
        prompt: str = "",
        images: bool = False,
        partial: bool = False,
        switchable: bool = True,
    ) -> Ticket | None:
        """Reserve a request to ``models``, or tell the user why not and return None.

        With ``partial`` (a comparison), the models over a limit are skipped (and named)
        while the others go ahead. ``switchable``: the user can choose another model of
        this kind (a refusal may suggest /model)."""
        usable = [m for m in models if not self.catalog.is_hidden(m.id)]
        if not usable:
            await target.say(bot, texts.error_not_found.format(model=models[0].title))
            return None
        if len(prompt) > self.max_prompt_chars:
            await target.say(bot, prompt_too_long(texts, len(prompt), self.max_prompt_chars))
            return None
        if images and not usable[0].vision:
            await target.say(bot, vision_hint(self.catalog, usable[0], texts))
            return None
        reservation = await self.quota.reserve(target.user_id, usable)
        denied = [m for m in usable if not reservation.ok(m.id)]
        for model in denied:
            self.metrics.denials.labels(reservation.grants[model.id].name.lower()).inc()
        granted = [m for m in usable if reservation.ok(m.id)]
        if not denied:
            return Ticket(target.user_id, reservation, granted, reservation.date)
        now = self.quota.clock()
        if not granted or not partial:
            overall = [m for m in denied if reservation.grants[m.id] == Grant.OVERALL_CAP]
            if partial and not overall:  # each model's own cap: name them, and the reset
                await target.say(bot, skipped_text(texts, reservation, denied, now))
            else:
                cap = self.quota.overall_cap
                first = (overall or denied)[0]
                refusal = limit_text(texts, reservation, first, cap, now, switchable=switchable)
                await target.say(bot, refusal)
            return None
        await target.say(bot, skipped_text(texts, reservation, denied, now))
        return Ticket(target.user_id, reservation, granted, reservation.date)

    async def refund(self, ticket: Ticket, model: ModelSpec) -> None:
        await self.quota.refund(ticket.reservation, [model.id])

    async def settle(self, ticket: Ticket, model: ModelSpec, outcome: Outcome) -> None:
        """After the answer: give the request back when the provider failed before doing
        billable work (or the bot stopped first); otherwise it stays counted."""
        if outcome.free:
            await self.refund(ticket, model)

    def queue_counted(
        self, pipe: Pipeline, ticket: Ticket, model: ModelSpec, outcome: Outcome | None
    ) -> None:
        """/stats: one request to ``model`` (and its provider's failure, if it failed)."""
        failed = outcome is not None and outcome.error is not None
        self.stats.queue_request(
            pipe, ticket.date, ticket.user_id, model.id, model.provider, failed
        )
        if ticket.reservation.paid(model.id):  # /stats: paid credits spent
            self.quota.queue_spent(pipe, model.cost)

    async def count(self, ticket: Ticket, outcomes: Sequence[tuple[ModelSpec, Outcome]]) -> None:
        """/stats for requests with no pipeline of their own to ride on (one round trip)."""
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for model, outcome in outcomes:
                    self.queue_counted(pipe, ticket, model, outcome)
                await pipe.execute()
        except RedisError as exc:
            log.error("could not count %d request(s) in Redis: %s", len(outcomes), exc)
