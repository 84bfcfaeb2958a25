"""The provider interface: a request value in, an async stream of chunks out.

Adapters implement :meth:`Provider._stream_once` (one attempt, raising only
:class:`~providers.errors.ProviderError`); this base class adds the retry policy
(before the first chunk only), the collected non-streaming call and the lifecycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal, TypeVar

from providers.errors import ProviderError, RateLimitedError, UnsupportedError

log = logging.getLogger(__name__)

_T = TypeVar("_T")

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class Image:
    """An image sent to a vision model, as bytes (never a URL: Telegram's hold the token)."""

    data: bytes = field(repr=False)
    mime: str = "image/jpeg"


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str
    images: tuple[Image, ...] = ()  # user messages to vision models only


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat call: the provider's model name, the conversation, and user options."""

    model: str
    messages: Sequence[Message]
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass(slots=True)  # not frozen: thousands are made per answer, and frozen costs 2x
class Chunk:
    """A piece of the answer: a text delta, and at the end a finish reason and usage.

    ``reasoning`` is a delta of the model's thinking (Gemini's thought parts, OpenAI-style
    ``reasoning_content``, Mistral's thinking chunks, Ollama's ``thinking``), kept apart
    from the answer: it is never the answer's text, and never goes back into history.
    """

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    reasoning: str = ""


@dataclass(slots=True)
class Completion:
    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """What an adapter needs to know; built by the bot from its catalog."""

    name: str
    kind: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 60.0
    max_retries: int = 2
    # The longest server-requested wait we sit out before giving up on a 429.
    max_retry_wait: float = 10.0
    backoff: float = 0.5


class Provider(ABC):
    """One API family. One instance per configured provider, one pooled client each."""

    kind: ClassVar[str]
    needs_key: ClassVar[bool] = True

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Close the pooled client."""

    @abstractmethod
    def _stream_once(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        """One attempt at a streamed chat call; raises only ProviderError."""

    @abstractmethod
    async def list_models(self) -> list[str]:
        """The model names the API offers (a cheap reachability and key check)."""

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        """Stream an answer, retrying transient failures until the first chunk arrives.

        Once a chunk has been yielded nothing is retried: text may have reached a user.
        """
        attempt = 0
        while True:
            stream = self._stream_once(request)
            try:
                first = await anext(stream)
            except StopAsyncIteration:
                return
            except ProviderError as exc:
                await _aclose(stream)
                attempt = await self._back_off(exc, attempt)
                continue
            try:
                yield first
                async for chunk in stream:
                    yield chunk
            finally:
                await _aclose(stream)
            return

    async def _retrying(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """One non-streamed call (an image, a transcript) with the same retry policy."""
        attempt = 0
        while True:
            try:
                return await call()
            except ProviderError as exc:
                attempt = await self._back_off(exc, attempt)

    async def _back_off(self, exc: ProviderError, attempt: int) -> int:
        """After failed attempt number ``attempt``: wait before the next one and return
        its number, or raise ``exc`` when it is not to be retried."""
        delay = self._retry_delay(exc, attempt)
        if delay is None:
            raise exc
        log.info("%s: %s, retry %d in %.2fs", self.name, type(exc).__name__, attempt + 1, delay)
        await asyncio.sleep(delay)
        return attempt + 1

    def _retry_delay(self, exc: ProviderError, attempt: int) -> float | None:
        if not exc.retryable or attempt >= self.config.max_retries:
            return None
        backoff: float = self.config.backoff * 2.0**attempt * (0.75 + random.random() / 2)
        if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
            if exc.retry_after > self.config.max_retry_wait:
                return None
            return max(exc.retry_after, 0.0)
        return backoff

    async def complete(self, request: ChatRequest) -> Completion:
        """The whole answer at once: the stream, collected."""
        parts: list[str] = []
        result = Completion()
        async for chunk in self.stream(request):
            parts.append(chunk.text)
            if chunk.finish_reason is not None:
                result.finish_reason = chunk.finish_reason
            if chunk.usage is not None:
                result.usage = chunk.usage
        result.text = "".join(parts)
        return result

    async def generate_image(
        self, model: str, prompt: str, images: Sequence[Image] = (), *, api: str = "images"
    ) -> bytes:
        """Draw ``prompt``, or with ``images`` edit them as ``prompt`` says; the new image
        file's bytes (PNG, JPEG or WebP). ``api`` picks the endpoint where a kind has more
        than one (``openai``: ``"images"``, the images API, or ``"chat"``, chat
        completions with image output); the other kinds ignore it."""
        raise UnsupportedError(f"{self.name}: image generation is not supported by {self.kind}")

    async def transcribe(self, model: str, audio: bytes, filename: str) -> str:
        """The text spoken in ``audio`` (``filename`` tells its format, e.g. voice.ogg)."""
        raise UnsupportedError(f"{self.name}: transcription is not supported by {self.kind}")


async def _aclose(stream: AsyncIterator[Chunk]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(ProviderError):
            await aclose()
