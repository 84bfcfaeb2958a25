"""The ``gemini`` adapter against a loopback double of Google's native Gemini API: what is
Gemini's own (the wire format, thoughts, blocks, Google's error bodies, images in and
out). What every kind shares is in tests/test_provider_conformance.py."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from providers import registry
from providers.base import ChatRequest, Chunk, Image, Message, Provider, ProviderConfig, Usage
from providers.errors import (
    AuthenticationError,
    BadRequestError,
    ContextTooLongError,
    DeclinedError,
    ModelNotFoundError,
    ProviderTimeoutError,
    RateLimitedError,
    UnavailableError,
)
from providers.gemini import GeminiProvider
from tests.doubles.base import DoubleServer, Reply
from tests.doubles.gemini_api import GeminiDouble, GeminiReply
from tests.doubles.media import PNG_SIGNATURE, tiny_png

KEY = "test-key"
MODEL = "gemini-2.5-flash"
PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) + b"\xff\xd9"

Make = Callable[..., GeminiProvider]


def ask(*messages: Message, model: str = MODEL, **options: Any) -> ChatRequest:
    chosen = messages or (Message("system", "Be brief."), Message("user", "hello there"))
    return ChatRequest(model=model, messages=list(chosen), **options)


async def collect(provider: Provider, request: ChatRequest) -> list[Chunk]:
    return [chunk async for chunk in provider.stream(request)]


async def until_error(provider: Provider, request: ChatRequest) -> tuple[list[Chunk], Exception]:
    chunks: list[Chunk] = []
    try:
        async for chunk in provider.stream(request):
            chunks.append(chunk)
    except Exception as exc:  # the test looks at what escaped
        return chunks, exc
    raise AssertionError(f"the stream did not fail: {chunks!r}")


@pytest.fixture
async def double() -> AsyncIterator[GeminiDouble]:
    async with GeminiDouble(key=KEY) as server:
        yield server


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    made: list[GeminiProvider] = []

    def build(base_url: str, **overrides: Any) -> GeminiProvider:
        settings: dict[str, Any] = {
            "name": "gm",
            "kind": "gemini",
            "base_url": base_url,
            "api_key": KEY,
            "timeout": 2.0,
            "max_retries": 2,
            "backoff": 0.01,
        }
        settings.update(overrides)
        provider = registry.create(ProviderConfig(**settings))
        assert isinstance(provider, GeminiProvider)
        made.append(provider)
        return provider

    yield build
    for provider in made:
        await provider.aclose()


# -- the wire format -------------------------------------------------------------------


async def test_the_request_on_the_wire(double: GeminiDouble, make: Make) -> None:
    history = (
        Message("system", "Be brief."),
        Message("user", "first"),
        Message("assistant", "an answer"),
        Message("user", "second"),
        Message("user", "and a third"),
    )
    await make(double.base_url).complete(ask(*history, temperature=0.3, max_tokens=50))
    (call,) = double.calls(":streamGenerateContent")
    assert call.path == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert call.headers["x-goog-api-key"] == KEY
    assert "Authorization" not in call.headers
    body = call.json
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "first"}]},
        {"role": "model", "parts": [{"text": "an answer"}]},
        {"role": "user", "parts": [{"text": "second"}, {"text": "and a third"}]},
    ]
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "maxOutputTokens": 50,
        "thinkingConfig": {"includeThoughts": True},
    }


async def test_the_sse_query_is_sent_and_a_models_prefix_is_kept_once(
    double: GeminiDouble, make: Make
) -> None:
    await make(double.base_url).complete(ask(model=f"models/{MODEL}"))
    assert double.queries == ["alt=sse"]
    assert double.calls(":streamGenerateContent")[0].path.count("models/") == 1


async def test_text_streams_in_order_with_usage_and_finish(
    double: GeminiDouble, make: Make
) -> None:
    double.default = Reply(text="one two three four", usage=(12, 4))
    chunks = await collect(make(double.base_url), ask())
    assert [c.text for c in chunks if c.text] == ["one", " two", " three", " four"]
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage == Usage(input_tokens=12, output_tokens=4)


async def test_thoughts_are_reasoning_never_text(double: GeminiDouble, make: Make) -> None:
    double.default = GeminiReply(text="42 it is", thoughts=["Let me think.", " Six times seven."])
    chunks = await collect(make(double.base_url), ask())
    assert "".join(c.reasoning for c in chunks) == "Let me think. Six times seven."
    assert "".join(c.text for c in chunks) == "42 it is"
    assert all(not (c.text and c.reasoning) for c in chunks)
    # thoughts are billed as output: 2 thought events counted by the double
    assert chunks[-1].usage == Usage(input_tokens=7, output_tokens=11 + 2)
    result = await make(double.base_url).complete(ask())
    assert result.text == "42 it is"


async def test_a_model_without_thinking_is_asked_again_without_it(
    double: GeminiDouble, make: Make
) -> None:
    double.no_thinking = {"gemini-2.0-flash"}
    provider = make(double.base_url)
    for _ in range(2):
        result = await provider.complete(ask(model="gemini-2.0-flash"))
        assert result.text == "echo: hello there"
    sent = [c.json.get("generationConfig") for c in double.calls(":streamGenerateContent")]
    assert sent == [{"thinkingConfig": {"includeThoughts": True}}, None, None]


async def test_max_output_tokens_gives_length(double: GeminiDouble, make: Make) -> None:
    double.default = Reply(text="a b c d e f")
    result = await make(double.base_url).complete(ask(max_tokens=2))
    assert result.text == "a b"
    assert result.finish_reason == "length"


async def test_a_users_images_go_as_inline_data(double: GeminiDouble, make: Make) -> None:
    message = Message("user", "what is this?", (Image(PHOTO), Image(tiny_png(), "image/png")))
    result = await make(double.base_url).complete(ask(Message("system", "x"), message))
    assert result.text == "echo: what is this?"
    parts = double.calls(":streamGenerateContent")[0].json["contents"][0]["parts"]
    assert parts[0] == {"text": "what is this?"}
    assert [p["inlineData"]["mimeType"] for p in parts[1:]] == ["image/jpeg", "image/png"]
    assert [i.data for i in double.images] == [PHOTO, tiny_png()]
    assert all(not i.url.startswith(("http", "data:")) for i in double.images)


async def test_an_assistants_images_and_empty_turns_are_not_sent(
    double: GeminiDouble, make: Make
) -> None:
    history = (
        Message("user", "", (Image(PHOTO),)),
        Message("assistant", "", (Image(PHOTO),)),
        Message("user", "so?"),
    )
    await make(double.base_url).complete(ask(*history))
    contents = double.calls(":streamGenerateContent")[0].json["contents"]
    assert len(contents) == 1 and contents[0]["role"] == "user"
    assert "systemInstruction" not in double.calls(":streamGenerateContent")[0].json


# -- blocks: the model declined ----------------------------------------------------------


@pytest.mark.parametrize("reason", ["SAFETY", "RECITATION", "PROHIBITED_CONTENT"])
async def test_a_block_before_any_text_is_declined_and_not_retried(
    double: GeminiDouble, make: Make, reason: str
) -> None:
    double.default = GeminiReply(block=reason)
    chunks, error = await until_error(make(double.base_url), ask())
    assert isinstance(error, DeclinedError) and isinstance(error, BadRequestError)
    assert reason in str(error)
    assert [c for c in chunks if c.text] == []
    assert len(double.requests) == 1


async def test_a_block_after_text_keeps_the_text_then_declines(
    double: GeminiDouble, make: Make
) -> None:
    double.default = GeminiReply(text="one two three", block="RECITATION", block_after=2)
    chunks, error = await until_error(make(double.base_url), ask())
    assert "".join(c.text for c in chunks) == "one two"
    assert isinstance(error, DeclinedError) and "RECITATION" in str(error)


async def test_a_blocked_prompt_is_declined(double: GeminiDouble, make: Make) -> None:
    double.default = GeminiReply(prompt_block="SAFETY")
    _, error = await until_error(make(double.base_url), ask())
    assert isinstance(error, DeclinedError) and "prompt" in str(error)
    assert len(double.requests) == 1


# -- Google's error bodies ------------------------------------------------------------------


async def test_a_wrong_key_is_400_api_key_invalid_and_authentication(
    double: GeminiDouble, make: Make
) -> None:
    _, error = await until_error(make(double.base_url, api_key="wrong-secret"), ask())
    assert isinstance(error, AuthenticationError) and error.status == 400
    assert "wrong-secret" not in str(error)
    assert len(double.requests) == 1


async def test_no_key_is_403_permission_denied(double: GeminiDouble, make: Make) -> None:
    _, error = await until_error(make(double.base_url, api_key=None), ask())
    assert isinstance(error, AuthenticationError) and error.status == 403
    assert "PERMISSION_DENIED" in str(error)


async def test_an_unknown_model_is_404(double: GeminiDouble, make: Make) -> None:
    double.known_models = {MODEL}
    _, error = await until_error(make(double.base_url), ask(model="gemini-9"))
    assert isinstance(error, ModelNotFoundError) and "gemini-9" in str(error)


async def test_input_over_the_context_is_context_too_long(double: GeminiDouble, make: Make) -> None:
    double.context_limit = 10
    _, error = await until_error(make(double.base_url), ask(Message("user", "word " * 100)))
    assert isinstance(error, ContextTooLongError)
    assert len(double.requests) == 1


async def test_429_with_retry_info_waits_the_retry_delay(double: GeminiDouble, make: Make) -> None:
    double.queue.append(Reply(status=429, retry_after=0.3, error="Quota exceeded"))
    result = await make(double.base_url).complete(ask())
    assert result.text == "echo: hello there"
    first, second = double.calls(":streamGenerateContent")
    assert second.time - first.time >= 0.3 - 0.005


async def test_429_with_a_long_retry_delay_is_rate_limited_at_once(
    double: GeminiDouble, make: Make
) -> None:
    double.default = Reply(status=429, retry_after=37, error="Quota exceeded")
    started = time.monotonic()
    _, error = await until_error(make(double.base_url), ask())
    assert isinstance(error, RateLimitedError) and error.retry_after == 37
    assert "RESOURCE_EXHAUSTED" in str(error)
    assert time.monotonic() - started < 5 and len(double.requests) == 1


@pytest.mark.parametrize(
    ("status", "name", "expected"),
    [
        (400, "FAILED_PRECONDITION", AuthenticationError),
        (400, "INVALID_ARGUMENT", BadRequestError),
        (504, "DEADLINE_EXCEEDED", ProviderTimeoutError),
        (500, "INTERNAL", UnavailableError),
        (503, "UNAVAILABLE", UnavailableError),
    ],
)
async def test_status_names_map_onto_the_hierarchy(
    make: Make, status: int, name: str, expected: type[Exception]
) -> None:
    server = DoubleServer()
    body = {"error": {"code": status, "message": "something", "status": name}}

    async def answer(request: web.Request) -> web.Response:
        return web.json_response(body, status=status)

    server.app.router.add_route("*", "/{tail:.*}", answer)
    async with server:
        _, error = await until_error(make(server.url, max_retries=0), ask())
    assert type(error) is expected, repr(error)
    assert name in str(error)


async def test_an_error_event_mid_stream_is_unavailable_after_the_text(
    double: GeminiDouble, make: Make
) -> None:
    double.default = Reply(chunks=["one", " two", " three"], error_after=2, error="overloaded")
    chunks, error = await until_error(make(double.base_url), ask())
    assert "".join(c.text for c in chunks) == "one two"
    assert isinstance(error, UnavailableError) and "overloaded" in str(error)


# -- images ------------------------------------------------------------------------------


async def test_generate_image_draws_through_generate_content(
    double: GeminiDouble, make: Make
) -> None:
    image = await make(double.base_url).generate_image("gemini-2.5-flash-image", "a red fox")
    assert image == tiny_png() and image.startswith(PNG_SIGNATURE)
    (call,) = double.calls(":generateContent")
    assert call.path == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert call.json == {
        "contents": [{"role": "user", "parts": [{"text": "a red fox"}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]},
    }


async def test_editing_sends_the_photo_beside_the_instruction(
    double: GeminiDouble, make: Make
) -> None:
    provider = make(double.base_url)
    image = await provider.generate_image("gemini-2.5-flash-image", "make it night", [Image(PHOTO)])
    assert image == tiny_png()
    parts = double.calls(":generateContent")[0].json["contents"][0]["parts"]
    assert parts[0] == {"text": "make it night"}
    assert parts[1]["inlineData"]["mimeType"] == "image/jpeg"
    assert [i.data for i in double.images] == [PHOTO]


async def test_a_model_that_answers_words_only_declined_to_draw(
    double: GeminiDouble, make: Make
) -> None:
    double.default = GeminiReply(text="I can't draw that.", image=False)
    with pytest.raises(DeclinedError, match="I can't draw that"):
        await make(double.base_url).generate_image("gemini-2.5-flash-image", "x")
    assert len(double.requests) == 1


async def test_a_blocked_picture_is_declined(double: GeminiDouble, make: Make) -> None:
    double.default = GeminiReply(block="IMAGE_SAFETY")
    with pytest.raises(DeclinedError, match="IMAGE_SAFETY"):
        await make(double.base_url).generate_image("gemini-2.5-flash-image", "x")


async def test_image_errors_are_retried_like_chat(double: GeminiDouble, make: Make) -> None:
    double.queue.extend([Reply(status=503), Reply(status=500)])
    assert await make(double.base_url).generate_image("img", "x") == tiny_png()
    assert len(double.calls(":generateContent")) == 3


async def test_a_malformed_image_answer_is_unavailable(double: GeminiDouble, make: Make) -> None:
    double.default = Reply(malformed=True)
    with pytest.raises(UnavailableError):
        await make(double.base_url, max_retries=0).generate_image("img", "x")


# -- list_models -------------------------------------------------------------------------


async def test_list_models_reads_every_page(double: GeminiDouble, make: Make) -> None:
    double.known_models = {f"gemini-test-{i:02d}" for i in range(7)}
    double.page_size_cap = 3
    names = await make(double.base_url).list_models()
    assert names == sorted(double.known_models)
    assert len(double.calls("/models")) == 3
    assert all(c.headers["x-goog-api-key"] == KEY for c in double.calls("/models"))


async def test_list_models_with_a_wrong_key(double: GeminiDouble, make: Make) -> None:
    with pytest.raises(AuthenticationError):
        await make(double.base_url, api_key="nope").list_models()


async def test_an_error_body_as_a_json_array_is_read(make: Make) -> None:
    """Without alt=sse Google streams a JSON array, and fails with one too."""
    server = DoubleServer()
    body = [{"error": {"code": 404, "message": "models/x is not found", "status": "NOT_FOUND"}}]

    async def answer(request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(body), status=404, content_type="application/json")

    server.app.router.add_route("*", "/{tail:.*}", answer)
    async with server:
        _, error = await until_error(make(server.url), ask())
    assert isinstance(error, ModelNotFoundError)
