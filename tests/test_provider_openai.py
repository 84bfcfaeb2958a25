"""The ``openai`` adapter against a real loopback double of the Chat Completions API: what
is its own (the wire format, error events, other servers' SSE framing). What every kind
shares is in tests/test_provider_conformance.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web

from providers.base import ChatRequest, Chunk, Message, Provider, ProviderConfig, Usage
from providers.errors import (
    BadRequestError,
    ContextTooLongError,
    ProviderError,
    RateLimitedError,
    UnavailableError,
)
from providers.openai import OpenAIProvider
from tests.doubles.base import DoubleServer, Reply
from tests.doubles.openai_api import OpenAIDouble

KEY = "test-key"
MODEL = "gpt-5-mini"

MakeProvider = Callable[..., OpenAIProvider]


def ask(text: str = "hello there world", **options: Any) -> ChatRequest:
    return ChatRequest(
        model=options.pop("model", MODEL),
        messages=[Message("system", "Be brief."), Message("user", text)],
        **options,
    )


async def collect(provider: Provider, request: ChatRequest) -> list[Chunk]:
    return [chunk async for chunk in provider.stream(request)]


async def collect_until_error(
    provider: Provider, request: ChatRequest
) -> tuple[list[Chunk], BaseException]:
    """The chunks that arrived before the stream failed, and what it failed with."""
    chunks: list[Chunk] = []
    try:
        async for chunk in provider.stream(request):
            chunks.append(chunk)
    except BaseException as exc:  # the test inspects whatever escaped
        return chunks, exc
    raise AssertionError(f"the stream did not fail; got {chunks!r}")


@pytest.fixture
async def double() -> AsyncIterator[OpenAIDouble]:
    async with OpenAIDouble(key=KEY) as server:
        yield server


@pytest.fixture
async def make() -> AsyncIterator[MakeProvider]:
    """Build providers (fast retries, short timeouts) and close them after the test."""
    made: list[OpenAIProvider] = []

    def build(base_url: str, **overrides: Any) -> OpenAIProvider:
        settings: dict[str, Any] = {
            "name": "oa",
            "kind": "openai",
            "base_url": base_url,
            "api_key": KEY,
            "timeout": 2.0,
            "max_retries": 2,
            "backoff": 0.01,
        }
        settings.update(overrides)
        provider = OpenAIProvider(ProviderConfig(**settings))
        made.append(provider)
        return provider

    yield build
    for provider in made:
        await provider.aclose()


# -- the happy path ---------------------------------------------------------


async def test_finish_reason_and_usage_are_read(double: OpenAIDouble, make: MakeProvider) -> None:
    double.default = Reply(text="a b c", usage=(21, 3))
    chunks = await collect(make(double.base_url), ask())
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert [c.usage for c in chunks if c.usage] == [Usage(input_tokens=21, output_tokens=3)]
    # the usage-only chunk comes last, after the finish reason
    assert chunks[-1].usage is not None and chunks[-1].text == ""


async def test_max_tokens_cuts_the_answer_with_finish_reason_length(
    double: OpenAIDouble, make: MakeProvider
) -> None:
    double.default = Reply(text="one two three four five six")
    result = await make(double.base_url).complete(ask(max_tokens=3))
    assert result.text == "one two three"
    assert result.finish_reason == "length"


async def test_the_request_on_the_wire(double: OpenAIDouble, make: MakeProvider) -> None:
    await make(double.base_url).complete(ask("hi", max_tokens=50, temperature=0.25))
    (call,) = double.calls("/chat/completions")
    assert call.method == "POST"
    assert call.path == "/v1/chat/completions"
    assert call.headers["Authorization"] == f"Bearer {KEY}"
    body = call.json
    assert body["model"] == MODEL
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_completion_tokens"] == 50
    assert "max_tokens" not in body
    assert body["temperature"] == 0.25
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]


async def test_unset_options_are_not_sent(double: OpenAIDouble, make: MakeProvider) -> None:
    await make(double.base_url).complete(ask())
    body = double.calls("/chat/completions")[0].json
    assert "temperature" not in body
    assert "max_completion_tokens" not in body


async def test_a_provider_without_key_works_and_never_sends_the_environment_key(
    make: MakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    async with OpenAIDouble(key=None) as local:
        result = await make(local.base_url, api_key=None).complete(ask("local"))
        assert result.text == "echo: local"
        sent = local.calls("/chat/completions")[0].headers.get("Authorization", "")
        assert "sk-from-the-environment" not in sent


# -- list_models --------------------------------------------------------------


async def test_list_models(double: OpenAIDouble, make: MakeProvider) -> None:
    double.known_models = {"gpt-5-mini", "gpt-4.1"}
    assert await make(double.base_url).list_models() == ["gpt-4.1", "gpt-5-mini"]
    (call,) = double.calls("/models")
    assert call.method == "GET"
    assert call.headers["Authorization"] == f"Bearer {KEY}"


# -- errors that are not retried ------------------------------------------------


async def test_context_too_long(double: OpenAIDouble, make: MakeProvider) -> None:
    double.context_limit = 10
    with pytest.raises(ContextTooLongError) as caught:
        await collect(make(double.base_url), ask("word " * 100))
    assert caught.value.status == 400
    assert isinstance(caught.value, BadRequestError)
    assert len(double.requests) == 1


async def test_context_too_long_is_recognised_by_its_code(
    double: OpenAIDouble, make: MakeProvider
) -> None:
    """Compatible servers word the message differently; the code says it all."""
    double.context_limit = 10
    double.context_message = "Please reduce the length of the messages or completion."
    with pytest.raises(ContextTooLongError):
        await collect(make(double.base_url), ask("word " * 100))


async def test_other_bad_request(double: OpenAIDouble, make: MakeProvider) -> None:
    double.default = Reply(status=400, error="Unsupported value: 'temperature'")
    with pytest.raises(BadRequestError) as caught:
        await collect(make(double.base_url), ask(temperature=3.0))
    assert not isinstance(caught.value, ContextTooLongError)
    assert "temperature" in str(caught.value)


# -- error events and bodies that are not a stream ---------------------------------


async def test_an_error_event_before_any_text_is_retried(
    double: OpenAIDouble, make: MakeProvider
) -> None:
    double.queue.append(Reply(error_after=0))
    result = await make(double.base_url).complete(ask("then fine"))
    assert result.text == "echo: then fine"
    assert len(double.requests) == 2


async def test_an_error_event_with_a_status_code(double: OpenAIDouble, make: MakeProvider) -> None:
    """OpenRouter puts an HTTP status in the error event's code."""
    double.stream_error_code = 502
    double.default = Reply(error_after=0, error="Provider returned error")
    with pytest.raises(UnavailableError) as caught:
        await collect(make(double.base_url, max_retries=1), ask())
    assert caught.value.status == 502
    assert len(double.requests) == 2


