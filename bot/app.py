"""Composition root: Redis, the Bot and the stores (``Core``) built once, the services
built on them (:func:`services`); an outer middleware hands the current services to
every update as keyword arguments (aiogram injects them into handlers by parameter
name), so that /reload can swap them."""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiogram import Bot, Dispatcher
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramUnauthorizedError
from aiogram.methods import GetUpdates, Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import BotCommand, BotCommandScopeDefault, TelegramObject
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot import redact, redis_client
from bot.catalog import Catalog, CatalogError, load_catalog
from bot.handlers import get_routers
from bot.metrics import FloodCounter, Metrics, UpdateCounter
from bot.metrics import serve as serve_metrics
from bot.middlewares import ButtonOwner, Gate, InFlight, PasteArrivals, TextsMiddleware, UpdateDedup
from bot.services.admission import Admission
from bot.services.answers import Answers
from bot.services.arena import ArenaService
from bot.services.chat import ChatService
from bot.services.compare import CompareService
from bot.services.core import Core
from bot.services.gate import StartGate
from bot.services.generations import Generations
from bot.services.media import MediaService
from bot.services.merge import MergeService
from bot.services.payments import Payments, Signer
from bot.services.pool import ProviderPool
from bot.settings import Settings, environ_with_dotenv
from bot.telegram import make_bot
from bot.texts import EN, LANGUAGES, Texts

log = logging.getLogger(__name__)

# Allocations (net) between young collections (CPython: 700). Answers in flight hold
# their objects for a second or more, and a burst keeps hundreds in flight: collected
# every 10,000 they survived into the older generations, whose collections then walked
# them again and again (bench.chat burst of 1,500: 650-820 ms of collector pauses, the
# longest 75-130 ms). Every 50,000 most die young first: 100-150 ms, the longest 40-60.
GC_YOUNG_THRESHOLD = 50_000
RECONCILE_EVERY = 300.0  # seconds between checks of recent Stars payments against Redis


