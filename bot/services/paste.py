"""Long pastes that Telegram split into several messages, merged back into one request.

Telegram cuts a text longer than 4096 characters into consecutive messages and delivers
them together. A message about that long is held in a per-chat sorted set (scored by
message id, so the order survives any delivery order or replica); the next short part,
the end of the paste, takes the whole set in the same pipeline that starts its chat turn.

Updates are handled concurrently, so which message reaches Redis first is left to
chance; the rule therefore depends on what has *arrived*, never on how long to wait.
Every chat message is noted in this process as soon as its update arrives
(:meth:`Pastes.arriving`, in the first middleware, before any I/O, so in delivery
order):

- a held part never takes the paste while a later message of the same user and chat
  is being handled here: that message carries the paste;
- a message waits, before it answers, until every long message that arrived before it
  is held, and takes those parts too. Its first take rides in the pipeline that starts
  its turn, on another connection than a part's hold, so Redis may run it before a hold
  sent earlier: when a part before it was not held as that take was queued, it takes
  again once the part is (:meth:`Pastes.late`);
- a last part claims the paste only once every long message before it is held.

Only a paste whose last part is itself long (nothing comes after it) is decided by
time: its last part takes the set after ``HOLD_SECONDS`` if no message followed. Parts
of one paste sent to different replicas (webhook mode) fall back on the same hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from bot.services import gate

SPLIT_AT = 4000  # a message at least this long may be part of a split paste
HOLD_SECONDS = 1.2  # how long a last part waits for a message after it

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
        # per (chat, user): chat messages whose updates are being handled here, and the
        # long ones among them that are not held in Redis yet
        self._in_flight: dict[tuple[int, int], set[int]] = {}
        self._unheld: dict[tuple[int, int], set[int]] = {}
        self._changed = asyncio.Event()  # set (and replaced) when a part is held

    @staticmethod
    def key(chat_id: int, user_id: int) -> str:
        return f"paste:{{{user_id}}}:{chat_id}"

    @staticmethod
    def is_part(text: str) -> bool:
        return len(text) >= SPLIT_AT

    def arriving(self, chat_id: int, user_id: int, message_id: int, text: str) -> _Arrival:
        """While the update of a chat message is handled (``with``; enter before any I/O)."""
        return _Arrival(self, (chat_id, user_id), message_id, self.is_part(text))

    def _arrive(self, key: tuple[int, int], message_id: int, part: bool) -> None:
        self._in_flight.setdefault(key, set()).add(message_id)
        if part:
            self._unheld.setdefault(key, set()).add(message_id)

    def _leave(self, key: tuple[int, int], message_id: int) -> None:
        _discard(self._in_flight, key, message_id)
        self._held_here(key, message_id)

    def _held_here(self, key: tuple[int, int], message_id: int) -> None:
        if _discard(self._unheld, key, message_id):
            self._changed.set()  # wake whoever waits for it, and start a new round
            self._changed = asyncio.Event()

    def _unheld_before(self, chat_id: int, user_id: int, message_id: int) -> bool:
        return any(i < message_id for i in self._unheld.get((chat_id, user_id), ()))

    async def _until_held_before(self, chat_id: int, user_id: int, message_id: int) -> None:
        """Until every long message that arrived here before ``message_id`` is held."""
        while self._unheld_before(chat_id, user_id, message_id):
            await self._changed.wait()

    def _followed(self, chat_id: int, user_id: int, message_id: int) -> bool:
        return any(i > message_id for i in self._in_flight.get((chat_id, user_id), ()))

    async def hold(self, chat_id: int, user_id: int, message_id: int, text: str) -> str | None:
        """Keep a long part; the whole paste if this part ended it, or None when a later
        message carries it."""
        key = self.key(chat_id, user_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(key, {_member(message_id, text): message_id})
            pipe.expire(key, 60)
            await pipe.execute()
        self._held_here((chat_id, user_id), message_id)
        if self._followed(chat_id, user_id, message_id):
            return None
        gate.started()  # waiting costs nothing: let other updates start meanwhile
        await asyncio.sleep(HOLD_SECONDS)  # the paste may end on this part: wait for more
        await self._until_held_before(chat_id, user_id, message_id)  # the claim takes them
        if self._followed(chat_id, user_id, message_id):
            return None
        parts = await self._claim(keys=[key], args=[message_id])
        return join(parts) if parts else None

    def queue_take(self, pipe: Pipeline, chat_id: int, user_id: int) -> None:
        """Take the parts held before this message (two commands, no extra round trip).
        Note :meth:`late` for the message when queuing this, and give it to
        :meth:`complete`."""
        key = self.key(chat_id, user_id)
        pipe.zrange(key, 0, -1)
        pipe.delete(key)

    def late(self, chat_id: int, user_id: int, message_id: int) -> bool:
        """Whether a long message that arrived before ``message_id`` is not held yet: a
        take queued now may reach Redis before that part's hold does (they go over
        different connections), so it must be taken again once the part is held."""
        return self._unheld_before(chat_id, user_id, message_id)

    async def complete(
        self, chat_id: int, user_id: int, message_id: int, held: list[Any], late: bool = False
    ) -> list[Any]:
        """The parts before ``message_id``: those already taken (``held``, by a take
        queued when :meth:`late` said ``late``), and those of long messages that arrived
        here before it but were not held when it was taken (it waits until they are,
        then takes again). A gap in the message ids of the held parts (a part on its way
        through another replica) is waited for briefly. Returns at once, without I/O,
        when nothing is held and nothing is arriving."""
        gap_deadline = asyncio.get_running_loop().time() + HOLD_SECONDS
        while True:
            if late or self._unheld_before(chat_id, user_id, message_id):
                await self._until_held_before(chat_id, user_id, message_id)
                late = False
            elif bool(held) and _last_id(held) < message_id - 1:
                if asyncio.get_running_loop().time() >= gap_deadline:
                    return held
                await asyncio.sleep(0.05)
            else:
                return held
            async with self.redis.pipeline(transaction=True) as pipe:
                self.queue_take(pipe, chat_id, user_id)
                more, _ = await pipe.execute()
            held = sorted([*held, *more], key=_id)


class _Arrival:
    """One chat message's note (a plain context manager: one is made per message)."""

    __slots__ = ("_key", "_message_id", "_part", "_pastes")

    def __init__(self, pastes: Pastes, key: tuple[int, int], message_id: int, part: bool) -> None:
        self._pastes, self._key, self._message_id, self._part = pastes, key, message_id, part

    def __enter__(self) -> None:
        self._pastes._arrive(self._key, self._message_id, self._part)

    def __exit__(self, *exc: object) -> None:
        self._pastes._leave(self._key, self._message_id)


def _discard(notes: dict[tuple[int, int], set[int]], key: tuple[int, int], value: int) -> bool:
    """Remove ``value`` from the set at ``key``; whether it was there."""
    ids = notes.get(key)
    if ids is None or value not in ids:
        return False
    ids.discard(value)
    if not ids:
        del notes[key]
    return True


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
