"""The mistral adapter against a loopback double that speaks Mistral's wire format."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from providers.base import ChatRequest, Chunk, Message, ProviderConfig, Usage
from providers.errors import (
    AuthenticationError,
    BadRequestError,
    ContextTooLongError,
    ModelNotFoundError,
    ProviderError,
    UnavailableError,
)
from providers.mistral import MistralProvider
from tests.doubles.base import Reply
from tests.doubles.mistral_api import MistralDouble, MistralReply

KEY = "test-key"
MODEL = "mistral-small-latest"
CONTEXT_ERROR = (
    "Prompt contains 40010 tokens, too large for model with 32768 maximum context length"
)


def request(
    text: str = "hello there", temperature: float | None = None, max_tokens: int | None = None
) -> ChatRequest:
    return ChatRequest(
        model=MODEL,
        messages=[Message("system", "be brief"), Message("user", text)],
        temperature=temperature,
        max_tokens=max_tokens,
    )


def config(base_url: str, **overrides: Any) -> ProviderConfig:
    """Fast retries and a short timeout; ``overrides`` replace any field."""
    base = ProviderConfig(
        name="mistral",
        kind="mistral",
        base_url=base_url,
        api_key=KEY,
        timeout=2.0,
        max_retries=2,
        backoff=0.01,
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture
async def double() -> AsyncIterator[MistralDouble]:
    server = MistralDouble(key=KEY)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def provider(double: MistralDouble) -> AsyncIterator[MistralProvider]:
    adapter = MistralProvider(config(double.base_url))
    yield adapter
    await adapter.aclose()


@pytest.fixture
async def impatient(double: MistralDouble) -> AsyncIterator[MistralProvider]:
    """A provider with a short timeout, for the hang tests."""
    adapter = MistralProvider(config(double.base_url, timeout=0.3))
    yield adapter
    await adapter.aclose()


async def collect(provider: MistralProvider, req: ChatRequest) -> list[Chunk]:
    return [chunk async for chunk in provider.stream(req)]


# --- streaming -------------------------------------------------------------------------


async def test_usage_and_finish_reason_come_with_the_last_text(
    double: MistralDouble, provider: MistralProvider
) -> None:
    double.default = Reply(chunks=["one", " two"], usage=(13, 2))
    chunks = await collect(provider, request())
    last = chunks[-1]
    assert last.text == " two"
    assert last.finish_reason == "stop"
    assert last.usage == Usage(input_tokens=13, output_tokens=2)
    assert all(c.finish_reason is None and c.usage is None for c in chunks[:-1])


async def test_thinking_is_reasoning_and_text_chunks_are_the_answer(
    double: MistralDouble, provider: MistralProvider
) -> None:
    double.default = MistralReply(
        thinking=["The user wants", " a number."], chunks=["The answer", " is 42."]
    )
    chunks = await collect(provider, request())
    text = "".join(c.text for c in chunks)
    assert text == "The answer is 42."
    assert "user wants" not in text
    assert "".join(c.reasoning for c in chunks) == "The user wants a number."
    assert chunks[-1].finish_reason == "stop"


# --- the request on the wire -------------------------------------------------------------


async def test_request_has_exactly_the_accepted_fields(
    double: MistralDouble, provider: MistralProvider
) -> None:
    await provider.complete(request("hi"))
    [call] = double.calls("/v1/chat/completions")
    assert call.method == "POST"
    assert call.json == {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
        ],
        "stream": True,
    }
    assert call.headers["Authorization"] == f"Bearer {KEY}"


async def test_temperature_and_max_tokens_are_sent_as_mistral_names_them(
    double: MistralDouble, provider: MistralProvider
) -> None:
    result = await provider.complete(request(temperature=0.2, max_tokens=64))
    assert result.text  # the double's strict schema accepted the request
    [call] = double.calls("/v1/chat/completions")
    assert set(call.json) == {"model", "messages", "stream", "temperature", "max_tokens"}
    assert call.json["temperature"] == 0.2
    assert call.json["max_tokens"] == 64
    assert "max_completion_tokens" not in call.json
    assert "stream_options" not in call.json


async def test_double_rejects_unknown_fields_like_mistral(double: MistralDouble) -> None:
    """The strictness the tests above rely on is real: extra fields get a 422."""
    async with httpx.AsyncClient(base_url=double.base_url) as client:
        response = await client.post(
            "/chat/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            json={
                "model": MODEL,
                "messages": [{"role": "user", "content": "x", "name": "bob"}],
                "max_completion_tokens": 10,
            },
        )
    assert response.status_code == 422
    body = response.json()
    assert body["object"] == "error"
    locations = [issue["loc"] for issue in body["message"]["detail"]]
    assert locations == [["body", "max_completion_tokens"], ["body", "messages", 0, "user", "name"]]
    assert {issue["type"] for issue in body["message"]["detail"]} == {"extra_forbidden"}


async def test_double_answers_non_streamed_requests_too(double: MistralDouble) -> None:
    async with httpx.AsyncClient(base_url=double.base_url) as client:
        response = await client.post(
            "/chat/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        )
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "echo: hi",
        "tool_calls": None,
    }
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 11, "total_tokens": 18}


# --- errors ------------------------------------------------------------------------------


async def test_context_too_long(double: MistralDouble, provider: MistralProvider) -> None:
    double.default = Reply(status=400, error=CONTEXT_ERROR)
    with pytest.raises(ContextTooLongError) as caught:
        await provider.complete(request())
    assert caught.value.status == 400
    assert "maximum context length" in str(caught.value)
    assert len(double.calls("/v1/chat/completions")) == 1


async def test_other_400_is_a_plain_bad_request(
    double: MistralDouble, provider: MistralProvider
) -> None:
    double.default = Reply(status=400, error="Assistant message must have either content")
    with pytest.raises(BadRequestError) as caught:
        await provider.complete(request())
    assert not isinstance(caught.value, ContextTooLongError | ModelNotFoundError)


async def test_error_finish_mid_stream_is_unavailable_after_the_text(
    double: MistralDouble, provider: MistralProvider
) -> None:
    double.default = Reply(chunks=["partial", " answer", " lost"], error_after=2)
    seen: list[str] = []
    with pytest.raises(UnavailableError):
        async for chunk in provider.stream(request()):
            seen.append(chunk.text)
    assert seen == ["partial", " answer"]
    assert len(double.calls("/v1/chat/completions")) == 1


async def test_stream_ending_without_a_finish_reason_is_unavailable(
    double: MistralDouble, provider: MistralProvider
) -> None:
    double.default = MistralReply(chunks=["half", " of", " it"], end_after=2)
    seen: list[str] = []
    with pytest.raises(UnavailableError) as caught:
        async for chunk in provider.stream(request()):
            seen.append(chunk.text)
    assert seen == ["half", " of"]
    assert "before the answer finished" in str(caught.value)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=401, error="Unauthorized"),
        Reply(status=403, error="Forbidden"),
        Reply(status=404, error="Not found"),
        Reply(status=408, error="timeout"),
        Reply(status=413, error="too big"),
        Reply(status=418, error="teapot"),
        Reply(status=429, error="Rate limit exceeded"),
        Reply(status=500, error="boom"),
        Reply(malformed=True),
        Reply(cut_after=1, chunks=["x", "y"]),
        Reply(error_after=1, chunks=["x", "y"]),
        Reply(hang=True),
    ],
    ids=lambda r: (
        f"status={r.status},malformed={r.malformed},cut={r.cut_after},"
        f"error_after={r.error_after},hang={r.hang}"
    ),
)
async def test_only_provider_errors_escape(
    double: MistralDouble, impatient: MistralProvider, reply: Reply
) -> None:
    double.default = reply
    with pytest.raises(ProviderError):
        await impatient.complete(request())


# --- list_models -------------------------------------------------------------------------


async def test_list_models_returns_the_ids(
    double: MistralDouble, provider: MistralProvider
) -> None:
    double.known_models = {"mistral-small-latest", "codestral-latest"}
    assert sorted(await provider.list_models()) == ["codestral-latest", "mistral-small-latest"]
    [call] = double.calls("/v1/models")
    assert call.method == "GET"
    assert call.headers["Authorization"] == f"Bearer {KEY}"


# --- error bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected", "words"),
    [
        pytest.param(
            422,
            '{"object":"error","message":{"detail":[{"type":"extra_forbidden","loc":["body",'
            '"max_completion_tokens"],"msg":"Extra inputs are not permitted","input":32000}]},'
            '"type":"invalid_request_error","param":null,"code":null}',
            BadRequestError,
            "max_completion_tokens: Extra inputs are not permitted",
            id="422-message-detail",
        ),
        pytest.param(
            422,
            '{"object":"Error","detail":[{"type":"extra_forbidden","loc":["body","tools"],'
            '"msg":"Extra inputs are not permitted","input":[]}],"message":[{"type":'
            '"extra_forbidden","loc":["body","tools"],"msg":"Extra inputs are not permitted",'
            '"input":[]}],"type":"invalid_request_error","code":3001}',
            BadRequestError,
            "tools: Extra inputs are not permitted",
            id="422-message-list",
        ),
        pytest.param(
            422,
            '{"object":"error","message":"{\\"detail\\":[{\\"type\\":\\"extra_forbidden\\",'
            '\\"loc\\":[\\"body\\",\\"frequency_penalty\\"],\\"msg\\":\\"Extra inputs are not '
            'permitted\\"}]}","type":"internal_error_proxy","param":null,"code":"1000"}',
            BadRequestError,
            "frequency_penalty: Extra inputs are not permitted",
            id="422-message-json-string",
        ),
        pytest.param(
            401, '{"detail":"Unauthorized"}', AuthenticationError, "Unauthorized", id="401-detail"
        ),
        pytest.param(
            400,
            '{"object":"error","message":"Invalid model: nope","type":"invalid_model",'
            '"param":null,"code":"1500"}',
            ModelNotFoundError,
            "Invalid model: nope",
            id="400-invalid-model",
        ),
        pytest.param(
            400,
            f'{{"object":"error","message":"{CONTEXT_ERROR}","type":"invalid_request_error",'
            '"param":null,"code":null}',
            ContextTooLongError,
            "too large for model",
            id="400-context",
        ),
        pytest.param(
            502, "<html>Bad Gateway</html>", UnavailableError, "Bad Gateway", id="502-html"
        ),
    ],
)
async def test_error_bodies_map_onto_the_hierarchy(
    double: MistralDouble,
    provider: MistralProvider,
    status: int,
    body: str,
    expected: type[ProviderError],
    words: str,
) -> None:
    double.default = MistralReply(status=status, body=body)
    with pytest.raises(ProviderError) as caught:
        await provider.complete(request())
    assert type(caught.value) is expected
    assert caught.value.status == status
    assert words in str(caught.value)