@dataclass
class App:
    """Everything the running bot holds, and how to stop it cleanly."""

    settings: Settings
    core: Core
    bot: Bot
    dispatcher: Dispatcher
    in_flight: InFlight
    services: dict[str, Any]  # what handlers may ask for by name
    environ: dict[str, str]  # where the provider keys came from
    redactor: redact.Redactor | None = None
    retired: list[ProviderPool] = field(default_factory=list)
    reconciler: asyncio.Task[None] | None = None  # payments reconciled every few minutes

    @property
    def redis(self) -> Redis:
        return self.core.redis

    @property
    def catalog(self) -> Catalog:
        return self.core.catalog

    @property
    def generations(self) -> Generations:
        return self.core.generations

    @property
    def metrics(self) -> Metrics:
        return self.core.metrics

    @classmethod
    def build(
        cls,
        settings: Settings,
        catalog: Catalog,
        environ: dict[str, str] | None = None,
        *,
        probe: bool = True,
    ) -> App:
        """``probe``: start the providers' probe now (else ``core.pool.start_probing``)."""
        # A blocking pool sized for the updates starting at once (the start gate) and
        # the answers recording their outcome: a burst waits for a connection instead
        # of failing as if Redis were down. Answers waiting on their model hold none.
        # (one server, a Redis Cluster or Sentinel: bot/redis_client.py)
        redis = redis_client.connect(settings, 2 * settings.max_starting_updates + 100)
        bot, patient = make_bot(settings)
        core = Core.build(settings, catalog, redis, bot.id, probe=probe)
        patient.on_flood = core.pacer.flood
        bot.session.middleware(FloodCounter(core.metrics))
        dispatcher = Dispatcher(disable_fsm=True)  # no conversation states: no FSM lookups
        in_flight = InFlight()
        app = cls(settings, core, bot, dispatcher, in_flight, {}, environ or {})
        middlewares: list[Any] = [
            in_flight,
            PasteArrivals(core.pastes),  # before any I/O: in delivery order
            Gate(StartGate(settings.max_starting_updates)),  # then one at a time to start
            # an update Telegram delivered twice (webhooks only: polling's offset can't)
            *([UpdateDedup(redis)] if settings.webhook_url else []),
            app.inject,  # the services of the current catalog (``/reload`` swaps them)
            UpdateCounter(core.metrics),
            TextsMiddleware(),
        ]
        for middleware in middlewares:
            dispatcher.update.outer_middleware(middleware)
        dispatcher.callback_query.outer_middleware(ButtonOwner())
        dispatcher.include_routers(*get_routers())
        on_the_loop(dispatcher)
        app.services = app._services()
        core.generations.on_reload = app.reload
        return app

    def _services(self) -> dict[str, Any]:
        return {**services(self.core), "reload_catalog": self.reload_everywhere}

    async def inject(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        data.update(self.services)
        return await handler(event, data)

    async def reload(self) -> str | None:
        """Read the catalog again, here; the problems found if it is refused."""
        try:
            # keys added to .env since the start count too
            environ = {**self.environ, **environ_with_dotenv()}
            catalog = load_catalog(self.settings.models_file, environ)
        except CatalogError as exc:
            log.error("reload refused: %s", exc)
            return str(exc)
        if self.redactor is not None:
            self.redactor.add(*catalog.keys.values())
        old, self.core = self.core, self.core.with_catalog(catalog)
        self.services = self._services()
        self.retired.append(old.pool)  # answers in flight still use it; closed at exit
        log.info("catalog reloaded: %d models", len(catalog.models))
        return None

    async def reload_everywhere(self) -> str | None:
        """/reload: here first (so a bad catalog is reported), then every replica."""
        problem = await self.reload()
        if problem is None:
            await self.generations.announce_reload()
        return problem

    async def set_commands(self) -> None:
        """Start-up shared by both modes: the command menus, and the control channel
        (Stop and reload from other replicas)."""
        await redis_client.ready(self.redis)
        self.generations.start_listening()
        sells = self.catalog.sells  # /buy in the menu only with something to sell

        def menu(texts: Texts) -> dict[str, str]:
            return {**texts.commands, "buy": texts.buy_command} if sells else texts.commands

        await asyncio.gather(
            self.reconcile_payments(),
            *(
                self.bot.set_my_commands(
                    [BotCommand(command=c, description=d) for c, d in menu(texts).items()],
                    scope=BotCommandScopeDefault(),
                    language_code=None if texts is EN else code,
                )
                for code, texts in LANGUAGES.items()
            ),
        )

    async def reconcile_payments(self) -> None:
        """At start: credit any Stars payment Telegram took that was never credited (the
        bot died between the charge and the credit)."""
        if not self.catalog.sells:
            return
        try:
            await self.services["payments"].reconcile(self.bot)
        except (TelegramAPIError, RedisError, aiohttp.ClientError, OSError) as exc:
            log.error("payments: reconciliation failed: %s", exc)
        if self.reconciler is None:  # and again every few minutes, on every replica
            self.reconciler = asyncio.create_task(self._reconcile_every(RECONCILE_EVERY))

    async def _reconcile_every(self, seconds: float) -> None:
        """A charge whose credit gave up (Redis away for long) or whose replica died while
        retrying is credited within minutes, without waiting for a restart."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.services["payments"].reconcile(self.bot)
            except (TelegramAPIError, RedisError, aiohttp.ClientError, OSError) as exc:
                log.warning("payments: periodic reconciliation failed: %s", exc)

    async def run_polling(self, handle_signals: bool = True) -> None:
        await asyncio.gather(
            self.bot.delete_webhook(drop_pending_updates=False), self.set_commands()
        )
        metrics = None
        if self.settings.metrics_port is not None:
            metrics = await serve_metrics(
                self.core.metrics,
                self.redis,
                self.settings.webhook_host,
                self.settings.metrics_port,
            )
        try:
            await self.dispatcher.start_polling(
                self.bot,
                allowed_updates=self.dispatcher.resolve_used_update_types(),
                handle_signals=handle_signals,
                close_bot_session=False,
                tasks_concurrency_limit=self.settings.max_concurrent_answers,
            )
        finally:
            if metrics is not None:
                await metrics.cleanup()

    async def run_webhook(self, handle_signals: bool = True) -> None:
        """Webhook mode (``WEBHOOK_URL`` set): serve until SIGTERM/SIGINT; see bot/webhook.py
        (imported here: polling needs no web server, nor the time to import one)."""
        from bot.webhook import run_webhook

        await run_webhook(self, handle_signals=handle_signals)

    async def close(self) -> None:
        """Let answers in flight finish (for the grace period), then close everything."""
        if self.reconciler is not None:
            self.reconciler.cancel()
        cancelled = await self.in_flight.drain(self.settings.shutdown_grace_seconds)
        if cancelled:
            log.warning("shutdown: %d answer(s) did not finish in time", cancelled)
        await self.generations.aclose()
        for pool in [*self.retired, self.core.pool]:
            await pool.aclose()
        await self.bot.session.close()
        await redis_client.aclose(self.redis)


def services(core: Core) -> dict[str, Any]:
    """What handlers may ask for by parameter name (aiogram's injection): the stores,
    and the services built on them for the current catalog."""
    settings, redis, catalog = core.settings, core.redis, core.catalog
    admission = Admission(
        redis, catalog, core.quota, core.stats, core.metrics, settings.max_prompt_chars
    )
    answers = Answers(admission, core.pool, core.pacer, core.generations, core.metrics, core.rich)
    chat = ChatService(
        redis, catalog, core.prefs, core.history, core.generations, core.pastes, admission, answers
    )
    compare = CompareService(
        redis, catalog, core.prefs, core.generations, admission, answers, core.compare_store
    )
    media = MediaService(catalog, core.prefs, admission, answers, chat, settings.voice_max_seconds)
    arena = ArenaService(
        catalog,
        core.quota,
        admission,
        compare,
        core.arena_store,
        settings.arena_daily_votes,
    )
    return {
        "settings": settings,
        "catalog": catalog,
        "redis": redis,
        "prefs": core.prefs,
        "history": core.history,
        "quota": core.quota,
        "generations": core.generations,
        "stats": core.stats,
        "pastes": core.pastes,
        "compare_store": core.compare_store,
        "chat_service": chat,
        "compare_service": compare,
        "media_service": media,
        "arena_service": arena,
        "merge_service": MergeService(catalog, core.prefs, core.compare_store, chat),
        "payments": Payments(
            redis,
            catalog,
            Signer.for_bot(
                settings.bot_token.get_secret_value(),
                settings.payments_secret.get_secret_value() if settings.payments_secret else None,
            ),
            core.quota.clock,
        ),
    }


def on_the_loop(dispatcher: Dispatcher) -> None:
    """aiogram runs a plain (not ``async``) filter or handler in a worker thread
    (``asyncio.to_thread``), and a magic filter (``F.successful_payment``) is one: every
    chat message passed one on its way to the chat handler. The thread hop costs more
    than the check (CPU, and the event loop waiting to get the GIL back under load), so
    every such callback runs on the loop instead, as the check it is."""
    for router in dispatcher.chain_tail:
        for observer in router.observers.values():
            for handler in observer.handlers:
                for callable_ in (handler, *(handler.filters or ())):
                    if not callable_.awaitable:
                        callable_.callback = _awaitable(callable_.callback)
                        callable_.awaitable = True


def _awaitable(callback: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def call(*args: Any, **kwargs: Any) -> Any:
        return callback(*args, **kwargs)

    return call


def tune_gc() -> None:
    """Everything built so far lives as long as the process: keep it out of the
    collector's way, and collect the young generation less often (answers allocate
    many short-lived objects), so collections stay short and rare while answers stream.

    ``python -m bot`` starts with the collector off: what the imports left over (about
    1,800 objects, 0.4 MB: classes rebuilt by attrs, dataclasses and enum) is frozen with
    the rest. Collecting it first would walk every object aiogram built, 0.15 s of CPU
    or more. The collector is on afterwards."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
    gc.enable()


class FirstPoll(BaseRequestMiddleware):
    """A Bot session middleware that calls ``then`` once the first getUpdates is on its
    way, and leaves the session. aiohttp writes a request's body in a task of its own,
    queued as the call starts; ``then`` is queued behind it (two turns of the event loop
    later), so its work does not hold the request back."""

    def __init__(self, bot: Bot, then: Callable[[], None]) -> None:
        self.bot = bot
        self.then: Callable[[], None] | None = then
        bot.session.middleware(self)

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        then, polling = self.then, isinstance(method, GetUpdates)
        if then is not None and polling:
            self.then = None
            self.bot.session.middleware.unregister(self)
            loop = asyncio.get_running_loop()
            loop.call_soon(loop.call_soon, then)
        return await make_request(bot, method)


async def run(settings: Settings, environ: dict[str, str]) -> int:
    """``python -m bot``: validate, build, poll (or serve the webhook) until SIGTERM/SIGINT,
    shut down cleanly."""
    redactor = redact.Redactor([settings.bot_token.get_secret_value()])
    if settings.webhook_secret is not None:
        redactor.add(settings.webhook_secret.get_secret_value())
    if settings.payments_secret is not None:
        redactor.add(settings.payments_secret.get_secret_value())
    redact.install(redactor, settings.log_level)
    try:
        catalog = load_catalog(settings.models_file, environ)
    except CatalogError as exc:
        print(exc, file=sys.stderr)
        return 2
    redactor.add(*catalog.keys.values())
    polling = not settings.webhook_url
    app = App.build(settings, catalog, environ, probe=not polling)
    app.redactor = redactor
    if polling:  # the probe's first run (TLS and HTTP set-up) after the first poll is sent
        FirstPoll(app.bot, lambda: app.core.pool.start_probing())
    tune_gc()
    log.info(
        "starting: %d models (%s), %s %s",
        len(catalog.models),
        ", ".join(catalog.models),
        "webhook" if settings.webhook_url else "polling",
        settings.webhook_url or settings.telegram_api_url,
    )
    try:
        if (problem := await telegram_problem(app.bot, settings.telegram_api_url)) is not None:
            print(
                f"{problem} Run `python -m bot check` to check the whole set-up.", file=sys.stderr
            )
            return 1
        if settings.webhook_url:
            await app.run_webhook()
        else:
            await app.run_polling()
    finally:
        await asyncio.shield(app.close())
    return 0


async def telegram_problem(bot: Bot, url: str) -> str | None:
    """One sentence on why the bot can't start talking to Telegram (getMe, which polling
    and the webhook need first anyway); None when it can."""
    try:
        await bot.me()
    except TelegramUnauthorizedError:
        return "Telegram refused the bot token (BOT_TOKEN): check it with @BotFather."
    except (TelegramNetworkError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        reason = type(exc).__name__
        return f"The Telegram Bot API at {url} could not be reached ({reason})."
    except TelegramAPIError as exc:
        return f"Telegram refused to start the bot: {exc.message}."
    return None
