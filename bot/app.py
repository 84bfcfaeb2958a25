"""Composition root: Redis, providers and services built once, handed to the dispatcher as
keyword arguments (aiogram injects them into handlers by parameter name)."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from dataclasses import dataclass
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import BotCommand, BotCommandScopeDefault
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from bot import redact
from bot.catalog import Catalog, CatalogError, load_catalog
from bot.handlers import get_routers
from bot.middlewares import InFlight, TextsMiddleware
from bot.services.chat import ChatService
from bot.services.compare import CompareService, CompareStore
from bot.services.generations import Generations
from bot.services.history import History
from bot.services.pacer import Pacer
from bot.services.pool import ProviderPool
from bot.services.prefs import Prefs
from bot.services.quota import Quota
from bot.settings import Settings
from bot.telegram import make_bot
from bot.texts import EN, LANGUAGES
from bot.webhook import run_webhook

log = logging.getLogger(__name__)


@dataclass
class App:
    """Everything the running bot holds, and how to stop it cleanly."""

    settings: Settings
    catalog: Catalog
    redis: Redis
    pool: ProviderPool
    bot: Bot
    dispatcher: Dispatcher
    in_flight: InFlight
    generations: Generations

    @classmethod
    def build(cls, settings: Settings, catalog: Catalog) -> App:
        # A blocking pool as large as the handlers in flight: a burst waits for a
        # connection instead of failing as if Redis were down.
        connections = BlockingConnectionPool.from_url(
            settings.redis_url.get_secret_value(),
            max_connections=settings.max_concurrent_answers + 20,
            timeout=10,
            socket_timeout=5,
            socket_connect_timeout=3,
            health_check_interval=30,
            # a short retry: an outage is told to the user in about a second, and the
            # next request reconnects by itself once Redis is back
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        )
        redis = Redis(connection_pool=connections)
        pool = ProviderPool(catalog)
        prefs = Prefs(redis, catalog)
        history = History(
            redis, settings.history_max_messages, int(settings.history_ttl_hours * 3600)
        )
        pacer = Pacer()
        quota = Quota(redis, catalog, settings.timezone, settings.admin_ids)
        compare_store = CompareStore(redis)
        bot = make_bot(settings)
        generations = Generations(redis, bot.id)
        services: dict[str, Any] = {
            "settings": settings,
            "catalog": catalog,
            "redis": redis,
            "pool": pool,
            "prefs": prefs,
            "history": history,
            "pacer": pacer,
            "quota": quota,
            "compare_store": compare_store,
            "generations": generations,
            "chat_service": ChatService(
                redis, catalog, prefs, history, pool, pacer, quota, generations
            ),
            "compare_service": CompareService(
                catalog, prefs, quota, pool, pacer, compare_store, generations
            ),
        }
        dispatcher = Dispatcher(**services)
        in_flight = InFlight()
        dispatcher.update.outer_middleware(in_flight)
        dispatcher.update.outer_middleware(TextsMiddleware())
        dispatcher.include_routers(*get_routers())
        return cls(settings, catalog, redis, pool, bot, dispatcher, in_flight, generations)

    async def set_commands(self) -> None:
        """Start-up shared by both modes: the command menus, and the control channel
        (Stop and reload from other replicas)."""
        self.generations.start_listening()
        for code, texts in LANGUAGES.items():
            commands = [BotCommand(command=c, description=d) for c, d in texts.commands.items()]
            language = None if texts is EN else code
            await self.bot.set_my_commands(
                commands, scope=BotCommandScopeDefault(), language_code=language
            )

    async def run_polling(self, handle_signals: bool = True) -> None:
        await self.bot.delete_webhook(drop_pending_updates=False)
        await self.set_commands()
        await self.dispatcher.start_polling(
            self.bot,
            allowed_updates=self.dispatcher.resolve_used_update_types(),
            handle_signals=handle_signals,
            close_bot_session=False,
            tasks_concurrency_limit=self.settings.max_concurrent_answers,
        )

    async def run_webhook(self, handle_signals: bool = True) -> None:
        """Webhook mode (``WEBHOOK_URL`` set): serve until SIGTERM/SIGINT; see bot/webhook.py."""
        await run_webhook(self, handle_signals=handle_signals)

    async def close(self) -> None:
        """Let answers in flight finish (for the grace period), then close everything."""
        cancelled = await self.in_flight.drain(self.settings.shutdown_grace_seconds)
        if cancelled:
            log.warning("shutdown: %d answer(s) did not finish in time", cancelled)
        await self.generations.aclose()
        await self.pool.aclose()
        await self.bot.session.close()
        await self.redis.aclose(close_connection_pool=True)


async def run(settings: Settings, environ: dict[str, str]) -> int:
    """``python -m bot``: validate, build, poll (or serve the webhook) until SIGTERM/SIGINT,
    shut down cleanly."""
    redactor = redact.Redactor([settings.bot_token.get_secret_value()])
    if settings.webhook_secret is not None:
        redactor.add(settings.webhook_secret.get_secret_value())
    redact.install(redactor, settings.log_level)
    try:
        catalog = load_catalog(settings.models_file, environ)
    except CatalogError as exc:
        print(exc, file=sys.stderr)
        return 2
    redactor.add(*catalog.keys.values())
    app = App.build(settings, catalog)
    # Everything imported so far lives as long as the process: keep it out of the
    # collector's way, so full collections stay short while answers stream.
    gc.collect()
    gc.freeze()
    log.info(
        "starting: %d models (%s), %s %s",
        len(catalog.models),
        ", ".join(catalog.models),
        "webhook" if settings.webhook_url else "polling",
        settings.webhook_url or settings.telegram_api_url,
    )
    try:
        if settings.webhook_url:
            await app.run_webhook()
        else:
            await app.run_polling()
    finally:
        await asyncio.shield(app.close())
    return 0
