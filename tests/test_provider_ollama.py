"""The ``ollama`` adapter against a loopback double of Ollama's native API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from providers.base import ChatRequest, Chunk, Message, Provider, ProviderConfig
from providers.errors import (
    AuthenticationError,
    BadRequestError,
    ModelNotFoundError,
    ProviderError,
    RateLimitedError,
    UnavailableError,
)
from providers.ollama import OllamaProvider
from providers.registry import create, needs_key
from tests.doubles.base import DoubleServer, Reply
from tests.doubles.ollama_api import OllamaDouble

MODEL = "llama3.2:latest"


def ask(
    text: str = "hello there", *, temperature: float | None = None, max_tokens: int | None = None
) -> ChatRequest:
    return ChatRequest(
        model=MODEL,
        messages=[Message("system", "Be brief."), Message("user", text)],
        temperature=temperature,
        max_tokens=max_tokens,
    )


def make(url: str, *, key: str | None = None, timeout: float = 5.0) -> Provider:
    return create(
        ProviderConfig(
            name="local",
            kind="ollama",
            base_url=url,
            api_key=key,
            timeout=timeout,
            max_retries=2,
            backoff=0.01,
        )
    )


@pytest.fixture
async def double() -> AsyncIterator[OllamaDouble]:
    server = OllamaDouble()
    async with server:
        yield server


@pytest.fixture
async def ollama(double: OllamaDouble) -> AsyncIterator[Provider]:
    provider = make(double.url)
    yield provider
    await provider.aclose()


async def collect(provider: Provider, request: ChatRequest) -> tuple[list[Chunk], Exception | None]:
    """The chunks that arrived, and the error that ended the stream (if any)."""
    chunks: list[Chunk] = []
    try:
        async for chunk in provider.stream(request):
            chunks.append(chunk)
    except Exception as exc:
        return chunks, exc
    return chunks, None


async def test_registry_builds_the_ollama_adapter_without_a_key(ollama: Provider) -> None:
    assert isinstance(ollama, OllamaProvider)
    assert ollama.kind == "ollama"
    assert needs_key("ollama") is False


async def test_thinking_is_reasoning_not_text() -> None:
    """A thinking model's ``message.thinking`` lines come apart from the answer."""
    lines = [
        {"message": {"role": "assistant", "content": "", "thinking": "Hmm."}, "done": False},
        {"message": {"role": "assistant", "content": "Yes."}, "done": False},
        {"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop"},
    ]

    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        for line in lines:
            await response.write(json.dumps(line).encode() + b"\n")
        await response.write_eof()
        return response

    server = DoubleServer()
    server.app.router.add_post("/api/chat", chat)
    async with server:
        provider = make(server.url)
        try:
            chunks, error = await collect(provider, ask())
        finally:
            await provider.aclose()
    assert error is None
    assert "".join(c.reasoning for c in chunks) == "Hmm."
    assert "".join(c.text for c in chunks) == "Yes."


async def test_request_wire_format_without_authorization(
    ollama: Provider, double: OllamaDouble
) -> None:
    await ollama.complete(ask("hi", temperature=0.5, max_tokens=64))
    [call] = double.calls("/chat")
    assert call.method == "POST"
    assert call.path == "/api/chat"
    assert "Authorization" not in call.headers
    assert call.json == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "stream": True,
        "options": {"temperature": 0.5, "num_predict": 64},
    }


async def test_unset_options_are_not_sent(ollama: Provider, double: OllamaDouble) -> None:
    await ollama.complete(ask())
    await ollama.complete(ask(max_tokens=10))
    first, second = double.calls("/api/chat")
    assert "options" not in first.json
    assert second.json["options"] == {"num_predict": 10}


async def test_a_configured_key_is_sent_as_bearer() -> None:
    async with OllamaDouble(key="proxy-key") as server:
        provider = make(server.url, key="proxy-key")
        try:
            result = await provider.complete(ask("secured"))
        finally:
            await provider.aclose()
    assert result.text == "echo: secured"
    assert server.calls("/api/chat")[0].headers["Authorization"] == "Bearer proxy-key"


async def test_wrong_key_behind_a_proxy_is_an_authentication_error() -> None:
    async with OllamaDouble(key="proxy-key") as server:
        provider = make(server.url, key="not-the-key")
        try:
            with pytest.raises(AuthenticationError) as caught:
                await provider.complete(ask())
        finally:
            await provider.aclose()
    assert "not-the-key" not in str(caught.value)
    assert len(server.calls("/api/chat")) == 1


async def test_num_predict_limit_gives_length(ollama: Provider, double: OllamaDouble) -> None:
    double.default = Reply(text="one two three four five")
    result = await ollama.complete(ask(max_tokens=3))
    assert result.text == "one two three"
    assert result.finish_reason == "length"


async def test_no_counts_reported_gives_no_usage(ollama: Provider, double: OllamaDouble) -> None:
    double.default = Reply(text="ok", usage=None)
    result = await ollama.complete(ask())
    assert result.text == "ok"
    assert result.usage is None


async def test_list_models_are_the_tag_names(ollama: Provider, double: OllamaDouble) -> None:
    double.known_models = {"qwen2.5:7b", "llama3.2:latest", "gemma3:4b"}
    assert sorted(await ollama.list_models()) == ["gemma3:4b", "llama3.2:latest", "qwen2.5:7b"]
    [call] = double.calls("/api/tags")
    assert call.method == "GET"
    assert "Authorization" not in call.headers


async def test_error_line_before_any_text_is_retried(
    ollama: Provider, double: OllamaDouble
) -> None:
    double.queue.append(Reply(error_after=0, error="llama runner process has terminated"))
    result = await ollama.complete(ask("retry me"))
    assert result.text == "echo: retry me"
    assert len(double.calls("/api/chat")) == 2


async def test_error_line_about_a_missing_model(ollama: Provider, double: OllamaDouble) -> None:
    double.default = Reply(error_after=0, error='model "llama3.2:latest" not found')
    with pytest.raises(ModelNotFoundError):
        await ollama.complete(ask())
    assert len(double.calls("/api/chat")) == 1


async def test_stream_that_ends_without_done_is_unavailable() -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        await response.write(
            b'{"message": {"role": "assistant", "content": "half"}, "done": false}\n'
        )
        await response.write_eof()
        return response

    server = DoubleServer()
    server.app.router.add_post("/api/chat", chat)
    async with server:
        provider = make(server.url)
        try:
            chunks, error = await collect(provider, ask())
        finally:
            await provider.aclose()
    assert [c.text for c in chunks] == ["half"]
    assert isinstance(error, UnavailableError)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(status=400, error="invalid options"), BadRequestError),
        (Reply(status=429, retry_after=60), RateLimitedError),
        (Reply(status=502), UnavailableError),
        (Reply(malformed=True), UnavailableError),
        (Reply(cut_after=1), UnavailableError),
        (Reply(error_after=1), UnavailableError),
    ],
    ids=["400", "429-long-wait", "502", "malformed", "cut", "error-line"],
)
async def test_only_provider_errors_escape(
    ollama: Provider, double: OllamaDouble, reply: Reply, expected: type[ProviderError]
) -> None:
    double.default = reply
    _, error = await collect(ollama, ask())
    assert type(error) is expected, repr(error)
