"""A user's preferences (current model, compare set, image model, language, merge
model): a small Redis hash per user."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from bot.catalog import Catalog
from bot.texts import LANGUAGES

PREFS_TTL = 180 * 24 * 3600  # forget users idle for half a year


@dataclass(frozen=True, slots=True)
class UserPrefs:
    model: str  # always a usable model id
    compare: tuple[str, ...]
    image: str | None = None  # a usable image model id; None when there is none
    language: str | None = None  # chosen with /language; None: the Telegram app's
    merge: str = ""  # the chat model "Merge" asks (the catalog's default when unset)


class Prefs:
    def __init__(self, redis: Redis, catalog: Catalog) -> None:
        self.redis = redis
        self.catalog = catalog

    @staticmethod
    def key(user_id: int) -> str:
        return f"prefs:{{{user_id}}}"

    def queue_read(self, pipe: Pipeline, user_id: int) -> None:
        pipe.hgetall(self.key(user_id))

    def parse(self, raw: Mapping[Any, Any]) -> UserPrefs:
        """Stored values, falling back to the catalog's defaults for anything missing
        or no longer usable (a model removed or hidden since it was chosen)."""
        model = raw.get(b"model", b"").decode()
        if self.catalog.get(model) is None:
            model = self.catalog.default_model
        stored = [m for m in raw.get(b"compare", b"").decode().split(",") if self.catalog.get(m)]
        compare = tuple(stored) if len(stored) >= 2 else tuple(self.catalog.default_compare)
        image = raw.get(b"image", b"").decode()
        chosen = image if self.catalog.get_image(image) else self.catalog.default_image
        merge = raw.get(b"merge", b"").decode()
        if self.catalog.get(merge) is None:
            merge = self.catalog.default_merge
        return UserPrefs(
            model=model, compare=compare, image=chosen, language=_language(raw), merge=merge
        )

    async def get(self, user_id: int) -> UserPrefs:
        return self.parse(await self.redis.hgetall(self.key(user_id)))

    async def language(self, user_id: int) -> str | None:
        """The language chosen with /language, alone (one field of the hash)."""
        return _language({b"lang": await self.redis.hget(self.key(user_id), "lang")})

    async def forget(self, user_id: int, *fields: str) -> None:
        await self.redis.hdel(self.key(user_id), *fields)

    async def set(self, user_id: int, **values: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            self.queue_set(pipe, user_id, **values)
            await pipe.execute()

    def queue_set(self, pipe: Pipeline, user_id: int, **values: str) -> None:
        pipe.hset(self.key(user_id), mapping=dict[Any, Any](values))
        pipe.expire(self.key(user_id), PREFS_TTL)


def _language(raw: Mapping[Any, Any]) -> str | None:
    value = raw.get(b"lang")
    code = value.decode() if isinstance(value, bytes) else None
    return code if code in LANGUAGES else None
