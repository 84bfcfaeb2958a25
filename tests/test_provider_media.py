"""Images and voice at the provider layer, against the real loopback doubles.

Images in chat reach each API in its own format (always as base64 data, never a URL);
the ``openai`` adapter generates images and transcribes audio, with the chat error
mapping and retry policy; the other adapters say they cannot.
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web

from providers.base import ChatRequest, Image, Message, Provider, ProviderConfig
from providers.errors import (
    AuthenticationError,
    BadRequestError,
    DeclinedError,
    ModelNotFoundError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    UnavailableError,
    UnsupportedError,
)
from providers.openai import IMAGE_TIMEOUT, OpenAIProvider
from providers.registry import create
from tests.doubles.base import DoubleServer, LLMDouble, Reply
from tests.doubles.llama_api import LlamaDouble
from tests.doubles.media import PNG_SIGNATURE, SeenImage, tiny_png
from tests.doubles.mistral_api import MistralDouble
from tests.doubles.ollama_api import OllamaDouble
from tests.doubles.openai_api import OpenAIDouble

KEY = "test-key"
# Every byte value, after a JPEG start marker: the base64 must round-trip all of them.
PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 3 + b"\xff\xd9"
SCREENSHOT = tiny_png(2, 3)
VOICE = b"OggS\x00\x02" + bytes(range(200, 256)) * 4  # not UTF-8, like real audio

Make = Callable[..., Provider]


def config(kind: str, base_url: str, **overrides: Any) -> ProviderConfig:
    settings: dict[str, Any] = {
        "name": kind,
        "kind": kind,
        "base_url": base_url,
        "api_key": None if kind == "ollama" else KEY,
        "timeout": 2.0,
        "max_retries": 2,
        "backoff": 0.01,
    }
    settings.update(overrides)
    return ProviderConfig(**settings)


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    """Build providers by kind (fast retries, short timeouts); closed after the test."""
    made: list[Provider] = []

    def build(kind: str, base_url: str, **overrides: Any) -> Provider:
        provider = create(config(kind, base_url, **overrides))
        made.append(provider)
        return provider

    yield build
    for provider in made:
        await provider.aclose()


@pytest.fixture
async def openai_double() -> AsyncIterator[OpenAIDouble]:
    async with OpenAIDouble(key=KEY) as server:
        yield server


@pytest.fixture
async def oa(openai_double: OpenAIDouble, make: Make) -> OpenAIProvider:
    provider = make("openai", openai_double.base_url)
    assert isinstance(provider, OpenAIProvider)
    return provider


def with_photo(
    text: str = "what is on this photo?", *images: Image, model: str = "vision-model"
) -> ChatRequest:
    return ChatRequest(
        model=model,
        messages=[
            Message("system", "Be brief."),
            Message("user", "hi"),
            Message("assistant", "Hello!"),
            Message("user", text, images=images or (Image(PHOTO),)),
        ],
    )


# -- images in chat, per API ----------------------------------------------------

# kind -> (double class, base URL of a started double, the model the double knows)
APIS: dict[str, tuple[type[LLMDouble], Callable[[Any], str], str]] = {
    "openai": (OpenAIDouble, lambda d: d.base_url, "gpt-4o-mini"),
    "mistral": (MistralDouble, lambda d: d.base_url, "mistral-small-latest"),
    "llama": (LlamaDouble, lambda d: f"{d.url}/v1", "Llama-4-Maverick-17B-128E-Instruct-FP8"),
    "ollama": (OllamaDouble, lambda d: d.url, "llama3.2-vision:latest"),
}


async def _chat_with(kind: str, make: Make, request: ChatRequest) -> tuple[LLMDouble, str]:
    """Run ``request`` against a fresh double of ``kind``: the double and the answer."""
    cls, base_url, _ = APIS[kind]
    double = cls(key=None if kind == "ollama" else KEY)
    async with double:
        result = await make(kind, base_url(double)).complete(request)
    return double, result.text


def _sent_messages(double: LLMDouble) -> list[dict[str, Any]]:
    (call,) = [r for r in double.requests if r.method == "POST"]
    messages: list[dict[str, Any]] = call.json["messages"]
    return messages


@pytest.mark.parametrize("kind", list(APIS))
async def test_a_photo_reaches_the_api_as_base64_and_the_answer_streams_back(
    kind: str, make: Make
) -> None:
    model = APIS[kind][2]
    double, answer = await _chat_with(kind, make, with_photo(model=model))
    assert answer == "echo: what is on this photo?"
    seen: list[SeenImage] = double.images  # type: ignore[attr-defined]
    assert len(seen) == 1
    assert seen[0].data == PHOTO
    assert (seen[0].model, seen[0].role) == (model, "user")
    body = next(r.body for r in double.requests if r.method == "POST")
    assert b"http" not in body  # the image travels as data, never as a URL
    messages = _sent_messages(double)
    # messages without images are sent exactly as before: plain strings
    assert messages[:3] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello!"},
    ]
    last = messages[3]
    encoded = base64.b64encode(PHOTO).decode()
    if kind == "ollama":
        assert last == {
            "role": "user",
            "content": "what is on this photo?",
            "images": [encoded],
        }
        assert seen[0].url == encoded
        return
    assert seen[0].url == f"data:image/jpeg;base64,{encoded}"
    assert seen[0].mime == "image/jpeg"
    text_part, image_part = last["content"]
    assert text_part == {"type": "text", "text": "what is on this photo?"}
    assert image_part["type"] == "image_url"
    # Mistral's image_url is the URL itself; OpenAI and the Llama API nest it in an object
    url = image_part["image_url"] if kind == "mistral" else image_part["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(url.partition(",")[2]) == PHOTO
    if kind != "mistral":
        assert image_part == {"type": "image_url", "image_url": {"url": url}}


@pytest.mark.parametrize("kind", list(APIS))
async def test_several_images_and_their_types_arrive_in_order(kind: str, make: Make) -> None:
    request = with_photo(
        "compare", Image(PHOTO), Image(SCREENSHOT, "image/png"), model=APIS[kind][2]
    )
    double, answer = await _chat_with(kind, make, request)
    assert answer == "echo: compare"
    seen: list[SeenImage] = double.images  # type: ignore[attr-defined]
    assert [s.data for s in seen] == [PHOTO, SCREENSHOT]
    if kind != "ollama":
        assert [s.mime for s in seen] == ["image/jpeg", "image/png"]


@pytest.mark.parametrize("kind", list(APIS))
async def test_a_photo_without_a_caption_sends_no_empty_text(kind: str, make: Make) -> None:
    double, _ = await _chat_with(kind, make, with_photo("", model=APIS[kind][2]))
    last = _sent_messages(double)[-1]
    if kind == "ollama":
        assert last["content"] == ""
        assert len(last["images"]) == 1
    else:
        assert [part["type"] for part in last["content"]] == ["image_url"]
    seen: list[SeenImage] = double.images  # type: ignore[attr-defined]
    assert [s.data for s in seen] == [PHOTO]


@pytest.mark.parametrize("kind", list(APIS))
async def test_only_user_messages_carry_images(kind: str, make: Make) -> None:
    request = ChatRequest(
        model=APIS[kind][2],
        messages=[
            Message("system", "Be brief.", images=(Image(PHOTO),)),
            Message("assistant", "Here it is.", images=(Image(PHOTO),)),
            Message("user", "thanks"),
        ],
    )
    double, answer = await _chat_with(kind, make, request)
    assert answer == "echo: thanks"
    assert _sent_messages(double) == [
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": "Here it is."},
        {"role": "user", "content": "thanks"},
    ]
    assert double.images == []  # type: ignore[attr-defined]


async def test_an_image_with_an_odd_type_is_labelled_as_an_image(make: Make) -> None:
    request = with_photo("what?", Image(PHOTO, "application/octet-stream"), model="gpt-4o")
    double, _ = await _chat_with("openai", make, request)
    seen: list[SeenImage] = double.images  # type: ignore[attr-defined]
    assert seen[0].mime == "image/jpeg"
    assert seen[0].data == PHOTO


# -- OpenAI: image generation ---------------------------------------------------


def _png_is_valid(data: bytes) -> tuple[int, int]:
    """Check a PNG's structure and chunk CRCs, inflate its pixels; its (width, height)."""
    assert data.startswith(PNG_SIGNATURE)
    pos, kinds, pixels = len(PNG_SIGNATURE), [], b""
    width = height = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        if kind == b"IDAT":
            pixels += body
        kinds.append(kind)
        pos += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    assert len(zlib.decompress(pixels)) == height * (1 + 3 * width)
    return width, height


