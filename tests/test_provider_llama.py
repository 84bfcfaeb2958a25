"""The ``llama`` adapter against a loopback double of Meta's Llama API."""

from __future__ import annotations

import socket
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
    ProviderTimeoutError,
    RateLimitedError,
    UnavailableError,
)
from providers.llama import LlamaProvider
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


async def test_registry_builds_the_llama_adapter(llama: Provider) -> None:
    assert isinstance(llama, LlamaProvider)
    assert llama.kind == "llama"
    assert LlamaProvider.needs_key


async def test_stream_text_in_order_then_stop_reason_and_usage(
    llama: Provider, double: LlamaDouble
) -> None:
    double.default = Reply(text="The quick brown fox jumps.", usage=(12, 5))
    chunks, error = await collect(llama, ask())
    assert error is None
    texts = [c.text for c in chunks if c.text]
    assert texts == ["The", " quick", " brown", " fox", " jumps."]
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage == Usage(input_tokens=12, output_tokens=5)
    assert all(c.finish_reason is None for c in chunks[:-1])


async def test_complete_collects_the_echo(llama: Provider) -> None:
    result = await llama.complete(ask("what is 2+2?"))
    assert result.text == "echo: what is 2+2?"
    assert result.finish_reason == "stop"
    assert result.usage == Usage(input_tokens=7, output_tokens=11)


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


async def test_wrong_key_is_an_authentication_error_not_retried(double: LlamaDouble) -> None:
    provider = make(double.url, key="sk-wrong-secret")
    try:
        with pytest.raises(AuthenticationError) as caught:
            await provider.complete(ask())
        assert caught.value.status == 401
        assert "sk-wrong-secret" not in str(caught.value)
        assert len(double.calls("/chat/completions")) == 1
        with pytest.raises(AuthenticationError):
            await provider.list_models()
    finally:
        await provider.aclose()


async def test_unknown_model_is_model_not_found(llama: Provider, double: LlamaDouble) -> None:
    double.known_models = {"Llama-4-Scout-17B-16E-Instruct-FP8"}
    with pytest.raises(ModelNotFoundError) as caught:
        await llama.complete(ask())
    assert caught.value.status == 404
    assert len(double.calls("/chat/completions")) == 1


async def test_model_complaint_in_a_400_is_model_not_found(
    llama: Provider, double: LlamaDouble
) -> None:
    double.default = Reply(status=400, error="Model 'Llama-9' does not exist")
    with pytest.raises(ModelNotFoundError):
        await llama.complete(ask())


async def test_429_waits_retry_after_then_succeeds(llama: Provider, double: LlamaDouble) -> None:
    double.queue.append(Reply(status=429, error="Too many requests", retry_after=0.25))
    result = await llama.complete(ask("again"))
    assert result.text == "echo: again"
    first, second = double.calls("/chat/completions")
    assert second.time - first.time >= 0.24


async def test_429_past_the_retries_is_rate_limited(llama: Provider, double: LlamaDouble) -> None:
    double.default = Reply(status=429, error="Too many requests", retry_after=0.01)
    with pytest.raises(RateLimitedError) as caught:
        await llama.complete(ask())
    assert caught.value.retry_after == pytest.approx(0.01)
    assert len(double.calls("/chat/completions")) == 3


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retried_then_unavailable(
    llama: Provider, double: LlamaDouble, status: int
) -> None:
    double.default = Reply(status=status, error="upstream exploded")
    with pytest.raises(UnavailableError) as caught:
        await llama.complete(ask())
    assert caught.value.status == status
    assert len(double.calls("/chat/completions")) == 3  # the first try and max_retries=2


async def test_a_server_error_then_success(llama: Provider, double: LlamaDouble) -> None:
    double.queue.append(Reply(status=503))
    result = await llama.complete(ask("ok?"))
    assert result.text == "echo: ok?"
    assert len(double.calls("/chat/completions")) == 2


async def test_hang_is_a_timeout(double: LlamaDouble) -> None:
    provider = make(double.url, timeout=0.3)
    double.default = Reply(hang=True)
    try:
        with pytest.raises(ProviderTimeoutError):
            await provider.complete(ask())
    finally:
        await provider.aclose()
    assert len(double.calls("/chat/completions")) == 1


async def test_stall_mid_stream_is_a_timeout_after_the_text(double: LlamaDouble) -> None:
    provider = make(double.url, timeout=0.3)
    double.default = Reply(text="slow answer", chunk_delay=2.0)
    try:
        chunks, error = await collect(provider, ask())
    finally:
        await provider.aclose()
    assert [c.text for c in chunks] == ["slow"]
    assert isinstance(error, ProviderTimeoutError)


async def test_cut_after_text_is_unavailable_and_not_retried(
    llama: Provider, double: LlamaDouble
) -> None:
    double.default = Reply(text="one two three four", cut_after=2)
    chunks, error = await collect(llama, ask())
    assert [c.text for c in chunks] == ["one", " two"]
    assert isinstance(error, UnavailableError)
    assert len(double.calls("/chat/completions")) == 1


async def test_malformed_stream_is_unavailable(llama: Provider, double: LlamaDouble) -> None:
    double.default = Reply(malformed=True)
    with pytest.raises(UnavailableError):
        await llama.complete(ask())
    assert len(double.calls("/chat/completions")) == 3


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


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_unreachable_server_is_unavailable() -> None:
    provider = make(f"http://127.0.0.1:{_closed_port()}")
    try:
        with pytest.raises(UnavailableError):
            await provider.complete(ask())
        with pytest.raises(UnavailableError):
            await provider.list_models()
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
