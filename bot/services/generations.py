"""Answers being generated: one at a time per chat and user across every replica, and
stoppable from any replica.

The lock is a Redis key per chat and user (``busy:{<user>}:<chat>``) holding the
generation's id; it is taken in the same pipeline that reads the user's preferences
and history, and given back in the one that writes the history, so it costs no extra
round trip. Only its owner gives it back (compare-and-delete in one script): once /stop
freed a chat and a new answer took it, the first answer's bookkeeping leaves it alone.
The lock is a short lease, renewed while its answer runs, so a replica that dies or
loses Redis mid-answer frees the chat within ``LOCK_SECONDS``. A Stop (button, draft
Stop, or /stop) is published on the bot's control channel; the replica running that
generation sets its stop event.

On a Redis Cluster the control channel is a sharded channel (SPUBLISH / SSUBSCRIBE,
Redis 7): a message goes to the one shard that owns the channel's slot, where every
replica of the bot subscribes, instead of being broadcast over the cluster bus to every
node as a classic PUBLISH is. Stops and reloads are rare (a person's press, an admin's
command), so one slot carries them easily. Elsewhere it is a classic channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPubSub, RedisCluster
from redis.exceptions import PubSubError, RedisClusterException, RedisError

from bot.redis_client import Replicated

log = logging.getLogger(__name__)

LOCK_SECONDS = 30  # a lock's lease: renewed while its answer runs
RENEW_EVERY = 10.0  # seconds between renewals of a running answer's lease
RETRY_SECONDS = 24 * 3600  # how long a failed request can be retried
LOCK_PATIENCE = 2.0  # how long a message waits for the answer before it to finish
LISTEN_POLL = 5.0  # seconds a sharded subscription waits for a message, then asks again


@dataclass(frozen=True, slots=True)
class Photo:
    """A file of a request (a photo, a voice message), as Telegram keeps it: Retry
    downloads it again (the bot never keeps the bytes)."""

    file_id: str
    mime: str


@dataclass(frozen=True, slots=True)
class Retry:
    """What a Retry button asks again."""

    chat_id: int
    prompt: str  # the text; a photo's caption; a comparison's question; a voice file's name
    photo: Photo | None = None  # a chat turn's photo, or the voice message to transcribe
    kind: str = "chat"  # "chat", "image" (/image), "voice", or "compare" (one model of it)
    model: str | None = None  # the model of a comparison's answer

    def dump(self) -> str:
        photo = [self.photo.file_id, self.photo.mime] if self.photo is not None else None
        data = {"chat": self.chat_id, "prompt": self.prompt, "photo": photo}
        if self.kind != "chat":
            data.update(kind=self.kind, model=self.model)
        return json.dumps(data)

    @classmethod
    def load(cls, raw: str) -> Retry:
        if not raw.startswith("{"):  # kept by an earlier version: "<chat>\n<prompt>"
            chat, _, prompt = raw.partition("\n")
            return cls(int(chat), prompt)
        data = json.loads(raw)
        photo = Photo(*data["photo"]) if data.get("photo") else None
        kind, model = str(data.get("kind", "chat")), data.get("model")
        return cls(int(data["chat"]), str(data["prompt"]), photo, kind, model)


# KEYS[1]: a chat's lock. ARGV[1]: the owner's generation id; ARGV[2]: seconds, to renew
# the lease (absent: give it back). Acts only if the lock is still the owner's.
_OWNED = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] then
  return redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return redis.call('DEL', KEYS[1])
"""


def _retry(raw: bytes | str) -> Retry:
    return Retry.load(raw.decode() if isinstance(raw, bytes) else raw)


def new_id() -> int:
    """A generation id; also the draft id of its answer (non-zero, 31 bits)."""
    return random.randint(1, 2**31 - 1)


class _Lease:
    """A lock's lease while its answer runs: a timer, not a task, until the first renewal
    (most answers end before it); a plain async context manager, as one is made per
    message."""

    __slots__ = (
        "_chat_id",
        "_every",
        "_gen_id",
        "_generations",
        "_key",
        "_over",
        "_task",
        "_timer",
    )

    def __init__(
        self, generations: Generations, chat_id: int, gen_id: int, key: str, every: float
    ) -> None:
        self._generations = generations
        self._chat_id, self._gen_id, self._key, self._every = chat_id, gen_id, key, every
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._over = False

    async def __aenter__(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._every, self._start)

    async def __aexit__(self, *exc: object) -> None:
        # Said as well as cancelled: with the connection pool busy, a cancel landing in
        # a renewal was seen lost inside redis-py; the renewals then went on forever,
        # this answer waited for them, and its chat stayed locked.
        self._over = True
        if self._timer is not None:
            self._timer.cancel()
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.wait({task})  # a cancel of this answer itself is not swallowed

    def _start(self) -> None:
        self._timer = None
        self._task = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        owned = self._generations._owned
        while not self._over:
            try:
                if not await owned(keys=[self._key], args=[self._gen_id, LOCK_SECONDS]):
                    return  # /stop freed the chat: it is not ours any more
            except RedisError as exc:
                if self._over:
                    return
                log.warning("chat %s: could not renew its lock: %s", self._chat_id, exc)
            if not self._over:
                await asyncio.sleep(self._every)