@pytest.mark.parametrize("model", ["gpt-image-1", "dall-e-2"])
async def test_editing_a_photo_goes_to_images_edits(
    openai_double: OpenAIDouble, oa: OpenAIProvider, model: str
) -> None:
    image = await oa.generate_image(model, "make it night", [Image(PHOTO)])
    assert image == tiny_png()
    assert openai_double.calls("/images/generations") == []
    (upload,) = openai_double.edits
    assert upload.data == PHOTO and upload.content_type == "image/jpeg"
    assert upload.fields["prompt"] == "make it night" and upload.model == model
    assert ("response_format" in upload.fields) is (model == "dall-e-2")


async def test_editing_with_several_photos_sends_each(
    openai_double: OpenAIDouble, oa: OpenAIProvider
) -> None:
    photos = [Image(PHOTO), Image(SCREENSHOT, "image/png")]
    await oa.generate_image("gpt-image-1", "put them together", photos)
    assert [u.data for u in openai_double.edits] == [PHOTO, SCREENSHOT]
    assert [u.content_type for u in openai_double.edits] == ["image/jpeg", "image/png"]


async def test_image_api_chat_draws_through_chat_completions(
    openai_double: OpenAIDouble, oa: OpenAIProvider
) -> None:
    image = await oa.generate_image("google/gemini-2.5-flash-image", "a fox", api="chat")
    assert image == tiny_png()
    (call,) = openai_double.calls("/chat/completions")
    assert call.json["modalities"] == ["image", "text"]
    assert call.json["messages"] == [{"role": "user", "content": "a fox"}]
    assert "stream" not in call.json


