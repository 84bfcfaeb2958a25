"""OpenAI Chat Completions, and every API that speaks it (Groq, Together, OpenRouter,
Gemini's and Grok's compatible endpoints, vLLM, llama.cpp, LM Studio, Ollama's /v1),
with images on user messages as ``image_url`` parts holding base64 ``data:`` URLs; and
the images (``images/generations``, base64) and transcription (``audio/transcriptions``)
APIs.

Spoken through the official openai SDK. This is the only module that imports it: the
registry loads this module on first use, so a catalog without an ``openai`` provider
never pays for the import.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, cast

import anyio
import httpx2
import openai

from providers import aiohttp_transport
from providers.base import ChatRequest, Chunk, Image, Message, Provider, ProviderConfig, Usage
from providers.codec import loads
from providers.errors import (
    ContextTooLongError,
    DeclinedError,
    ProviderError,
    ProviderTimeoutError,
    UnavailableError,
    UnreachableError,
    error_for_status,
    parse_retry_after,
    short,
)
from providers.media import chat_message

log = logging.getLogger(__name__)

# The least time an image is waited for: it arrives whole, after up to a minute or two
# of silence, where a chat stream's timeout is the longest gap between its chunks.
IMAGE_TIMEOUT = 180.0

# Sent when a provider has no key (local vLLM, LM Studio, llama.cpp): the SDK refuses
# to start without one, and would otherwise fall back to OPENAI_API_KEY from the
# environment and send that key to a server it was never meant for.
NO_KEY = "no-key"

# How long we read on after ``[DONE]`` for the end of the body (the SDK's own figure).
_DRAIN_TIMEOUT = 0.1

# What may leak from the SDK's HTTP stack besides OpenAIError: transport and stream
# errors of httpx2 (and of legacy httpx when it is loaded), TLS and socket errors,
# anyio stream ends, and JSON, validation or shape errors from a body that is not the
# API's (the SDK builds models leniently, so a wrong shape surfaces on attribute access).
_LEAKS: tuple[type[BaseException], ...] = (
    httpx2.HTTPError,
    httpx2.StreamError,
    httpx2.InvalidURL,
    OSError,
    ValueError,
    TypeError,
    AttributeError,
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
)
_RAISED: tuple[type[BaseException], ...] = (openai.OpenAIError, *_LEAKS)


class OpenAIProvider(Provider):
    """A provider of kind ``openai``: one pooled ``AsyncOpenAI`` client per instance."""

    kind = "openai"
    needs_key = True

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.image_timeout = max(config.timeout, IMAGE_TIMEOUT)

    @functools.cached_property
    def client(self) -> openai.AsyncOpenAI:
        """Made on first use. No cap on streams at once: thousands may wait on a slow
        model. The SDK's httpx2 client sends through aiohttp (providers/aiohttp_transport.py):
        a waiting stream is an idle socket, and reading a chunk costs a fraction of what
        it costs through httpcore."""
        config = self.config
        return openai.AsyncOpenAI(
            api_key=config.api_key or NO_KEY,
            base_url=config.base_url,
            timeout=openai.Timeout(config.timeout, connect=min(10.0, config.timeout)),
            max_retries=0,  # Provider.stream() retries, and only before the first chunk
            http_client=openai.DefaultAsyncHttpx2Client(
                transport=aiohttp_transport.for_httpx(httpx2)
            ),
        )

    async def aclose(self) -> None:
        client = self.__dict__.pop("client", None)
        if client is not None:
            with contextlib.suppress(*_RAISED):
                await client.close()

    async def _stream_once(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [chat_message(m) for m in request.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body["max_completion_tokens"] = request.max_tokens
        # The SDK sends the request (auth, base_url, headers, status errors) through its
        # documented raw ``post``: ``chat.completions.create`` first walks every message
        # through its parameter transform (4 ms for a 40-message history, more than the
        # rest of a turn), and would build a typed ChatCompletionChunk per event (ten
        # times the CPU of reading the stream). The body is built and the SSE parsed here.
        with self._mapped_errors():
            # the response comes back unread: its reads are mapped one by one below
            sent = self.client.post(
                "/chat/completions",
                cast_to=httpx2.Response,
                body=body,
                stream=True,
                stream_cls=openai.AsyncStream[Any],
            )
            response = cast(httpx2.Response, await sent)
        try:
            chunks = response.aiter_bytes()
            received = finished = False
            rest = b""  # the start of a line whose end has not arrived yet
            data: bytes | None = None  # the pending event's data lines, joined by b"\n"
            while not finished:
                try:
                    raw = await anext(chunks, None)
                except _RAISED as exc:
                    raise self._read_error(exc) from None
                if raw is None:  # the body's end ends its last line and event
                    lines, finished = [*_split_lines(rest + b"\n")[0], b""], True
                else:
                    lines, rest = _split_lines(rest + raw)
                for line in lines:
                    if line:
                        if line.startswith(b"data:"):
                            value = line[6:] if line[5:6] == b" " else line[5:]
                            data = value if data is None else data + b"\n" + value
                        continue  # comments (": keep-alive"), event names, ids, retry
                    if data is None:
                        continue  # a blank line that ends no event
                    if data.startswith(b"[DONE]"):
                        if not finished:
                            await _drain(chunks)
                        finished = True
                        break
                    received = True
                    chunk = self._chunk(data)
                    data = None
                    if chunk is not None:
                        yield chunk
            if not received:
                raise UnavailableError(f"{self.name}: the API sent no completion chunks")
        finally:
            with contextlib.suppress(*_RAISED):
                await response.aclose()

    async def list_models(self) -> list[str]:
        names: list[str] = []
        with self._mapped_errors():
            async for model in self.client.models.list():
                name = getattr(model, "id", None)
                if isinstance(name, str):
                    names.append(name)
        return names

    async def generate_image(
        self, model: str, prompt: str, images: Sequence[Image] = (), *, api: str = "images"
    ) -> bytes:
        """Draw ``prompt`` (or edit ``images`` as it says); the first image's bytes.

        ``api="images"`` (the default): ``POST images/generations``, or with images
        ``POST images/edits`` (multipart). ``gpt-image`` models always answer base64 and
        refuse ``response_format``; the others (``dall-e-*``, compatible servers) are
        asked for ``b64_json``, so no image is ever fetched from a URL.

        ``api="chat"``: chat completions with ``modalities: ["image", "text"]``, the
        photos as ``image_url`` parts beside the prompt, as gateways such as OpenRouter
        serve image models; the picture comes back in the message's ``images`` as a
        ``data:`` URL. Retried like chat: before any result only.
        """
        if api == "chat":
            return await self._retrying(lambda: self._chat_image_once(model, prompt, images))
        if images:
            return await self._retrying(lambda: self._edit_image_once(model, prompt, images))
        return await self._retrying(lambda: self._generate_image_once(model, prompt))

    async def transcribe(self, model: str, audio: bytes, filename: str) -> str:
        """``POST audio/transcriptions`` (multipart ``file`` and ``model``); its ``text``."""
        return await self._retrying(lambda: self._transcribe_once(model, audio, filename))

    def _image_timeout(self) -> openai.Timeout:
        return openai.Timeout(self.image_timeout, connect=min(10.0, self.config.timeout))

    async def _generate_image_once(self, model: str, prompt: str) -> bytes:
        options: dict[str, Any] = {}
        if not _answers_base64(model):
            options["response_format"] = "b64_json"
        with self._mapped_errors():
            raw = await self.client.images.with_raw_response.generate(
                model=model, prompt=prompt, timeout=self._image_timeout(), **options
            )
            body = raw.content
        return self._image_of(body)

    async def _edit_image_once(self, model: str, prompt: str, images: Sequence[Image]) -> bytes:
        options: dict[str, Any] = {}
        if not _answers_base64(model):
            options["response_format"] = "b64_json"
        files = [(f"image{i}.{_suffix(im.mime)}", im.data, im.mime) for i, im in enumerate(images)]
        with self._mapped_errors():
            raw = await self.client.images.with_raw_response.edit(
                model=model,
                prompt=prompt,
                image=files[0] if len(files) == 1 else files,
                timeout=self._image_timeout(),
                **options,
            )
            body = raw.content
        return self._image_of(body)

    def _image_of(self, body: bytes) -> bytes:
        """The first image of an images API answer (``data[0].b64_json``)."""
        data = self._object(body).get("data")
        first = data[0] if isinstance(data, list) and data else None
        if not isinstance(first, dict):
            raise UnavailableError(f"{self.name}: the images API sent no image")
        encoded = first.get("b64_json")
        url = first.get("url")
        if not isinstance(encoded, str) and isinstance(url, str) and url.startswith("data:"):
            encoded = url.partition(",")[2]  # a data: URL is base64 too; others are not fetched
        if not isinstance(encoded, str):
            raise UnavailableError(f"{self.name}: the images API sent no base64 image data")
        return self._decoded(encoded)

    def _decoded(self, encoded: str) -> bytes:
        try:
            image = base64.b64decode(encoded, validate=True)
        except ValueError:
            raise UnavailableError(f"{self.name}: malformed base64 image from the API") from None
        if not image:
            raise UnavailableError(f"{self.name}: the API sent an empty image")
        return image

    async def _chat_image_once(self, model: str, prompt: str, images: Sequence[Image]) -> bytes:
        body = {
            "model": model,
            "messages": [chat_message(Message("user", prompt, tuple(images)))],
            "modalities": ["image", "text"],
        }
        with self._mapped_errors():
            response = await self.client.post(
                "/chat/completions",
                cast_to=httpx2.Response,
                body=body,
                options={"timeout": self._image_timeout()},
            )
            raw = response.content
        choices = self._object(raw).get("choices")
        first = choices[0] if isinstance(choices, list) and choices else None
        message = first.get("message") if isinstance(first, dict) else None
        if not isinstance(message, dict):
            raise UnavailableError(f"{self.name}: the chat API sent no message")
        for item in message.get("images") or []:
            image_url = item.get("image_url") if isinstance(item, dict) else None
            url = image_url.get("url") if isinstance(image_url, dict) else image_url
            if isinstance(url, str) and url.startswith("data:"):
                return self._decoded(url.partition(",")[2])
        said = message.get("content") or message.get("refusal") or ""
        raise DeclinedError(f"{self.name}: no image in the answer: {short(str(said))}")

    async def _transcribe_once(self, model: str, audio: bytes, filename: str) -> str:
        with self._mapped_errors():
            raw = await self.client.audio.transcriptions.with_raw_response.create(
                model=model, file=(filename, audio)
            )
            body = raw.content
        text = self._object(body).get("text")
        if not isinstance(text, str):
            raise UnavailableError(f"{self.name}: the transcription API sent no text")
        return text

    def _object(self, body: bytes) -> dict[str, Any]:
        """A JSON object response body; UnavailableError for anything else."""
        try:
            value = json.loads(body)
        except ValueError:  # also what bytes that are not UTF-8 raise
            raise UnavailableError(f"{self.name}: malformed JSON from the API") from None
        if not isinstance(value, dict):
            raise UnavailableError(f"{self.name}: the API's answer is not a JSON object")
        return value

    @contextlib.contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        """Turn whatever the SDK raises into the providers.errors hierarchy.

        Wrap SDK calls only, never a ``yield`` to the caller.
        """
        try:
            yield
        except _RAISED as exc:
            raise self._read_error(exc) from None

    def _read_error(self, exc: BaseException) -> ProviderError:
        """The hierarchy's error for one the SDK or its HTTP stack raised."""
        if isinstance(exc, openai.OpenAIError):
            return self._sdk_error(exc)
        if isinstance(exc, httpx2.TimeoutException):  # the raw stream stalled
            return ProviderTimeoutError(f"{self.name}: timed out ({type(exc).__name__})")
        return UnavailableError(f"{self.name}: {type(exc).__name__}: {short(str(exc))}")

    def _sdk_error(self, exc: openai.OpenAIError) -> ProviderError:
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc)
        if isinstance(exc, openai.APITimeoutError):
            return ProviderTimeoutError(f"{self.name}: timed out")
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__
            detail = f" ({type(cause).__name__})" if cause is not None else ""
            if isinstance(cause, httpx2.ConnectError | httpx2.ConnectTimeout):
                return UnreachableError(f"{self.name}: cannot connect{detail}")
            return UnavailableError(f"{self.name}: connection failed{detail}")
        if isinstance(exc, openai.APIResponseValidationError):
            return UnavailableError(f"{self.name}: malformed response from the API")
        if isinstance(exc, openai.APIError):
            return self._stream_error(exc.body if isinstance(exc.body, dict) else exc.message)
        return UnavailableError(f"{self.name}: {type(exc).__name__}: {short(str(exc))}")

    def _status_error(self, exc: openai.APIStatusError) -> ProviderError:
        """Map an HTTP error by its status and body (whose ``code`` names, for example,
        ``context_length_exceeded``)."""
        try:
            body = exc.response.text
        except _LEAKS:
            body = ""
        return error_for_status(
            exc.status_code,
            body or exc.message,
            retry_after=parse_retry_after(exc.response.headers.get("retry-after")),
            provider=self.name,
        )

    def _stream_error(self, error: object) -> ProviderError:
        """An ``{"error": ...}`` event inside a 200 stream (OpenRouter, vLLM and others
        send these): a status in ``code`` maps as that status, ``context_length_exceeded``
        as the context, anything else as the provider failing."""
        body: dict[str, Any] = error if isinstance(error, dict) else {}
        message = body.get("message") if body else error
        if not isinstance(message, str) or not message:
            message = "An error occurred during streaming"
        code = body.get("code")
        if type(code) is int and 400 <= code <= 599:  # OpenRouter puts the status here
            return error_for_status(code, message, provider=self.name)
        text = f"{self.name}: error event in the stream: {short(message)}"
        if code == "context_length_exceeded":
            return ContextTooLongError(text, status=400)
        return UnavailableError(text)

    def _chunk(self, data: bytes) -> Chunk | None:
        """The text, finish reason and usage one event's data carries; None if nothing.

        Raises the error an ``{"error": ...}`` event reports, and UnavailableError for
        data that is not a JSON object. Fields of the wrong type are ignored.
        """
        try:
            event = loads(data)
        except ValueError:  # also what a byte sequence that is not UTF-8 raises
            raise UnavailableError(f"{self.name}: malformed JSON in the stream") from None
        if not isinstance(event, dict):
            raise UnavailableError(f"{self.name}: a streamed event is not a JSON object")
        error = event.get("error")
        if error:
            raise self._stream_error(error)
        text = reasoning = ""
        finish_reason: str | None = None
        choices = event.get("choices")
        if choices:
            if not isinstance(choices, list):
                raise UnavailableError(f"{self.name}: a streamed event has malformed choices")
            for choice in choices:
                if not isinstance(choice, dict):
                    raise UnavailableError(f"{self.name}: a streamed event has a malformed choice")
                if choice.get("index") not in (0, None):
                    continue  # we ask for one choice; ignore any other
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    content, refusal = delta.get("content"), delta.get("refusal")
                    if isinstance(content, str):
                        text += content
                    if isinstance(refusal, str):
                        text += refusal
                    if content is None or len(delta) > 1:  # else: content alone
                        thought = delta.get("reasoning_content", delta.get("reasoning"))
                        if isinstance(thought, str):
                            reasoning += thought
                reason = choice.get("finish_reason")
                if isinstance(reason, str):
                    finish_reason = reason
        usage = event.get("usage")
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            return Chunk(
                text=text,
                finish_reason=finish_reason,
                usage=Usage(
                    input_tokens=prompt if type(prompt) is int else None,
                    output_tokens=completion if type(completion) is int else None,
                ),
                reasoning=reasoning,
            )
        if not text and finish_reason is None and not reasoning:
            return None
        return Chunk(text, finish_reason, None, reasoning)


def _answers_base64(model: str) -> bool:
    """Whether the model always answers base64 and refuses ``response_format`` (gpt-image)."""
    return "gpt-image" in model.lower()


def _suffix(mime: str) -> str:
    """A file name suffix for an uploaded image (the API reads the type from it)."""
    return {"image/png": "png", "image/webp": "webp"}.get(mime.lower(), "jpg")


def _split_lines(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete lines in ``buffer`` (ended by LF, CRLF or CR), and what follows them."""
    held = b""
    if b"\r" in buffer:
        if buffer.endswith(b"\r"):  # perhaps half of a CRLF: wait for the next byte
            buffer, held = buffer[:-1], b"\r"
        buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = buffer.split(b"\n")
    return lines, lines.pop() + held


async def _drain(body: AsyncIterator[bytes]) -> None:
    """Read, briefly, what follows ``[DONE]`` (normally just the body's end), so that an
    HTTP/1.1 connection goes back to the pool rather than being closed with the stream."""
    with contextlib.suppress(*_RAISED), anyio.move_on_after(_DRAIN_TIMEOUT):
        async for _ in body:
            pass
