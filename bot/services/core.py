"""The stores and clients one app shares (Redis, providers, preferences, history,
limits, the pacer, the rich-message switch, metrics). Built once at start; ``/reload``
builds the catalog's part again (catalog, providers, preferences, limits) and keeps the
rest. The services built on them are put together in the composition root, :mod:`bot.app`."""

from __future__ import annotations

from dataclasses import dataclass, replace

from redis.asyncio import Redis

from bot.catalog import Catalog
from bot.metrics import Metrics
from bot.redis_client import Replicated
from bot.services.arena_store import ArenaStore
from bot.services.compare_store import CompareStore
from bot.services.generations import Generations
from bot.services.history import History
from bot.services.layouts import RichSwitch
from bot.services.pacer import Pacer
from bot.services.paste import Pastes
from bot.services.pool import ProviderPool
from bot.services.prefs import Prefs
from bot.services.quota import Quota
from bot.services.stats import Stats
from bot.settings import Settings


@dataclass(frozen=True)
class Core:
    settings: Settings
    redis: Redis
    catalog: Catalog
    pool: ProviderPool
    prefs: Prefs
    history: History
    quota: Quota
    pacer: Pacer
    rich: RichSwitch  # rich messages on, or paused after Telegram refused one
    generations: Generations
    metrics: Metrics
    stats: Stats
    pastes: Pastes
    compare_store: CompareStore
    arena_store: ArenaStore

    @classmethod
    def build(
        cls, settings: Settings, catalog: Catalog, redis: Redis, bot_id: int, *, probe: bool = True
    ) -> Core:
        """``probe``: start the providers' probe now (else ``pool.start_probing`` later)."""
        replicated = Replicated.of(redis)
        return cls(
            settings=settings,
            redis=redis,
            catalog=catalog,
            pool=ProviderPool(catalog, probe=probe),
            prefs=Prefs(redis, catalog),
            history=History(
                redis, settings.history_max_messages, int(settings.history_ttl_hours * 3600)
            ),
            quota=Quota(
                redis, catalog, settings.timezone, settings.admin_ids, replicated=replicated
            ),
            pacer=Pacer(),
            rich=RichSwitch(settings.rich_messages),
            generations=Generations(redis, bot_id, replicated),
            metrics=Metrics(),
            stats=Stats(redis, bot_id),
            pastes=Pastes(redis),
            compare_store=CompareStore(redis, bot_id),
            arena_store=ArenaStore(redis, bot_id),
        )

    def with_catalog(self, catalog: Catalog) -> Core:
        """The same app on another catalog: new providers, preferences and limits."""
        settings, redis = self.settings, self.redis
        return replace(
            self,
            catalog=catalog,
            pool=ProviderPool(catalog),
            prefs=Prefs(redis, catalog),
            quota=Quota(
                redis,
                catalog,
                settings.timezone,
                settings.admin_ids,
                replicated=self.quota.replicated,
            ),
        )
