"""The provider clients, one per catalog provider in use, opened at start, closed at stop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from bot.catalog import Catalog, ModelSpec
from providers import Provider, registry


class ProviderPool:
    def __init__(self, catalog: Catalog) -> None:
        self._providers: dict[str, Provider] = {
            name: registry.create(catalog.provider_config(name))
            for name in catalog.used_providers()
        }

    def for_model(self, model: ModelSpec) -> Provider:
        return self._providers[model.provider]

    def __iter__(self) -> Iterator[Provider]:
        return iter(self._providers.values())

    async def aclose(self) -> None:
        await asyncio.gather(*(p.aclose() for p in self._providers.values()))
