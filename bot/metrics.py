"""Prometheus metrics: one registry per app, served as ``/metrics`` beside ``/healthz``:
on the webhook server, or in polling mode on METRICS_PORT."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.catalog import ModelSpec
from bot.services.outcome import Outcome

if TYPE_CHECKING:  # aiohttp.web is imported when a server starts (polling needs none)
    from aiohttp import web

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.updates = Counter("bot_updates_total", "Updates handled", ["type"], registry=r)
        self.answers = Counter(
            "bot_answers_total",
            "Answers by model and how they ended",
            ["model", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "bot_provider_seconds",
            "Request to last chunk",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "bot_time_to_first_token_seconds",
            "Request to first text",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "bot_provider_errors_total",
            "Provider failures by kind",
            ["provider", "kind"],
            registry=r,
        )
        self.denials = Counter(
            "bot_limit_denials_total", "Requests refused by a daily limit", ["limit"], registry=r
        )
        self.telegram_429 = Counter(
            "bot_telegram_flood_waits_total", "Telegram 429 answers", ["method"], registry=r
        )

    def observe(self, model: ModelSpec, outcome: Outcome) -> None:
        """Record one model answer."""
        if outcome.stopped:
            kind = "stopped"
        elif outcome.error is not None:
            kind = "error"
            self.errors.labels(model.provider, type(outcome.error).__name__).inc()
        else:
            kind = "ok"
        self.answers.labels(model.id, kind).inc()
        self.latency.labels(model.provider).observe(outcome.elapsed)
        if outcome.ttft is not None:
            self.ttft.labels(model.provider).observe(outcome.ttft)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def handle(self, request: web.Request) -> web.Response:
        from aiohttp import web

        response = web.Response(body=self.render())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response


class FloodCounter(BaseRequestMiddleware):
    """A Bot session middleware counting Telegram's 429s, whichever call got them."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        try:
            return await make_request(bot, method)
        except TelegramRetryAfter:
            self.metrics.telegram_429.labels(type(method).__name__).inc()
            raise


class UpdateCounter:
    """An outer update middleware counting updates by type."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(
        self,
        handler: Callable[[Any, dict[str, Any]], Awaitable[Any]],
        event: Any,
        data: dict[str, Any],
    ) -> Any:
        self.metrics.updates.labels(getattr(event, "event_type", "unknown")).inc()
        return await handler(event, data)


HEALTH_PATH = "/healthz"
HEALTH_TIMEOUT_SECONDS = 3.0


async def health(redis: Redis) -> web.Response:
    """200 ``ok`` when Redis answers PING, 503 otherwise."""
    from aiohttp import web

    try:
        async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
            await redis.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("health: Redis does not answer: %s", exc)
        return web.Response(status=503, text="redis unavailable")
    return web.Response(text="ok")


def add_routes(web_app: web.Application, metrics: Metrics, redis: Redis) -> None:
    """``/metrics`` and ``/healthz`` on a server (the webhook's, or their own)."""

    async def healthz(request: web.Request) -> web.Response:
        return await health(redis)

    web_app.router.add_get("/metrics", metrics.handle)
    web_app.router.add_get(HEALTH_PATH, healthz)


async def serve(metrics: Metrics, redis: Redis, host: str, port: int) -> web.AppRunner:
    """Polling mode: ``/metrics`` and ``/healthz`` on their own port."""
    from aiohttp import web

    web_app = web.Application()
    add_routes(web_app, metrics, redis)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