async def test_an_error_event_about_the_context(double: OpenAIDouble, make: MakeProvider) -> None:
    double.stream_error_code = "context_length_exceeded"
    double.default = Reply(error_after=0, error="Input is too large.")
    with pytest.raises(ContextTooLongError):
        await collect(make(double.base_url), ask())
    assert len(double.requests) == 1


async def test_a_slow_first_token_within_the_timeout_is_fine(
    double: OpenAIDouble, make: MakeProvider
) -> None:
    """The timeout bounds each wait for the server, not the whole answer: here the
    first token comes at a third of it and the answer takes longer than it (margins
    wide enough for a loaded machine)."""
    double.default = Reply(text="late but here", first_delay=0.5, chunk_delay=0.6)
    result = await make(double.base_url, timeout=1.5).complete(ask())
    assert result.text == "late but here"


async def test_a_body_that_is_not_a_stream_is_unavailable(make: MakeProvider) -> None:
    """A wrong base_url that lands on a web page answers 200 with HTML."""
    server = DoubleServer()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html><body>Welcome!</body></html>", content_type="text/html")

    server.app.router.add_route("*", "/{tail:.*}", page)
    async with server:
        provider = make(server.url, max_retries=0)
        with pytest.raises(UnavailableError):
            await collect(provider, ask())
        with pytest.raises(UnavailableError):
            await provider.list_models()


# -- the SSE as other servers frame it -------------------------------------------


def _event(data: Any) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


