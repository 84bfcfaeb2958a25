"""What every test double shares: a real aiohttp server on 127.0.0.1 that records calls,
and, for model APIs, a script of how to answer each request.

A model double answers ``echo: <last user message>`` unless told otherwise, streamed a
word at a time, so tests can see both the context that was sent and the text that came
back. ``double.replies[model] = Reply(...)`` sets a model's behaviour; ``double.queue``
holds one-shot replies used (in order) before that.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Self

from aiohttp import web


@dataclass
class Recorded:
    """One request the double received."""

    time: float  # time.monotonic() when it arrived
    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    body: bytes = b""
    model: str | None = None


@dataclass
class Reply:
    """How a model double answers one request."""

    text: str | None = None  # None: "echo: " + the last user message
    chunks: list[str] | None = None  # explicit stream pieces (else: word by word)
    reasoning: list[str] | None = None  # thinking streamed before the answer (APIs that have it)
    status: int = 200  # != 200: answer with the API's own error body
    error: str = "something went wrong"  # the error message in that body
    retry_after: float | None = None  # a Retry-After header on an error
    first_delay: float = 0.0  # seconds before the response starts
    chunk_delay: float = 0.0  # seconds between streamed pieces
    cut_after: int | None = None  # drop the connection after this many pieces
    error_after: int | None = None  # an in-stream error after this many pieces (APIs that have one)
    hang: bool = False  # never answer (the client's timeout must fire)
    malformed: bool = False  # send a body that is not the API's JSON
    usage: tuple[int, int] | None = (7, 11)  # (input, output) tokens reported, None: none


def words(text: str) -> list[str]:
    """Split into stream pieces that join back to ``text`` exactly."""
    return re.findall(r"\s*\S+|\s+", text) or [""]


class DoubleServer:
    """An aiohttp application served on a free loopback port, recording every request."""

    def __init__(self) -> None:
        self.app = web.Application(middlewares=[self._record])
        self.requests: list[Recorded] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> str:
        self._runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        payload: Any = None
        if request.content_type == "application/json" and body:
            try:
                payload = await request.json()
            except ValueError:
                payload = None
        model = payload.get("model") if isinstance(payload, dict) else None
        self.requests.append(
            Recorded(
                time=time.monotonic(),
                method=request.method,
                path=request.path,
                headers=dict(request.headers),
                json=payload,
                body=body,
                model=model,
            )
        )
        response: web.StreamResponse = await handler(request)
        return response

    def calls(self, path_suffix: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith(path_suffix)]


class LLMDouble(DoubleServer):
    """Base of the model API doubles: auth, scripted replies, helpers for streaming."""

    def __init__(self, key: str | None = "test-key") -> None:
        super().__init__()
        self.key = key
        self.replies: dict[str, Reply] = {}
        self.default = Reply()
        self.queue: deque[Reply] = deque()
        self.known_models: set[str] | None = None  # None: every model exists

    def reply_for(self, model: str) -> Reply:
        if self.queue:
            return self.queue.popleft()
        return self.replies.get(model, self.default)

    def authorized(self, request: web.Request) -> bool:
        if self.key is None:
            return True
        return request.headers.get("Authorization") == f"Bearer {self.key}"

    def model_exists(self, model: str) -> bool:
        return self.known_models is None or model in self.known_models

    @staticmethod
    def answer_text(reply: Reply, messages: list[dict[str, Any]]) -> str:
        if reply.text is not None:
            return reply.text
        last = ""
        for message in messages:
            if message.get("role") == "user":
                last = _content_text(message.get("content"))
        return f"echo: {last}"

    @staticmethod
    def pieces(reply: Reply, text: str) -> list[str]:
        return reply.chunks if reply.chunks is not None else words(text)

    @staticmethod
    async def pause(seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)

    @staticmethod
    async def hang_forever() -> None:
        await asyncio.sleep(3600)

    @staticmethod
    def cut(request: web.Request) -> None:
        """Drop the connection without finishing the response."""
        transport = request.transport
        if transport is not None:
            transport.abort()


def _content_text(content: Any) -> str:
    """Text of a message content in any of the APIs' shapes (string or list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    if isinstance(content, dict):
        return str(content.get("text", ""))
    return ""
