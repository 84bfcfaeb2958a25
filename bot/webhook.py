"""Webhook mode: an aiohttp server that Telegram pushes updates to, for any number of
replicas sharing one Redis.

- ``POST <path of WEBHOOK_URL>``: checks ``X-Telegram-Bot-Api-Secret-Token`` (401 and
  nothing processed when it is wrong or missing; the first refusal is logged, later ones
  counted in one line a minute at most), refuses a body that is not a JSON update (400,
  one nested too deep to parse included), acknowledges at once and hands the
  update to the dispatcher in the background. When ``MAX_CONCURRENT_ANSWERS`` updates are
  already being handled, the acknowledgement waits for a slot: Telegram then slows down
  instead of the bot piling up work it has promised to do.
- ``GET /healthz``: 200 ``ok`` when Redis answers PING, 503 otherwise.
- ``GET /metrics``: the Prometheus metrics of this replica.

An update that Telegram delivers twice (its 200 got lost, or it went to two replicas) is
handled once: :class:`bot.middlewares.UpdateDedup` claims it in Redis first.

Shutdown: the server stops taking requests, then :meth:`bot.app.App.close` gives the
answers in flight the grace period. The webhook stays set: other replicas keep serving it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import signal
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiogram import Bot, Dispatcher
from aiogram.methods import TelegramMethod
from aiohttp import web
from redis.asyncio import Redis

from bot.metrics import HEALTH_PATH, Metrics, add_routes
from bot.settings import Settings

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
# How long a request may still take once shutdown began (ours return at once; this only
# ends requests that wait for a handler slot: Telegram delivers those again).
REQUEST_SHUTDOWN_SECONDS = 1.0
# Refused requests (a wrong or missing secret) are logged once, then at most one line this
# often with how many there were since: a flood of them must not flood the log too.
REFUSALS_LOG_EVERY = 60.0


def webhook_path(url: str) -> str:
    """The path the server answers on: that of ``WEBHOOK_URL`` (``/`` when it has none)."""
    return urlsplit(url).path or "/"


class UpdateReceiver:
    """The webhook route: secret check, acknowledgement, handling in the background."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, secret: str, slots: int) -> None:
        if not secret:
            raise ValueError("a webhook needs a secret token")
        self.dispatcher = dispatcher
        self.bot = bot
        self._secret = secret.encode()
        self._slots = asyncio.Semaphore(slots)
        self.tasks: set[asyncio.Task[None]] = set()
        self.accepted = 0
        self.closing = False
        self.clock: Callable[[], float] = time.monotonic
        self._refused = 0  # refusals not logged yet
        self._refusals_logged_at: float | None = None

    def authorized(self, request: web.Request) -> bool:
        given = request.headers.get(SECRET_HEADER, "").encode()
        return hmac.compare_digest(given, self._secret)

    def _log_refusal(self) -> None:
        """The first refusal is logged; later ones at most once a ``REFUSALS_LOG_EVERY``,
        as a count."""
        self._refused += 1
        now = self.clock()
        last = self._refusals_logged_at
        if last is None:
            log.warning(
                "webhook: a request without the right secret token was refused "
                "(more are counted, and logged at most once a minute)"
            )
        elif now - last >= REFUSALS_LOG_EVERY:
            log.warning(
                "webhook: %d request(s) without the right secret token refused in the last %d s",
                self._refused,
                now - last,
            )
        else:
            return
        self._refusals_logged_at = now
        self._refused = 0

    async def handle(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            self._log_refusal()
            return web.Response(status=401, text="Unauthorized")
        if self.closing:
            return web.Response(status=503, text="shutting down")
        try:
            update = json.loads(await request.read())
        except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
            return web.Response(status=400, text="not JSON")
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            return web.Response(status=400, text="not an update")
        await self._slots.acquire()
        if self.closing:
            self._slots.release()
            return web.Response(status=503, text="shutting down")
        task = asyncio.create_task(self._feed(update), name=f"update-{update['update_id']}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        self.accepted += 1
        return web.Response(status=200)

    async def _feed(self, update: dict[str, Any]) -> None:
        try:
            result = await self.dispatcher.feed_raw_update(self.bot, update)
            if isinstance(result, TelegramMethod):
                await self.dispatcher.silent_call_request(self.bot, result)
        except Exception:
            log.exception("update %s: not handled", update.get("update_id"))
        finally:
            self._slots.release()

    async def wait_idle(self) -> None:
        """Return once every accepted update has been handled (tests, benchmarks)."""
        while self.tasks:
            await asyncio.wait(set(self.tasks))


class Served(Protocol):
    """What the webhook server needs of the app (:class:`bot.app.App`)."""

    settings: Settings
    bot: Bot
    dispatcher: Dispatcher

    @property
    def redis(self) -> Redis: ...

    @property
    def metrics(self) -> Metrics: ...

    async def set_commands(self) -> None: ...


def build_web_app(app: Served, receiver: UpdateReceiver) -> web.Application:
    """The webhook server's routes. Add more (``/metrics``) to what this returns."""
    url = app.settings.webhook_url
    if not url:
        raise ValueError("WEBHOOK_URL is not set")
    path = webhook_path(url)
    if path == HEALTH_PATH:
        raise ValueError(f"WEBHOOK_URL cannot use the path {HEALTH_PATH}")
    web_app = web.Application()
    web_app.router.add_post(path, receiver.handle)
    add_routes(web_app, app.metrics, app.redis)
    return web_app


class WebhookServer:
    """One replica's webhook server: ``start()`` listens and sets the webhook,
    ``stop()`` stops taking updates (the caller then runs ``App.close()``)."""

    def __init__(self, app: Served) -> None:
        settings = app.settings
        if not settings.webhook_url or settings.webhook_secret is None:
            raise ValueError("webhook mode needs WEBHOOK_URL and WEBHOOK_SECRET")
        self.app = app
        self.url = settings.webhook_url
        self._secret = settings.webhook_secret.get_secret_value()
        self.receiver = UpdateReceiver(
            app.dispatcher, app.bot, self._secret, settings.max_concurrent_answers
        )
        self.web_app = build_web_app(app, self.receiver)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app, settings = self.app, self.app.settings
        me = await app.bot.me()
        await app.set_commands()
        await app.dispatcher.emit_startup(**self._workflow_data())
        self._runner = web.AppRunner(
            self.web_app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=REQUEST_SHUTDOWN_SECONDS,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, settings.webhook_host, settings.webhook_port)
        await site.start()
        # listening before setWebhook: Telegram's first push finds the server up
        await app.bot.set_webhook(
            url=self.url,
            secret_token=self._secret,
            allowed_updates=app.dispatcher.resolve_used_update_types(),
            drop_pending_updates=False,
        )
        log.info(
            "webhook for @%s on %s:%d%s",
            me.username,
            settings.webhook_host,
            settings.webhook_port,
            webhook_path(self.url),
        )

    async def stop(self) -> None:
        """Stop taking updates (new requests are refused); those accepted keep running."""
        self.receiver.closing = True
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
            await self.app.dispatcher.emit_shutdown(**self._workflow_data())
        # let updates accepted at the last moment reach the handlers, so App.close sees them
        await asyncio.sleep(0)

    async def wait_idle(self) -> None:
        await self.receiver.wait_idle()

    def _workflow_data(self) -> dict[str, Any]:
        """What startup/shutdown observers get, as in polling."""
        dispatcher = self.app.dispatcher
        data = {"dispatcher": dispatcher, **dispatcher.workflow_data}
        data["bot"] = self.app.bot
        return data


async def run_webhook(app: Served, *, handle_signals: bool = True) -> None:
    """Serve the webhook until SIGTERM/SIGINT (or cancellation); then stop taking updates.

    The caller closes the app afterwards (``App.close``: the grace period for answers).
    """
    server = WebhookServer(app)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
    for sig in signals:
        loop.add_signal_handler(sig, stopping.set)
    try:
        await server.start()
        await stopping.wait()
        log.info("webhook: stopping")
    finally:
        for sig in signals:
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
        await asyncio.shield(server.stop())