async def test_image_api_chat_edits_with_the_photo_as_an_image_url_part(
    openai_double: OpenAIDouble, oa: OpenAIProvider
) -> None:
    await oa.generate_image("some/image-model", "make it night", [Image(PHOTO)], api="chat")
    (seen,) = openai_double.images
    assert seen.data == PHOTO and seen.url.startswith("data:image/jpeg;base64,")
    content = openai_double.calls("/chat/completions")[0].json["messages"][0]["content"]
    assert content[0] == {"type": "text", "text": "make it night"}


async def test_image_api_chat_with_words_only_is_declined(
    openai_double: OpenAIDouble, oa: OpenAIProvider
) -> None:
    openai_double.chat_draws = False
    with pytest.raises(DeclinedError, match="I can't draw that"):
        await oa.generate_image("some/image-model", "x", api="chat")
    assert len(openai_double.calls("/chat/completions")) == 1  # not retried


async def test_image_api_chat_failures_are_retried(
    openai_double: OpenAIDouble, oa: OpenAIProvider
) -> None:
    openai_double.queue.append(Reply(status=503))
    assert await oa.generate_image("some/image-model", "x", api="chat") == tiny_png()
    assert len(openai_double.calls("/chat/completions")) == 2


def test_the_doubles_png_is_a_real_png() -> None:
    assert _png_is_valid(tiny_png()) == (4, 4)
    assert _png_is_valid(tiny_png(2, 3)) == (2, 3)


@pytest.mark.parametrize("model", ["gpt-image-1", "gpt-image-1-mini"])
async def test_generate_image_with_gpt_image(
    openai_double: OpenAIDouble, oa: OpenAIProvider, model: str
) -> None:
    image = await oa.generate_image(model, "a red fox in the snow")
    assert image.startswith(b"\x89PNG")
    assert image == tiny_png()
    (call,) = openai_double.calls("/images/generations")
    assert call.headers["Authorization"] == f"Bearer {KEY}"
    assert call.json["model"] == model
    assert call.json["prompt"] == "a red fox in the snow"
    assert "response_format" not in call.json  # gpt-image refuses it


@pytest.mark.parametrize("model", ["dall-e-3", "dall-e-2", "some-compatible-model"])
async def test_generate_image_asks_other_models_for_base64(
    openai_double: OpenAIDouble, oa: OpenAIProvider, model: str
) -> None:
    image = await oa.generate_image(model, "a lighthouse")
    assert image == tiny_png()
    (call,) = openai_double.calls("/images/generations")
    assert call.json["response_format"] == "b64_json"
    assert not openai_double.calls(".png")  # no image is ever fetched from a URL


async def test_the_image_timeout_is_longer_than_the_chat_timeout(make: Make) -> None:
    provider = make("openai", "http://127.0.0.1:9/v1", timeout=60.0)
    assert isinstance(provider, OpenAIProvider)
    assert provider.image_timeout == IMAGE_TIMEOUT >= 120
    assert make("openai", "http://127.0.0.1:9/v1", timeout=600.0).image_timeout == 600.0  # type: ignore[attr-defined]


