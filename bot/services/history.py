"""Chat history in Redis: a capped list per chat and user, expiring when idle, trimmed to
the model's context budget when read."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from providers import Message

ROLES = ("system", "user", "assistant")
CHARS_PER_TOKEN = 3.5  # a deliberately cautious estimate for mixed languages
ANSWER_RESERVE = 0.25  # share of the context window left for the answer


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 4  # + per-message overhead


class History:
    def __init__(self, redis: Redis, max_messages: int, ttl_seconds: int) -> None:
        self.redis = redis
        self.max_messages = max_messages
        self.ttl = ttl_seconds

    @staticmethod
    def key(chat_id: int, user_id: int) -> str:
        return f"history:{{{user_id}}}:{chat_id}"

    def queue_read(self, pipe: Pipeline, chat_id: int, user_id: int) -> None:
        pipe.lrange(self.key(chat_id, user_id), -self.max_messages, -1)

    @staticmethod
    def parse(raw: Sequence[Any]) -> list[Message]:
        messages = []
        for item in raw:
            try:
                data = json.loads(item)
                role, content = data["r"], data["c"]
            except (ValueError, KeyError, TypeError):
                continue  # a damaged entry costs one message, not the conversation
            if role in ROLES and isinstance(content, str):
                messages.append(Message(role=role, content=content))
        return messages

    async def load(self, chat_id: int, user_id: int) -> list[Message]:
        return self.parse(
            await self.redis.lrange(self.key(chat_id, user_id), -self.max_messages, -1)
        )

    def queue_append(self, pipe: Pipeline, chat_id: int, user_id: int, *messages: Message) -> None:
        """Add messages, keep the newest ``max_messages``, renew the idle expiry."""
        key = self.key(chat_id, user_id)
        items = [json.dumps({"r": m.role, "c": m.content}, ensure_ascii=False) for m in messages]
        pipe.rpush(key, *items)
        pipe.ltrim(key, -self.max_messages, -1)
        pipe.expire(key, self.ttl)

    async def append(self, chat_id: int, user_id: int, *messages: Message) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            self.queue_append(pipe, chat_id, user_id, *messages)
            await pipe.execute()

    async def replace(self, chat_id: int, user_id: int, *messages: Message) -> None:
        """Start the conversation afresh with these messages."""
        await self.clear(chat_id, user_id)
        if messages:
            await self.append(chat_id, user_id, *messages)

    async def clear(self, chat_id: int, user_id: int) -> None:
        await self.redis.delete(self.key(chat_id, user_id))

    def queue_clear(self, pipe: Pipeline, chat_id: int, user_id: int) -> None:
        pipe.delete(self.key(chat_id, user_id))


def fit_context(
    history: Sequence[Message], prompt: Message, context_tokens: int | None
) -> list[Message]:
    """The newest history that fits the model's budget, then the prompt.

    Whole exchanges are dropped from the oldest end; the prompt is always kept (if it
    alone is too long, the provider says so and the user is told).
    """
    if context_tokens is None:
        return [*history, prompt]
    budget = int(context_tokens * (1 - ANSWER_RESERVE)) - estimate_tokens(prompt.content)
    kept: list[Message] = []
    for message in reversed(history):
        budget -= estimate_tokens(message.content)
        if budget < 0:
            break
        kept.append(message)
    kept.reverse()
    while kept and kept[0].role == "assistant":  # never start mid-exchange
        kept.pop(0)
    return [*kept, prompt]
