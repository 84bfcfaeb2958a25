"""OpenAI Chat Completions, and every API that speaks it (Groq, Together, OpenRouter,
Gemini's and Grok's compatible endpoints, vLLM, llama.cpp, LM Studio, Ollama's /v1).

Spoken through the official openai SDK. This is the only module that imports it: the
registry loads this module on first use, so a catalog without an ``openai`` provider
never pays for the import.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, cast

import anyio
import httpx2
import openai
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from providers.base import ChatRequest, Chunk, Provider, ProviderConfig, Usage
from providers.errors import (
    ContextTooLongError,
    ProviderError,
    ProviderTimeoutError,
    UnavailableError,
    error_for_status,
    parse_retry_after,
    short,
)

# Sent when a provider has no key (local vLLM, LM Studio, llama.cpp): the SDK refuses
# to start without one, and would otherwise fall back to OPENAI_API_KEY from the
# environment and send that key to a server it was never meant for.
NO_KEY = "no-key"

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


class OpenAIProvider(Provider):
    """A provider of kind ``openai``: one pooled ``AsyncOpenAI`` client per instance."""

    kind = "openai"
    needs_key = True

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self._client = openai.AsyncOpenAI(
            api_key=config.api_key or NO_KEY,
            base_url=config.base_url,
            timeout=openai.Timeout(config.timeout, connect=min(10.0, config.timeout)),
            max_retries=0,  # Provider.stream() retries, and only before the first chunk
        )

    async def aclose(self) -> None:
        with contextlib.suppress(*_LEAKS, openai.OpenAIError):
            await self._client.close()

    async def _stream_once(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        options: dict[str, Any] = {}
        if request.temperature is not None:
            options["temperature"] = request.temperature
        if request.max_tokens is not None:
            options["max_completion_tokens"] = request.max_tokens
        messages: list[ChatCompletionMessageParam] = [
            cast("ChatCompletionMessageParam", {"role": m.role, "content": m.content})
            for m in request.messages
        ]
        with self._mapped_errors():
            stream = await self._client.chat.completions.create(
                model=request.model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                **options,
            )
        try:
            received = False
            while True:
                with self._mapped_errors():
                    event = await anext(stream, None)
                if event is None:
                    break
                received = True
                with self._mapped_errors():
                    chunk = _chunk(event)
                if chunk is not None:
                    yield chunk
            if not received:
                raise UnavailableError(f"{self.name}: the API sent no completion chunks")
        finally:
            with contextlib.suppress(*_LEAKS, openai.OpenAIError):
                await stream.close()

    async def list_models(self) -> list[str]:
        names: list[str] = []
        with self._mapped_errors():
            async for model in self._client.models.list():
                name = getattr(model, "id", None)
                if isinstance(name, str):
                    names.append(name)
        return names

    @contextlib.contextmanager
    def _mapped_errors(self) -> Iterator[None]:
        """Turn whatever the SDK raises into the providers.errors hierarchy.

        Wrap SDK calls only, never a ``yield`` to the caller.
        """
        try:
            yield
        except openai.OpenAIError as exc:
            raise self._sdk_error(exc) from None
        except _LEAKS as exc:
            raise UnavailableError(
                f"{self.name}: {type(exc).__name__}: {short(str(exc))}"
            ) from None

    def _sdk_error(self, exc: openai.OpenAIError) -> ProviderError:
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc)
        if isinstance(exc, openai.APITimeoutError):
            return ProviderTimeoutError(f"{self.name}: timed out")
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__
            detail = f" ({type(cause).__name__})" if cause is not None else ""
            return UnavailableError(f"{self.name}: connection failed{detail}")
        if isinstance(exc, openai.APIResponseValidationError):
            return UnavailableError(f"{self.name}: malformed response from the API")
        if isinstance(exc, openai.APIError):
            return self._stream_error(exc)
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

    def _stream_error(self, exc: openai.APIError) -> ProviderError:
        """An error event inside a 200 stream (OpenRouter, vLLM and others send these)."""
        body = exc.body if isinstance(exc.body, dict) else {}
        code = body.get("code")
        if isinstance(code, int) and 400 <= code <= 599:  # OpenRouter puts the status here
            return error_for_status(code, exc.message, provider=self.name)
        message = f"{self.name}: error event in the stream: {short(exc.message)}"
        if exc.code == "context_length_exceeded":
            return ContextTooLongError(message, status=400)
        return UnavailableError(message)


def _chunk(event: object) -> Chunk | None:
    """The text, finish reason and usage one streamed event carries; None if nothing.

    The SDK builds events leniently (a missing field is None, a wrong shape is kept as
    it came), so every field is checked before it is trusted.
    """
    if not isinstance(event, ChatCompletionChunk):
        raise ValueError("a streamed event is not a chat.completion.chunk")
    text = ""
    finish_reason: str | None = None
    for choice in event.choices or ():
        if choice.index not in (0, None):
            continue  # we ask for one choice; ignore any other
        delta = choice.delta
        if delta is not None:
            text += _text(delta.content) + _text(delta.refusal)
        if isinstance(choice.finish_reason, str):
            finish_reason = choice.finish_reason
    usage = None
    if event.usage is not None:
        usage = Usage(
            input_tokens=_count(event.usage.prompt_tokens),
            output_tokens=_count(event.usage.completion_tokens),
        )
    if not text and finish_reason is None and usage is None:
        return None
    return Chunk(text=text, finish_reason=finish_reason, usage=usage)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _count(value: object) -> int | None:
    return value if isinstance(value, int) else None
