"""Long pastes that Telegram split into several messages, merged back into one request.

Telegram cuts a text longer than 4096 characters into consecutive messages. A message
about that long is held for a moment in a per-chat sorted set (scored by message id, so
the order survives any delivery order or replica); the next short part, the end of the
paste, takes the whole set in the same pipeline that starts its chat turn. If no short
part comes (the paste ended on a full part), the last long part takes the set itself.

Updates are handled concurrently, so the end of a paste may reach Redis before the parts
it follows are held there. A long message is therefore noted in this process as soon as
its update arrives (:meth:`Pastes.arriving`, before any I/O, so in delivery order), and a
later message from the same user waits for it to be held.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

SPLIT_AT = 4000  # a message at least this long may be part of a split paste
HOLD_SECONDS = 1.2  # how long a part waits for the next one

# KEYS[1]: the chat's parts. ARGV[1]: this part's message id. Returns the parts in order
# if this part is still the latest (nothing came after it), and deletes them.
_CLAIM = """
local last = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #last == 0 or tonumber(last[2]) ~= tonumber(ARGV[1]) then
  return false
end
local parts = redis.call('ZRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return parts
"""


class Pastes:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._claim = redis.register_script(_CLAIM)
        # long messages whose update arrived here but which are not held yet
        self._arriving: dict[tuple[int, int], set[int]] = {}

    @staticmethod
    def key(chat_id: int, user_id: int) -> str:
        return f"paste:{{{user_id}}}:{chat_id}"

    @staticmethod
    def is_part(text: str) -> bool:
        return len(text) >= SPLIT_AT

    @contextmanager
    def arriving(self, chat_id: int, user_id: int, message_id: int) -> Iterator[None]:
        """While the update of a long message is handled (enter before any I/O)."""
        key = (chat_id, user_id)
        self._arriving.setdefault(key, set()).add(message_id)
        try:
            yield
        finally:
            self._held_here(key, message_id)

    def _held_here(self, key: tuple[int, int], message_id: int) -> None:
        ids = self._arriving.get(key)
        if ids is not None:
            ids.discard(message_id)
            if not ids:
                del self._arriving[key]

    def _arriving_before(self, chat_id: int, user_id: int, message_id: int) -> bool:
        return any(i < message_id for i in self._arriving.get((chat_id, user_id), ()))

    async def hold(self, chat_id: int, user_id: int, message_id: int, text: str) -> str | None:
        """Keep a long part; after a moment, the whole paste if this part ended it
        (None if a later part took it)."""
        key = self.key(chat_id, user_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {_member(message_id, text): message_id})
            pipe.expire(key, 60)
            await pipe.execute()
        self._held_here((chat_id, user_id), message_id)
        await asyncio.sleep(HOLD_SECONDS)
        parts = await self._claim(keys=[key], args=[message_id])
        return join(parts) if parts else None

    def queue_take(self, pipe: Pipeline, chat_id: int, user_id: int) -> None:
        """Take the parts held before this message (two commands, no extra round trip)."""
        key = self.key(chat_id, user_id)
        pipe.zrange(key, 0, -1)
        pipe.delete(key)

    async def complete(
        self, chat_id: int, user_id: int, message_id: int, held: list[Any]
    ) -> list[Any]:
        """The parts before ``message_id``, waiting briefly for one still on its way
        (updates are handled concurrently: the part just before may not be held yet).
        Returns at once, without I/O, when nothing is held and nothing is arriving."""
        deadline = asyncio.get_running_loop().time() + HOLD_SECONDS
        while (held and _last_id(held) < message_id - 1) or self._arriving_before(
            chat_id, user_id, message_id
        ):
            if asyncio.get_running_loop().time() >= deadline:
                break
            await asyncio.sleep(0.05)
            async with self.redis.pipeline(transaction=True) as pipe:
                self.queue_take(pipe, chat_id, user_id)
                more, _ = await pipe.execute()
            held = sorted([*held, *more], key=_id)
        return held


def join(parts: Sequence[Any], tail: str = "") -> str:
    """The held parts in order, then ``tail``: the text as the user pasted it."""
    texts = [_text(p) for p in parts]
    return "".join([*texts, tail])


def _id(member: Any) -> int:
    raw = member.decode() if isinstance(member, bytes) else str(member)
    return int(raw.partition(":")[0])


def _last_id(members: Sequence[Any]) -> int:
    return max(_id(m) for m in members)


def _member(message_id: int, text: str) -> str:
    return f"{message_id}:{text}"


def _text(member: Any) -> str:
    raw = member.decode() if isinstance(member, bytes) else str(member)
    return raw.partition(":")[2]
