"""Requests spread over several HTTP clients (providers/shards.py): each carries a
bounded number at once, a quiet provider uses one, and a stream holds its client until
it ends, also against the real doubles of two API kinds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from providers.base import ChatRequest, Chunk, Message, ProviderConfig
from providers.ollama import OllamaProvider
from providers.openai import OpenAIProvider
from providers.shards import PER_CLIENT, Shards
from tests.doubles.base import Reply
from tests.doubles.ollama_api import OllamaDouble
from tests.doubles.openai_api import OpenAIDouble


class Client:
    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False


def shards(per_client: int = 2) -> tuple[Shards[Client], list[Client]]:
    made: list[Client] = []

    def make() -> Client:
        made.append(Client(len(made)))
        return made[-1]

    async def close(client: Client) -> None:
        client.closed = True

    return Shards(make, close, per_client), made


def test_a_client_is_made_only_when_every_one_is_full() -> None:
    pool, made = shards(per_client=2)
    with pool.use() as a, pool.use() as b, pool.use() as c:
        assert (a.number, b.number, c.number) == (0, 0, 1)
        assert pool.loads == [2, 1]
    assert pool.loads == [0, 0]
    with pool.use() as again:
        assert again.number == 0  # the first with room: its connections are reused
    assert len(made) == 2


def test_a_failed_request_gives_its_place_back() -> None:
    pool, _ = shards(per_client=1)
    with pytest.raises(RuntimeError), pool.use():
        raise RuntimeError("the request failed")
    assert pool.loads == [0]
    with pool.use() as client:
        assert client.number == 0


async def test_closing_closes_every_client_made() -> None:
    pool, made = shards(per_client=1)
    with pool.use(), pool.use():
        pass
    await pool.aclose()
    assert [c.closed for c in made] == [True, True]
    assert len(pool) == 0


def ask(n: int) -> ChatRequest:
    return ChatRequest(model="m", messages=[Message("user", f"question {n}")])


async def held_streams(provider: Any, count: int) -> tuple[list[str], list[int]]:
    """``count`` streams open at once (each has its first chunk before any goes on),
    then every one read to its end: the texts, and the clients' loads while all were
    open."""
    streams: list[AsyncIterator[Chunk]] = [provider.stream(ask(n)) for n in range(count)]
    firsts = await asyncio.gather(*(anext(s) for s in streams))
    loads = provider.clients.loads

    async def rest(first: Chunk, stream: AsyncIterator[Chunk]) -> str:
        return first.text + "".join([c.text async for c in stream])

    texts = await asyncio.gather(*(rest(f, s) for f, s in zip(firsts, streams, strict=True)))
    return texts, loads


@pytest.mark.parametrize("kind", ["openai", "ollama"])
async def test_streams_at_once_are_spread_and_each_holds_its_client(kind: str) -> None:
    double = OpenAIDouble(key="k") if kind == "openai" else OllamaDouble()
    async with double:
        double.default = Reply(chunks=["one ", "two ", "three"])
        base_url = double.base_url if kind == "openai" else double.url
        config = ProviderConfig(name="p", kind=kind, base_url=base_url, api_key="k", timeout=5.0)
        provider = OpenAIProvider(config) if kind == "openai" else OllamaProvider(config)
        try:
            count = 2 * PER_CLIENT + 5
            texts, loads = await held_streams(provider, count)
            assert texts == ["one two three"] * count
            assert loads == [PER_CLIENT, PER_CLIENT, 5]
            assert provider.clients.loads == [0, 0, 0]  # each stream gave its place back
            texts, loads = await held_streams(provider, 3)
            assert texts == ["one two three"] * 3
            assert loads == [3, 0, 0]  # a quiet provider uses its first client
        finally:
            await provider.aclose()