# -- OpenAI: transcription ------------------------------------------------------


async def test_transcribe_uploads_the_file_and_returns_the_text(
    openai_double: OpenAIDouble, oa: OpenAIProvider
) -> None:
    text = await oa.transcribe("whisper-1", b"hello bot", "voice.ogg")
    assert text == "transcript of 9 bytes: hello bot"
    (call,) = openai_double.calls("/audio/transcriptions")
    assert call.headers["Authorization"] == f"Bearer {KEY}"
    assert call.headers["Content-Type"].startswith("multipart/form-data")
    (upload,) = openai_double.uploads
    assert (upload.model, upload.filename, upload.data) == ("whisper-1", "voice.ogg", b"hello bot")


async def test_transcribe_binary_audio(openai_double: OpenAIDouble, oa: OpenAIProvider) -> None:
    text = await oa.transcribe("gpt-4o-mini-transcribe", VOICE, "voice.ogg")
    assert text == f"transcript of {len(VOICE)} bytes"
    assert openai_double.uploads[0].data == VOICE
    assert openai_double.uploads[0].model == "gpt-4o-mini-transcribe"


async def test_transcribe_returns_what_the_api_heard(
    openai_double: OpenAIDouble, oa: OpenAIProvider
) -> None:
    openai_double.replies["whisper-1"] = Reply(text="Какая погода в Москве?")
    assert await oa.transcribe("whisper-1", VOICE, "voice.ogg") == "Какая погода в Москве?"
    openai_double.replies["whisper-1"] = Reply(text="")  # silence is an empty transcript
    assert await oa.transcribe("whisper-1", VOICE, "voice.ogg") == ""


# -- OpenAI: errors and retries of both calls ------------------------------------

GENERATE = ("generate", "/images/generations", "gpt-image-1")
TRANSCRIBE = ("transcribe", "/audio/transcriptions", "whisper-1")
CALLS = [GENERATE, TRANSCRIBE]
CALL_IDS = ["generate_image", "transcribe"]


def _run(provider: Provider, what: str, model: str) -> Awaitable[Any]:
    if what == "generate":
        return provider.generate_image(model, "a cat")
    return provider.transcribe(model, VOICE, "voice.ogg")


@pytest.mark.parametrize(("what", "path", "model"), CALLS, ids=CALL_IDS)
async def test_a_wrong_key_is_an_authentication_error(
    openai_double: OpenAIDouble, make: Make, what: str, path: str, model: str
) -> None:
    provider = make("openai", openai_double.base_url, api_key="wrong-key")
    with pytest.raises(AuthenticationError) as caught:
        await _run(provider, what, model)
    assert caught.value.status == 401
    assert "wrong-key" not in str(caught.value)
    assert len(openai_double.calls(path)) == 1  # not retried


@pytest.mark.parametrize(("what", "path", "model"), CALLS, ids=CALL_IDS)
async def test_an_unknown_model_is_model_not_found(
    openai_double: OpenAIDouble, oa: OpenAIProvider, what: str, path: str, model: str
) -> None:
    openai_double.known_models = {"gpt-4o-mini"}
    with pytest.raises(ModelNotFoundError):
        await _run(oa, what, model)
    assert len(openai_double.calls(path)) == 1


@pytest.mark.parametrize(("what", "path", "model"), CALLS, ids=CALL_IDS)
async def test_server_errors_are_retried_then_unavailable(
    openai_double: OpenAIDouble, oa: OpenAIProvider, what: str, path: str, model: str
) -> None:
    openai_double.default = Reply(status=500)
    with pytest.raises(UnavailableError) as caught:
        await _run(oa, what, model)
    assert caught.value.status == 500
    assert len(openai_double.calls(path)) == 3  # the first try and max_retries=2


@pytest.mark.parametrize(("what", "path", "model"), CALLS, ids=CALL_IDS)
async def test_a_server_error_then_success(
    openai_double: OpenAIDouble, oa: OpenAIProvider, what: str, path: str, model: str
) -> None:
    openai_double.queue.extend([Reply(status=503), Reply(status=502)])
    result = await _run(oa, what, model)
    assert result == (tiny_png() if what == "generate" else f"transcript of {len(VOICE)} bytes")
    assert len(openai_double.calls(path)) == 3


