"""The ``llama`` adapter against a loopback double of Meta's Llama API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from providers.base import ChatRequest, Chunk, Message, Provider, ProviderConfig, Usage
from providers.errors import (
    AuthenticationError,
    BadRequestError,
    ContextTooLongError,
    ModelNotFoundError,
    ProviderError,
    RateLimitedError,
    UnavailableError,
)
from providers.registry import create
from tests.doubles.base import DoubleServer, Reply
from tests.doubles.llama_api import LlamaDouble

MODEL = "Llama-3.3-70B-Instruct"


def ask(
    text: str = "hello there", *, temperature: float | None = None, max_tokens: int | None = None
) -> ChatRequest:
    return ChatRequest(
        model=MODEL,
        messages=[Message("system", "Be brief."), Message("user", text)],
        temperature=temperature,
        max_tokens=max_tokens,
    )


def make(url: str, *, key: str | None = "test-key", timeout: float = 5.0) -> Provider:
    return create(
        ProviderConfig(
            name="llama",
            kind="llama",
            base_url=f"{url}/v1",
            api_key=key,
            timeout=timeout,
            max_retries=2,
            backoff=0.01,
        )
    )


@pytest.fixture
async def double() -> AsyncIterator[LlamaDouble]:
    server = LlamaDouble()
    async with server:
        yield server


@pytest.fixture
async def llama(double: LlamaDouble) -> AsyncIterator[Provider]:
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


async def test_request_wire_format(llama: Provider, double: LlamaDouble) -> None:
    await llama.complete(ask("hi", temperature=0.4, max_tokens=256))
    [call] = double.calls("/chat/completions")
    assert call.method == "POST"
    assert call.path == "/v1/chat/completions"
    assert call.headers["Authorization"] == "Bearer test-key"
    assert call.json == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ],
        "stream": True,
        "temperature": 0.4,
        "max_completion_tokens": 256,
    }


async def test_unset_options_are_not_sent_and_temperature_is_clamped(
    llama: Provider, double: LlamaDouble
) -> None:
    await llama.complete(ask())
    await llama.complete(ask(temperature=1.8))
    first, second = double.calls("/chat/completions")
    assert "temperature" not in first.json
    assert "max_completion_tokens" not in first.json
    assert second.json["temperature"] == 1.0


async def test_length_stop_reason_is_passed_on(llama: Provider, double: LlamaDouble) -> None:
    double.default = Reply(text="one two three four five")
    result = await llama.complete(ask(max_tokens=2))
    assert result.text == "one two"
    assert result.finish_reason == "length"


async def test_no_usage_reported_gives_none(llama: Provider, double: LlamaDouble) -> None:
    double.default = Reply(text="ok", usage=None)
    result = await llama.complete(ask())
    assert result.text == "ok"
    assert result.usage is None


async def test_a_done_marker_is_harmless(llama: Provider, double: LlamaDouble) -> None:
    double.send_done = True
    result = await llama.complete(ask("done?"))
    assert result.text == "echo: done?"
    assert result.usage == Usage(input_tokens=7, output_tokens=11)


async def test_list_models(llama: Provider, double: LlamaDouble) -> None:
    double.known_models = {MODEL, "Llama-3.3-8B-Instruct"}
    assert sorted(await llama.list_models()) == ["Llama-3.3-70B-Instruct", "Llama-3.3-8B-Instruct"]
    assert double.calls("/v1/models")[0].headers["Authorization"] == "Bearer test-key"


async def test_model_complaint_in_a_400_is_model_not_found(
    llama: Provider, double: LlamaDouble
) -> None:
    double.default = Reply(status=400, error="Model 'Llama-9' does not exist")
    with pytest.raises(ModelNotFoundError):
        await llama.complete(ask())


async def test_json_of_the_wrong_shape_is_unavailable() -> None:
    async def chat(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n')
        await response.write_eof()
        return response

    server = DoubleServer()
    server.app.router.add_post("/v1/chat/completions", chat)
    async with server:
        provider = make(server.url)
        try:
            with pytest.raises(UnavailableError, match="unexpected stream data"):
                await provider.complete(ask())
        finally:
            await provider.aclose()


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(status=401), AuthenticationError),
        (Reply(status=403), AuthenticationError),
        (Reply(status=400, error="bad field"), BadRequestError),
        (Reply(status=400, error="prompt is too long for the context window"), ContextTooLongError),
        (Reply(status=413), ContextTooLongError),
        (Reply(status=422), BadRequestError),
        (Reply(status=429, retry_after=60), RateLimitedError),
        (Reply(status=502), UnavailableError),
        (Reply(malformed=True), UnavailableError),
        (Reply(cut_after=1), UnavailableError),
    ],
    ids=[
        "401",
        "403",
        "400",
        "400-context",
        "413",
        "422",
        "429-long-wait",
        "502",
        "malformed",
        "cut",
    ],
)
async def test_only_provider_errors_escape(
    llama: Provider, double: LlamaDouble, reply: Reply, expected: type[ProviderError]
) -> None:
    double.default = reply
    _, error = await collect(llama, ask())
    assert type(error) is expected, repr(error)
