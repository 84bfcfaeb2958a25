"""The provider clients, one per catalog provider in use, closed at stop; and the
reachability probe that keeps models of a provider nobody can connect to out of the
menus.

Each provider is built when it is first needed (by the probe, or an answer): its adapter
module is imported then, not at start (the openai kind's SDK takes about 0.3 s to import).
The probe imports the adapters of every provider in use in a worker thread first, so the
event loop goes on meanwhile; an answer that needs one sooner imports it there and then.

The probe runs in the background when the pool is built inside a running event loop
(every /reload), or from ``start_probing`` (``python -m bot`` starts it once its first
poll is on its way: its first run sets up TLS and HTTP clients, tens of milliseconds of
CPU that would otherwise delay that poll): each provider's cheap model listing, with a
short timeout, all at once. A provider that cannot be connected to at all
(refused, no route, no answer to the connection within the timeout) goes into
``catalog.unreachable``, which hides its models; it is probed again every few minutes
and its models come back when it answers. A provider that answers anything, even an
error (a wrong key, a 5xx), is reachable: its failures are for the user's sentence and
``check``. Nothing is hidden when that would leave no chat model at all (the network is
down: better to try).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from bot.catalog import Catalog, ModelSpec
from providers import Provider, ProviderError, UnreachableError, registry

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 3.0  # seconds a provider gets to answer the probe
REPROBE_SECONDS = 300.0  # how often providers that did not answer are tried again


class ProviderPool:
    def __init__(self, catalog: Catalog, *, probe: bool = True) -> None:
        self.catalog = catalog
        self._names = catalog.used_providers()
        self._providers: dict[str, Provider] = {}  # those built so far
        self._watch: asyncio.Task[None] | None = None
        self._first_probe = asyncio.Event()
        if probe:
            with contextlib.suppress(RuntimeError):  # no running loop: no probe (check, tools)
                self.start_probing()

    def start_probing(self) -> None:
        """Start the background probe, unless it runs already (or there is nothing to
        probe). Needs a running event loop."""
        if self._watch is None and self._names:
            self._watch = asyncio.get_running_loop().create_task(
                self._probe_forever(), name="provider-probe"
            )

    def for_model(self, model: ModelSpec) -> Provider:
        return self._provider(model.provider)

    def __iter__(self) -> Iterator[Provider]:
        return iter([self._provider(name) for name in self._names])

    def _provider(self, name: str) -> Provider:
        provider = self._providers.get(name)
        if provider is None:
            provider = registry.create(self.catalog.provider_config(name))
            self._providers[name] = provider
        return provider

    async def _import_adapters(self) -> None:
        """Import the adapter of every provider in use, in a worker thread."""
        kinds = {self.catalog.providers[name].kind for name in self._names}
        await asyncio.to_thread(lambda: [registry.provider_class(kind) for kind in kinds])

    async def probed(self) -> None:
        """Wait for the first probe to finish (tests, tools)."""
        if self._watch is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._first_probe.wait(), PROBE_TIMEOUT * 2)

    async def probe(self, names: list[str] | None = None) -> set[str]:
        """Probe ``names`` (default: every provider) at once; hide the models of those
        that cannot be connected to, show again those that answer. The providers found
        unreachable."""
        chosen = list(self._names) if names is None else names
        results = await asyncio.gather(*(self._reachable(name) for name in chosen))
        failed = {name for name, ok in zip(chosen, results, strict=True) if not ok}
        before = set(self.catalog.unreachable)
        wanted = (before - set(chosen)) | failed
        if wanted and not self._leaves_a_chat_model(wanted):
            log.warning(
                "no provider with chat models answered (%s): hiding nothing", ", ".join(wanted)
            )
            wanted = set()
        for name in sorted(wanted - before):
            count = sum(1 for m in self.catalog.all_models.values() if m.provider == name)
            config = self._provider(name).config
            log.warning(
                "provider %s (%s at %s) cannot be reached: its %d model(s) are hidden until "
                "it answers",
                name,
                config.kind,
                config.base_url,
                count,
            )
        for name in sorted(before - wanted):
            log.info("provider %s answers again: its models are back", name)
        self.catalog.unreachable.clear()
        self.catalog.unreachable.update(wanted)
        return failed

    async def _reachable(self, name: str) -> bool:
        try:
            await asyncio.wait_for(self._provider(name).list_models(), PROBE_TIMEOUT)
        except UnreachableError:
            return False
        except TimeoutError:
            return False
        except ProviderError:
            return True  # it answered: an error is not unreachability
        return True

    def _leaves_a_chat_model(self, hidden: set[str]) -> bool:
        return any(
            m.type == "chat" and m.provider not in hidden and mid not in self.catalog.hidden
            for mid, m in self.catalog.all_models.items()
        )

    async def _probe_forever(self) -> None:
        try:
            await self._import_adapters()
            await self.probe()
            self._first_probe.set()
            while True:
                await asyncio.sleep(REPROBE_SECONDS)
                if self.catalog.unreachable:
                    await self.probe(sorted(self.catalog.unreachable))
        except asyncio.CancelledError:
            raise
        except Exception:  # the probe must never take the bot down
            log.exception("the provider probe failed")

    async def aclose(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        await asyncio.gather(*(p.aclose() for p in self._providers.values()))