@pytest.mark.parametrize(("what", "path", "model"), CALLS, ids=CALL_IDS)
async def test_429_waits_retry_after_then_succeeds(
    openai_double: OpenAIDouble, oa: OpenAIProvider, what: str, path: str, model: str
) -> None:
    openai_double.queue.append(Reply(status=429, retry_after=0.2, error="Rate limit reached"))
    await _run(oa, what, model)
    first, second = openai_double.calls(path)
    assert second.time - first.time >= 0.2 - 0.005


@pytest.mark.parametrize(("what", "path", "model"), CALLS, ids=CALL_IDS)
async def test_429_with_a_long_retry_after_is_not_retried(
    openai_double: OpenAIDouble, oa: OpenAIProvider, what: str, path: str, model: str
) -> None:
    openai_double.default = Reply(status=429, retry_after=30)
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as caught:
        await _run(oa, what, model)
    assert caught.value.retry_after == 30
    assert len(openai_double.calls(path)) == 1
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(("what", "path", "model"), CALLS, ids=CALL_IDS)
async def test_429_without_retry_after_backs_off_and_gives_up(
    openai_double: OpenAIDouble, oa: OpenAIProvider, what: str, path: str, model: str
) -> None:
    openai_double.default = Reply(status=429)
    with pytest.raises(RateLimitedError) as caught:
        await _run(oa, what, model)
    assert caught.value.retry_after is None
    assert len(openai_double.calls(path)) == 3


@pytest.mark.parametrize(("what", "path", "model"), CALLS, ids=CALL_IDS)
async def test_a_refused_request_is_a_bad_request_and_not_retried(
    openai_double: OpenAIDouble, oa: OpenAIProvider, what: str, path: str, model: str
) -> None:
    openai_double.default = Reply(
        status=400, error="Your request was rejected as a result of our safety system."
    )
    with pytest.raises(BadRequestError):
        await _run(oa, what, model)
    assert len(openai_double.calls(path)) == 1


@pytest.mark.parametrize(("what", "path", "model"), CALLS, ids=CALL_IDS)
async def test_a_malformed_answer_is_unavailable(
    openai_double: OpenAIDouble, oa: OpenAIProvider, what: str, path: str, model: str
) -> None:
    openai_double.default = Reply(malformed=True)
    with pytest.raises(UnavailableError):
        await _run(oa, what, model)


@pytest.mark.parametrize(("what", "path", "model"), CALLS, ids=CALL_IDS)
async def test_a_hang_is_a_timeout(
    openai_double: OpenAIDouble, make: Make, what: str, path: str, model: str
) -> None:
    openai_double.default = Reply(hang=True)
    provider = make("openai", openai_double.base_url, timeout=0.3)
    assert isinstance(provider, OpenAIProvider)
    provider.image_timeout = 0.3
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError):
        await _run(provider, what, model)
    assert time.monotonic() - started < 2
    assert len(openai_double.calls(path)) == 1  # a timeout is not retried, as in chat


