"""The answers of recent comparisons (for "Continue with"), the votes they got, and the
leaderboard of those votes.

A comparison's answers live in ``compare:{<user>}:<id>`` for two days. A vote names a
comparison of the voter's own that still exists and a model whose answer is in it; it
counts once per comparison (one script), in ``votes:<bot id>``: the leaderboard, kept
without expiry on purpose (it is the running total of every vote)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

KEEP_SECONDS = 2 * 24 * 3600

# KEYS[1]: the comparison's hash. ARGV[1]: the model voted for. Returns 1 when the vote
# is taken, 0 when this comparison has a vote already, -1 when there is no such answer.
_VOTE = """
if redis.call('HEXISTS', KEYS[1], 'a:' .. ARGV[1]) == 0 then
  return -1
end
return redis.call('HSETNX', KEYS[1], 'voted', ARGV[1])
"""


@dataclass(frozen=True)
class Kept:
    question: str
    answer: str


class CompareStore:
    def __init__(self, redis: Redis, bot_id: int) -> None:
        self.redis = redis
        self.votes_key = f"votes:{bot_id}"
        self._vote = redis.register_script(_VOTE)

    @staticmethod
    def key(user_id: int, cid: str) -> str:
        return f"compare:{{{user_id}}}:{cid}"

    async def keep(self, user_id: int, cid: str, question: str, model_id: str, text: str) -> None:
        key = self.key(user_id, cid)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"q": question, f"a:{model_id}": text})
            pipe.expire(key, KEEP_SECONDS)
            await pipe.execute()

    async def load(self, user_id: int, cid: str, model_id: str) -> Kept | None:
        question, answer = await self.redis.hmget(self.key(user_id, cid), ["q", f"a:{model_id}"])
        if question is None or answer is None:
            return None
        return Kept(_text(question), _text(answer))

    async def load_all(self, user_id: int, cid: str) -> tuple[str, dict[str, str]] | None:
        """The question and every kept answer (model id -> text), in the order kept."""
        raw = await self.redis.hgetall(self.key(user_id, cid))
        fields = {_text(k): _text(v) for k, v in raw.items()}
        answers = {k[2:]: v for k, v in fields.items() if k.startswith("a:")}
        if "q" not in fields or not answers:
            return None
        return fields["q"], answers

    async def vote(self, user_id: int, cid: str, model_id: str) -> bool | None:
        """Count a vote, once per comparison; False if they voted already, None if the
        user has no such comparison with an answer from that model."""
        taken = int(await self._vote(keys=[self.key(user_id, cid)], args=[model_id]))
        if taken < 0:
            return None
        if taken:
            await self.redis.zincrby(self.votes_key, 1, model_id)
        return bool(taken)

    async def top(self) -> list[tuple[str, int]]:
        rows: list[Any] = await self.redis.zrevrange(self.votes_key, 0, -1, withscores=True)
        return [(_text(model), int(score)) for model, score in rows]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