class Generations:
    def __init__(self, redis: Redis, bot_id: int, replicated: Replicated | None = None) -> None:
        self.redis = redis
        # under Sentinel, a lock given back is made sure of on a replica (see _record)
        self.replicated = replicated or Replicated(0)
        self.channel = f"control:{bot_id}"
        self.sharded = isinstance(redis, RedisCluster)  # the control channel's kind
        # generation id -> part (a /compare model; 0 for a chat answer) -> its Stop
        self._running: dict[int, dict[int, asyncio.Event]] = {}
        # (chat, user) -> set when the answer that held its lock has recorded its outcome
        self._finishing: dict[tuple[int, int], asyncio.Event] = {}
        self._listener: asyncio.Task[None] | None = None
        self._closing = False  # aclose() was called: the listener ends
        self.on_reload: Callable[[], Awaitable[object]] | None = None
        self._owned = redis.register_script(_OWNED)

    @staticmethod
    def lock_key(chat_id: int, user_id: int) -> str:
        return f"busy:{{{user_id}}}:{chat_id}"

    @staticmethod
    def retry_key(user_id: int, gen_id: int) -> str:
        return f"retry:{{{user_id}}}:{gen_id}"

    def queue_lock(self, pipe: Pipeline, chat_id: int, user_id: int, gen_id: int) -> None:
        pipe.set(self.lock_key(chat_id, user_id), gen_id, nx=True, ex=LOCK_SECONDS)

    async def lock_soon(
        self, chat_id: int, user_id: int, gen_id: int, patience: float = LOCK_PATIENCE
    ) -> bool:
        """Take the chat's lock, waiting briefly: the answer before may just be recording
        its outcome (the user saw it finish and wrote at once). When that answer ran in
        this process, wait for its record however long it takes: after Redis refused
        writes for a while it is retried every ``RECORD_EVERY`` (``bot.services.chat``),
        and Redis takes writes again now (this message's own lock was not refused)."""
        finishing = self._finishing.get((chat_id, user_id))
        if finishing is not None:
            await finishing.wait()
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            key = self.lock_key(chat_id, user_id)
            if await self.redis.set(key, gen_id, nx=True, ex=LOCK_SECONDS):
                return True
        return False

    def queue_unlock(self, pipe: Pipeline, chat_id: int, user_id: int, gen_id: int) -> None:
        """Give the chat back, if this generation still holds it. (The script's text
        rides in the pipeline: a registered script would cost a SCRIPT EXISTS first.)"""
        pipe.eval(_OWNED, 1, self.lock_key(chat_id, user_id), gen_id)

    def queue_retry(self, pipe: Pipeline, user_id: int, gen_id: int, retry: Retry) -> None:
        """Keep a failed or stopped request so that its Retry button can ask again."""
        pipe.set(self.retry_key(user_id, gen_id), retry.dump(), ex=RETRY_SECONDS)

    async def take_retry(self, user_id: int, gen_id: int, chat_id: int) -> Retry | None:
        """The request a Retry button in ``chat_id`` asks again, taken once; None (and
        left in place) when there is none, or it was asked in another chat."""
        key = self.retry_key(user_id, gen_id)
        kept = await self.redis.get(key)
        if kept is None or _retry(kept).chat_id != chat_id:
            return None
        taken = await self.redis.getdel(key)  # two presses at once: one takes it
        return _retry(taken) if taken is not None else None

    async def unlock(self, chat_id: int, user_id: int, gen_id: int) -> None:
        await self._owned(keys=[self.lock_key(chat_id, user_id)], args=[gen_id])

    def lease(self, chat_id: int, user_id: int, gen_id: int, every: float = RENEW_EVERY) -> _Lease:
        """While the block (``async with``) runs, renew the chat's lock that ``gen_id``
        holds (a renewal Redis misses is tried again at the next one)."""
        return _Lease(self, chat_id, gen_id, self.lock_key(chat_id, user_id), every)

    @contextlib.contextmanager
    def finishing(self, chat_id: int, user_id: int) -> Iterator[None]:
        """While an answer that held the chat's lock records its outcome (and gives the
        lock back), the next message of the chat waits for it (:meth:`lock_soon`)."""
        key = (chat_id, user_id)
        done = self._finishing[key] = asyncio.Event()
        try:
            yield
        finally:
            done.set()
            if self._finishing.get(key) is done:
                del self._finishing[key]

    @contextlib.contextmanager
    def running(self, gen_id: int, part: int = 0) -> Iterator[asyncio.Event]:
        """Register a generation, or one ``part`` of it (a /compare model), in this
        process; yields the event that stops it."""
        parts = self._running.setdefault(gen_id, {})
        event = parts[part] = asyncio.Event()
        try:
            yield event
        finally:
            del parts[part]
            if not parts:
                del self._running[gen_id]

    async def stop(self, gen_id: int, part: int | None = None) -> None:
        """Stop a generation wherever it runs: all of it, or one ``part``."""
        if not self._stop_here(gen_id, part):
            await self._publish(f"stop {gen_id} {'' if part is None else part}")

    def _stop_here(self, gen_id: int, part: int | None) -> bool:
        """Stop it if it runs in this process; whether it does."""
        parts = self._running.get(gen_id)
        if parts is None:
            return False
        for number, event in parts.items():
            if part is None or number == part:
                event.set()
        return True

    async def stop_own(
        self, chat_id: int, user_id: int, gen_id: int, part: int | None = None
    ) -> bool:
        """A Stop button: only its answer's own user may stop it (groups have others)."""
        raw = await self.redis.get(self.lock_key(chat_id, user_id))
        if raw is None or int(raw) != gen_id:
            return False
        await self.stop(gen_id, part)
        return True

    async def stop_chat(self, chat_id: int, user_id: int) -> bool:
        """/stop: stop this chat's answer, if any, and free the chat. True if one ran."""
        raw = await self.redis.getdel(self.lock_key(chat_id, user_id))
        if raw is None:
            return False
        await self.stop(int(raw))
        return True

    async def announce_reload(self) -> None:
        await self._publish("reload")

    async def _publish(self, message: str) -> None:
        if self.sharded:
            await self.redis.spublish(self.channel, message)
        else:
            await self.redis.publish(self.channel, message)

    def start_listening(self) -> None:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen())

    async def aclose(self) -> None:
        """Stop following the control channel. A cancel alone can be lost: on Python
        3.11 a cancel that lands as a read's timeout expires inside redis-py comes out as
        a timeout, which the listener takes for a lost connection. So the listener is
        told to stop too, and cancelled again until it has."""
        self._closing = True
        task = self._listener
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)

    async def _listen(self) -> None:
        """Follow the control channel; reconnect with a pause if Redis goes away (or, on
        a cluster, the channel's shard moves: the subscription is made again on the node
        that owns its slot then)."""
        while not self._closing:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    if self.sharded:
                        await self._follow_shard(cast(ClusterPubSub, pubsub))
                    else:
                        await pubsub.subscribe(self.channel)
                        async for message in pubsub.listen():
                            await self._handle(message.get("data"))
            except asyncio.CancelledError:
                raise
            except (RedisError, RedisClusterException, OSError) as exc:
                log.warning("control channel lost (%s); reconnecting", exc)
                await asyncio.sleep(1.0)

    async def _follow_shard(self, pubsub: ClusterPubSub) -> None:
        await cast(RedisCluster, self.redis).initialize()  # the slot map, at the start
        await pubsub.ssubscribe(self.channel)
        while True:
            message = await pubsub.get_sharded_message(
                ignore_subscribe_messages=True, timeout=LISTEN_POLL
            )
            if message is not None:
                await self._handle(message.get("data"))
            elif not pubsub.node_pubsub_mapping:  # the subscription was dropped
                raise PubSubError("the control channel is not subscribed any more")

    async def _handle(self, data: object) -> None:
        text = data.decode() if isinstance(data, bytes) else str(data)
        command, _, argument = text.partition(" ")
        gen_id, _, part = argument.partition(" ")
        if command == "stop" and gen_id.isdigit() and (part.isdigit() or not part):
            self._stop_here(int(gen_id), int(part) if part else None)
        elif command == "reload" and self.on_reload is not None:
            try:
                await self.on_reload()
            except Exception:
                log.exception("reload failed")