@pytest.mark.parametrize(("what", "path", "model"), CALLS, ids=CALL_IDS)
async def test_connection_refused_is_unavailable(
    make: Make, what: str, path: str, model: str
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = make("openai", f"http://127.0.0.1:{port}/v1", max_retries=1)
    with pytest.raises(UnavailableError) as caught:
        await _run(provider, what, model)
    assert type(caught.value).__module__ == "providers.errors"


# Bodies a server may send with a 200 that are not a usable answer.
ODD_IMAGE_BODIES = [
    b"[]",
    b'{"data": []}',
    b'{"data": [{"url": "https://cdn.example/x.png"}]}',
    b'{"data": [{"b64_json": "not base64!"}]}',
    b'{"data": [{"b64_json": ""}]}',
    b'{"data": "nope"}',
    b"\xff\xfe",
]
ODD_TRANSCRIPT_BODIES = [b"{}", b'{"text": null}', b'{"text": 42}', b"[]", b"plain text"]


async def _serving(body: bytes) -> DoubleServer:
    """A server whose images and transcription routes answer ``body`` with a 200."""
    server = DoubleServer()

    async def answer(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    server.app.router.add_post("/v1/images/generations", answer)
    server.app.router.add_post("/v1/audio/transcriptions", answer)
    await server.start()
    return server


@pytest.mark.parametrize("body", ODD_IMAGE_BODIES)
async def test_an_unusable_image_answer_is_unavailable(make: Make, body: bytes) -> None:
    double = await _serving(body)
    try:
        with pytest.raises(UnavailableError):
            await make("openai", f"{double.url}/v1", max_retries=0).generate_image("dall-e-3", "x")
    finally:
        await double.stop()


async def test_an_image_in_a_data_url_is_accepted(make: Make) -> None:
    encoded = base64.b64encode(tiny_png()).decode()
    double = await _serving(
        json.dumps({"data": [{"url": f"data:image/png;base64,{encoded}"}]}).encode()
    )
    try:
        image = await make("openai", f"{double.url}/v1").generate_image("some-model", "x")
    finally:
        await double.stop()
    assert image == tiny_png()


@pytest.mark.parametrize("body", ODD_TRANSCRIPT_BODIES)
async def test_an_unusable_transcript_is_unavailable(make: Make, body: bytes) -> None:
    double = await _serving(body)
    try:
        with pytest.raises(UnavailableError):
            await make("openai", f"{double.url}/v1", max_retries=0).transcribe(
                "whisper-1", VOICE, "voice.ogg"
            )
    finally:
        await double.stop()


# -- the adapters without these capabilities -----------------------------------


@pytest.mark.parametrize("kind", ["mistral", "llama", "ollama"])
async def test_other_adapters_say_they_cannot_draw_or_listen(kind: str, make: Make) -> None:
    cls, base_url, _ = APIS[kind]
    async with cls(key=None if kind == "ollama" else KEY) as double:
        provider = make(kind, base_url(double))
        with pytest.raises(UnsupportedError) as drawing:
            await provider.generate_image("any-model", "a cat")
        with pytest.raises(UnsupportedError) as listening:
            await provider.transcribe("any-model", VOICE, "voice.ogg")
        assert double.requests == []  # nothing was sent
    assert isinstance(drawing.value, ProviderError)
    assert kind in str(drawing.value) and kind in str(listening.value)


# -- the doubles hold the line the real APIs hold -------------------------------


async def test_the_openai_double_refuses_what_the_real_api_refuses(
    openai_double: OpenAIDouble,
) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    photo = f"data:image/jpeg;base64,{base64.b64encode(PHOTO).decode()}"
    async with httpx.AsyncClient(base_url=openai_double.base_url, headers=headers) as client:
        # gpt-image models reject response_format
        refused = await client.post(
            "/images/generations",
            json={"model": "gpt-image-1", "prompt": "x", "response_format": "b64_json"},
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "unknown_parameter"
        # dall-e answers a URL by default, which the double serves
        by_url = await client.post("/images/generations", json={"model": "dall-e-2", "prompt": "x"})
        fetched = await client.get(by_url.json()["data"][0]["url"])
        assert fetched.content == tiny_png()
        # image_url must be an object, in a user message, holding valid base64
        for messages in (
            [{"role": "user", "content": [{"type": "image_url", "image_url": photo}]}],
            [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": photo}}]}],
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,@@"}}
                    ],
                }
            ],
        ):
            chat = await client.post(
                "/chat/completions", json={"model": "gpt-4o", "messages": messages}
            )
            assert chat.status_code == 400, messages
        # a transcription needs a file and a model
        no_file = await client.post("/audio/transcriptions", data={"model": "whisper-1"})
        assert no_file.status_code == 400
        no_model = await client.post(
            "/audio/transcriptions", files={"file": ("a.ogg", b"x")}, data={"x": "y"}
        )
        assert no_model.status_code == 400
        as_text = await client.post(
            "/audio/transcriptions",
            files={"file": ("a.ogg", b"spoken")},
            data={"model": "whisper-1", "response_format": "text"},
        )
        assert as_text.text == "transcript of 6 bytes: spoken\n"
    assert openai_double.images == []


async def test_the_ollama_double_refuses_images_that_are_not_base64() -> None:
    async with OllamaDouble() as double, httpx.AsyncClient() as client:
        response = await client.post(
            f"{double.url}/api/chat",
            json={
                "model": "llava",
                "messages": [{"role": "user", "content": "hi", "images": ["data:image/png,@@"]}],
            },
        )
    assert response.status_code == 400
    assert "base64" in response.json()["error"]


async def test_the_mistral_double_refuses_images_outside_user_messages() -> None:
    photo = f"data:image/jpeg;base64,{base64.b64encode(PHOTO).decode()}"
    async with MistralDouble(key=KEY) as double, httpx.AsyncClient() as client:
        response = await client.post(
            f"{double.base_url}/chat/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            json={
                "model": "mistral-small-latest",
                "messages": [
                    {"role": "system", "content": [{"type": "image_url", "image_url": photo}]}
                ],
            },
        )
    assert response.status_code == 422
