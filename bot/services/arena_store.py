"""Blind battles in Redis: each battle of a user, the one vote it may get, and the counted
outcomes per pair of models that the leaderboard is fitted from.

- ``arena:{<user>}:<battle>``: a hash, two days: the question, which model is A and which
  is B, the chat and the first message of each answer (as shown, to reveal the names by
  editing it), its state (``run`` while streaming, ``ready`` once both answered, ``void``
  when one failed or was stopped), ``named`` when an answer named its own model, and the
  vote once cast. A battle id is opaque: nothing a user sees names a model before the vote.
- ``arena_votes:{<user>}:<date>``: the user's counted votes that day (``ARENA_DAILY_VOTES``).
- ``arena:pairs:<bot id>``: counted outcomes, fields ``<a>|<b>|w`` (a beat b), ``|l`` (b
  beat a) and ``|t`` (a tie, or both bad), for model ids ``a < b``: the fit costs O(models²)
  whatever the number of votes. Kept without expiry: it is the leaderboard's data.
- ``arena:board:<bot id>``: the fitted board, cached briefly so that every replica shows
  the same one and a busy /top fits once.

The vote is one script on the user's slot (exists, finished, not voted yet, counted or
not); the pair counter is a second step on the global hash (a cluster may hold it apart).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from bot.services import ratings

KEEP_SECONDS = 2 * 24 * 3600
BOARD_SECONDS = 30  # how long a fitted leaderboard is shown before it is fitted again
# the buttons' choices: A better, B better, a tie, both bad
CHOICES: dict[str, ratings.Outcome] = {"a": "a", "b": "b", "t": "tie", "x": "both_bad"}

# KEYS[1]: the battle. KEYS[2]: the user's votes today. ARGV: the choice, the daily cap,
# seconds to keep the day's counter. Returns a Vote.
_VOTE = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return -1
end
if state ~= 'ready' then
  return -2
end
if redis.call('HSETNX', KEYS[1], 'vote', ARGV[1]) == 0 then
  return 0
end
if redis.call('HEXISTS', KEYS[1], 'named') == 1 then
  return 2
end
local used = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
if used > tonumber(ARGV[2]) then
  return 3
end
return 1
"""


class Vote(IntEnum):
    UNKNOWN = -1  # no such battle of this user (expired, or forged)
    NOT_READY = -2  # still streaming, or void
    ALREADY = 0  # voted before
    COUNTED = 1
    NAMED = 2  # an answer named its model: revealed, not counted
    OVER_CAP = 3  # over the day's counted votes: thanked, not counted


@dataclass(frozen=True)
class Battle:
    question: str
    a: str  # model ids
    b: str
    chat_id: int
    shown: dict[str, dict[str, Any]]  # side ("a"/"b") -> {"id", "last", "text", "entities"}
    state: str
    named: list[str]  # models whose answers named them
    vote: str | None


class ArenaStore:
    def __init__(self, redis: Redis, bot_id: int) -> None:
        self.redis = redis
        self.pairs_key = f"arena:pairs:{bot_id}"
        self.board_key = f"arena:board:{bot_id}"
        self._vote = redis.register_script(_VOTE)

    @staticmethod
    def key(user_id: int, battle_id: str) -> str:
        return f"arena:{{{user_id}}}:{battle_id}"

    @staticmethod
    def votes_key(user_id: int, date: str) -> str:
        return f"arena_votes:{{{user_id}}}:{date}"

    async def start(
        self, user_id: int, battle_id: str, question: str, a: str, b: str, chat_id: int
    ) -> None:
        key = self.key(user_id, battle_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            fields: dict[str | bytes, str | int] = {
                "q": question,
                "a": a,
                "b": b,
                "chat": chat_id,
                "state": "run",
            }
            pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
            pipe.expire(key, KEEP_SECONDS)
            await pipe.execute()

    async def finish(
        self,
        user_id: int,
        battle_id: str,
        state: str,
        named: list[str],
        shown: Mapping[str, Mapping[str, Any]],
    ) -> None:
        """Both answers are in: ``ready`` for a vote, or ``void``; ``named``: the models
        whose answers named them."""
        mapping: dict[str | bytes, str | int] = {"state": state, "shown": json.dumps(shown)}
        if named:
            mapping["named"] = ",".join(named)
        await self.redis.hset(self.key(user_id, battle_id), mapping=mapping)  # type: ignore[arg-type]

    async def load(self, user_id: int, battle_id: str) -> Battle | None:
        raw = await self.redis.hgetall(self.key(user_id, battle_id))
        if not raw:
            return None
        data = {_text(k): _text(v) for k, v in raw.items()}
        try:
            return Battle(
                question=data["q"],
                a=data["a"],
                b=data["b"],
                chat_id=int(data["chat"]),
                shown=json.loads(data.get("shown", "{}")),
                state=data["state"],
                named=[m for m in data.get("named", "").split(",") if m],
                vote=data.get("vote"),
            )
        except (KeyError, ValueError):
            return None

    async def vote(
        self, user_id: int, battle_id: str, choice: str, date: str, cap: int, keep: int
    ) -> Vote:
        """Take the user's one vote on a finished battle of theirs; whether it counts."""
        keys = [self.key(user_id, battle_id), self.votes_key(user_id, date)]
        return Vote(int(await self._vote(keys=keys, args=[choice, cap, keep])))

    async def count(self, a: str, b: str, choice: str) -> None:
        """Add a counted outcome to the pair's counters (``a`` was shown as Model A);
        the cached board is fitted again at the next /top."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(self.pairs_key, ratings.vote_field(a, b, CHOICES[choice]), 1)
            pipe.delete(self.board_key)
            await pipe.execute()

    async def pairs(self) -> dict[tuple[str, str], ratings.PairCounts]:
        """The counted outcomes per pair of models."""
        return ratings.parse_pairs(await self.redis.hgetall(self.pairs_key))

    def queue_pairs(self, pipe: Pipeline) -> None:
        pipe.hgetall(self.pairs_key)

    @staticmethod
    def battles_between(raw: Mapping[Any, Any]) -> dict[frozenset[str], int]:
        """Counted battles per unordered pair (from ``queue_pairs``): the picker favours
        the fewest."""
        return {frozenset(p): counts.battles for p, counts in ratings.parse_pairs(raw).items()}

    async def cached_board(self) -> str | None:
        raw = await self.redis.get(self.board_key)
        return _text(raw) if raw is not None else None

    async def cache_board(self, board: str) -> None:
        await self.redis.set(self.board_key, board, ex=BOARD_SECONDS)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