def _delta(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    return {"object": "chat.completion.chunk", "choices": [choice]}


async def _scripted(writes: list[bytes]) -> DoubleServer:
    """A server that answers every request with these body writes, as an event stream."""
    server = DoubleServer()

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for part in writes:
            await response.write(part)
            await asyncio.sleep(0.005)  # each write its own read on the client
        await response.write_eof()
        return response

    server.app.router.add_route("*", "/{tail:.*}", answer)
    return server


async def test_sse_framing_of_other_servers(make: MakeProvider) -> None:
    """CRLF, comments, event names and ids, data over two lines, a line and a UTF-8
    character split between reads, a second choice, a refusal, and text after [DONE]."""
    usage = {"object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 5}}
    body = (
        b": keep-alive\r\n\r\nevent: message\r\nid: 1\r\n"
        + _event(_delta({"role": "assistant", "content": ""})).replace(b"\n", b"\r\n")
        + _event(_delta({"content": "caf\u00e9"}, index=0)).replace(b"\\u00e9", "é".encode())
        + _event(_delta({"content": "other"}, index=1))
        + b'data: {"choices": [{"index": 0,\ndata: "delta": {"content": " ok"}}]}\n\n'
        + _event(_delta({"refusal": " no"}))
        + _event(_delta({}, "stop"))
        + _event(usage)
        + b"data: [DONE]\n\ndata: not json\n\n"
    )
    cuts = sorted([body.index("é".encode()) + 1, body.index(b"\r\n\r\nevent") + 1, len(body) - 30])
    writes = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    async with await _scripted(writes) as server:
        chunks = await collect(make(f"{server.url}/v1"), ask())
    assert [c.text for c in chunks] == ["café", " ok", " no", "", ""]
    assert chunks[-2].finish_reason == "stop"
    assert chunks[-1].usage == Usage(input_tokens=5, output_tokens=None)


@pytest.mark.parametrize(
    ("event", "expected", "words"),
    [
        ({"error": "overloaded"}, UnavailableError, "overloaded"),
        ({"error": {"message": "slow down", "code": 429}}, RateLimitedError, "slow down"),
        ('["not", "an", "object"]', UnavailableError, "not a JSON object"),
        ({"choices": {"index": 0}}, UnavailableError, "malformed choices"),
    ],
)
async def test_odd_events_after_text(
    make: MakeProvider, event: Any, expected: type[ProviderError], words: str
) -> None:
    writes = [_event(_delta({"content": "so far"})), _event(event)]
    async with await _scripted(writes) as server:
        chunks, error = await collect_until_error(make(f"{server.url}/v1"), ask())
    assert [c.text for c in chunks] == ["so far"]
    assert type(error) is expected
    assert words in str(error)


async def test_reasoning_deltas_are_reasoning_not_text(make: MakeProvider) -> None:
    """``reasoning_content`` (DeepSeek, vLLM) and ``reasoning`` (OpenRouter) deltas."""
    writes = [
        _event(_delta({"role": "assistant", "reasoning_content": "Let me see."})),
        _event(_delta({"reasoning": " Two and two."})),
        _event(_delta({"content": "4"})),
        _event(_delta({}, "stop")),
        _event("[DONE]"),
    ]
    async with await _scripted(writes) as server:
        chunks = await collect(make(f"{server.url}/v1"), ask())
    assert "".join(c.reasoning for c in chunks) == "Let me see. Two and two."
    assert "".join(c.text for c in chunks) == "4"


async def test_a_finished_stream_gives_its_connection_back(make: MakeProvider) -> None:
    """After [DONE] the rest of the body is read, so the next call reuses the connection."""
    ports: list[int] = []
    server = DoubleServer()

    async def answer(request: web.Request) -> web.StreamResponse:
        ports.append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(_event(_delta({"content": "hi"}, "stop")) + _event("[DONE]"))
        await response.write_eof()
        return response

    server.app.router.add_route("*", "/{tail:.*}", answer)
    async with server:
        provider = make(f"{server.url}/v1")
        for _ in range(3):
            assert (await provider.complete(ask())).text == "hi"
    assert len(ports) == 3 and len(set(ports)) == 1


# -- the double's non-streaming path (for the bot's tests that may use it) -------


async def test_the_double_answers_a_non_streaming_call(double: OpenAIDouble) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{double.base_url}/chat/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"model": MODEL, "messages": [{"role": "user", "content": "hey"}]},
        )
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "echo: hey",
        "refusal": None,
    }
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 11, "total_tokens": 18}
