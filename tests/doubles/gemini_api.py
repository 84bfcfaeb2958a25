"""A fake of Google's Gemini API in its native format, mounted under ``/v1beta`` (so a
provider's ``base_url`` is ``{double.url}/v1beta``).

Routes: ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` (server-sent
events, each data a whole ``GenerateContentResponse``, ``\\r\\n`` line ends, no
``[DONE]``), ``POST /v1beta/models/{model}:generateContent`` (one JSON response; with
``generationConfig.responseModalities`` holding ``IMAGE``, an ``inlineData`` part holding
:func:`~tests.doubles.media.tiny_png` beside a text part), and ``GET /v1beta/models``
(``pageSize``/``pageToken`` paging, ``nextPageToken``).

The key is read from ``x-goog-api-key`` (or ``?key=``): none is a 403
PERMISSION_DENIED, a wrong one a 400 INVALID_ARGUMENT with an ``ErrorInfo`` detail whose
reason is ``API_KEY_INVALID``, as Google answers. Errors are Google's body
``{"error": {"code", "message", "status", "details"}}``: 404 NOT_FOUND for a model
outside ``known_models``; 400 INVALID_ARGUMENT for a malformed request (a role other
than ``user``/``model``, an empty ``parts``, a part that is neither text nor
``inlineData``, ``inlineData`` that is not base64, an unknown field), for the input over
``context_limit`` (tokens, four characters each) and for ``thinkingConfig`` sent to a
model in ``no_thinking``; whatever status a :class:`Reply` scripts, a 429 with a
``RetryInfo`` detail (``retryDelay``) when ``retry_after`` is set.

A streamed answer sends ``thoughts`` (:class:`GeminiReply`) as ``"thought": true`` parts
first when ``thinkingConfig.includeThoughts`` asks for them, then one text part per
piece, ``usageMetadata`` on every event, ``finishReason`` on the last (``MAX_TOKENS``
when ``maxOutputTokens`` cuts the pieces). ``GeminiReply.block`` ends the stream after
``block_after`` pieces with that finish reason and no content (SAFETY, RECITATION);
``prompt_block`` answers one event with ``promptFeedback.blockReason`` and no
candidates. ``Reply.cut_after`` drops the connection, ``Reply.error_after`` sends an
``{"error": ...}`` event, ``Reply.malformed`` data that is not JSON, ``Reply.hang``
never answers. Every ``inlineData`` image a request carried is recorded in ``images``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.doubles.base import LLMDouble, Reply
from tests.doubles.media import SeenImage, decode_base64, tiny_png

DEFAULT_MODELS = ["gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.5-flash-image"]
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_TOP_FIELDS = {
    "contents",
    "systemInstruction",
    "generationConfig",
    "safetySettings",
    "tools",
    "toolConfig",
    "cachedContent",
}


@dataclass
class GeminiReply(Reply):
    """A :class:`Reply` with what only Gemini says: thoughts, blocks, drawing or not."""

    thoughts: list[str] | None = None  # thought summaries, sent before the text
    block: str | None = None  # a finishReason that blocks the answer: "SAFETY", ...
    block_after: int = 0  # pieces of text sent before the block
    prompt_block: str | None = None  # promptFeedback.blockReason: the prompt is blocked
    image: bool = True  # an image request gets a picture (False: words only)


class GeminiDouble(LLMDouble):
    """Speaks the Gemini API's native wire format; see the module docstring."""

    def __init__(self, key: str | None = "test-key") -> None:
        super().__init__(key)
        self.context_limit: int | None = None
        self.no_thinking: set[str] = set()  # models that refuse thinkingConfig
        self.images: list[SeenImage] = []
        self.page_size_cap = 1000
        self.queries: list[str] = []  # the query string of every generate call
        self._handlers: set[asyncio.Task[Any]] = set()
        self.app.router.add_post("/v1beta/models/{call}", self._tracked(self._call))
        self.app.router.add_get("/v1beta/models", self._models)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1beta"

    async def stop(self) -> None:
        for task in self._handlers:
            task.cancel()
        await super().stop()

    def _tracked(
        self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def run(request: web.Request) -> web.StreamResponse:
            task = asyncio.current_task()
            assert task is not None
            self._handlers.add(task)
            try:
                return await handler(request)
            finally:
                self._handlers.discard(task)

        return run

    def model_of(self, path: str) -> str:
        """The model a recorded request's path names."""
        return path.rsplit("/", 1)[-1].partition(":")[0]

    # -- routes ------------------------------------------------------------------------

    def _auth_failure(self, request: web.Request) -> web.Response | None:
        if self.key is None:
            return None
        given = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not given:
            return error(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity to "
                "call this API.",
            )
        if given != self.key:
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ]
            return error(400, "API key not valid. Please pass a valid API key.", details)
        return None

    async def _models(self, request: web.Request) -> web.StreamResponse:
        failed = self._auth_failure(request)
        if failed is not None:
            return failed
        names = sorted(self.known_models) if self.known_models is not None else DEFAULT_MODELS
        size = min(int(request.query.get("pageSize", "50")), self.page_size_cap)
        start = int(request.query.get("pageToken") or 0)
        page = names[start : start + size]
        body: dict[str, Any] = {
            "models": [
                {
                    "name": f"models/{name}",
                    "displayName": name,
                    "inputTokenLimit": 1048576,
                    "supportedGenerationMethods": ["generateContent", "countTokens"],
                }
                for name in page
            ]
        }
        if start + size < len(names):
            body["nextPageToken"] = str(start + size)
        return web.json_response(body)

    async def _call(self, request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["call"].partition(":")
        self.queries.append(request.query_string)
        if method not in ("streamGenerateContent", "generateContent"):
            return error(404, f"Method not found: {method}")
        failed = self._auth_failure(request)
        if failed is not None:
            return failed
        try:
            payload = await request.json()
        except ValueError:
            return error(400, "Invalid JSON payload received.")
        if not self.model_exists(model):
            return error(
                404,
                f"models/{model} is not found for API version v1beta, or is not supported "
                "for generateContent. Call ListModels to see the list of available models "
                "and their supported methods.",
            )
        problem = self._validate(model, payload)
        if problem is not None:
            return error(400, problem)
        config = payload.get("generationConfig") or {}
        thinking = config.get("thinkingConfig")
        if thinking is not None and model in self.no_thinking:
            return error(400, "Thinking is not supported for this model.")
        reply = self.reply_for(model)
        if reply.hang:
            await self.hang_forever()
        await self.pause(reply.first_delay)
        if reply.status != 200:
            details = []
            if reply.retry_after is not None:
                details.append(
                    {
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": f"{reply.retry_after:g}s",
                    }
                )
            return error(reply.status, reply.error, details)
        contents = payload.get("contents") or []
        tokens = len(json.dumps(contents)) // 4
        if self.context_limit is not None and tokens > self.context_limit:
            return error(
                400,
                f"The input token count ({tokens}) exceeds the maximum number of tokens "
                f"allowed ({self.context_limit}).",
            )
        extra = reply if isinstance(reply, GeminiReply) else GeminiReply()
        text = self.answer_text(reply, _as_messages(contents))
        pieces = self.pieces(reply, text)
        finish = "STOP"
        limit = config.get("maxOutputTokens")
        if isinstance(limit, int) and len(pieces) > limit:
            pieces, finish = pieces[:limit], "MAX_TOKENS"
        wanted = bool((thinking or {}).get("includeThoughts"))
        thoughts = (extra.thoughts or []) if wanted else []
        if method == "generateContent":
            modalities = [str(m).upper() for m in config.get("responseModalities") or []]
            return self._whole(reply, extra, pieces, thoughts, finish, "IMAGE" in modalities)
        return await self._stream(request, reply, extra, pieces, thoughts, finish)

    def _validate(self, model: str, payload: Any) -> str | None:
        """What Google would refuse in this request body, or None; records its images."""
        if not isinstance(payload, dict):
            return "Invalid JSON payload received. Expected an object."
        for name in payload:
            if name not in _TOP_FIELDS:
                return f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.'
        contents = payload.get("contents")
        if not isinstance(contents, list) or not contents:
            return "* GenerateContentRequest.contents: contents is not specified"
        seen: list[SeenImage] = []
        for i, content in enumerate(contents):
            role = content.get("role") if isinstance(content, dict) else None
            if role not in ("user", "model"):
                return "Please use a valid role: user, model."
            parts = content.get("parts")
            if not isinstance(parts, list) or not parts:
                where = f"GenerateContentRequest.contents[{i}].parts"
                return f"* {where}: contents.parts must not be empty."
            for part in parts:
                if not isinstance(part, dict):
                    return f"* GenerateContentRequest.contents[{i}].parts: must be objects"
                if "text" in part:
                    if not isinstance(part["text"], str):
                        return "Invalid value at 'contents.parts.text' (TYPE_STRING)"
                    continue
                inline = part.get("inlineData")
                if not isinstance(inline, dict):
                    return f"* GenerateContentRequest.contents[{i}].parts: unsupported part"
                data, mime = inline.get("data"), inline.get("mimeType")
                if not isinstance(data, str) or not isinstance(mime, str):
                    return "* GenerateContentRequest.contents.parts.inline_data: data required"
                try:
                    decoded = decode_base64(data)
                except ValueError:
                    return (
                        "Invalid value at 'contents.parts.inline_data.data' (TYPE_BYTES), "
                        "Base64 decoding failed"
                    )
                seen.append(SeenImage(model, role, data, decoded, mime))
        system = payload.get("systemInstruction")
        if system is not None:
            parts = system.get("parts") if isinstance(system, dict) else None
            if not isinstance(parts, list) or not all(
                isinstance(p, dict) and isinstance(p.get("text"), str) for p in parts
            ):
                return "* GenerateContentRequest.system_instruction: text parts only"
        self.images.extend(seen)
        return None

    # -- answers -----------------------------------------------------------------------

    def _whole(
        self,
        reply: Reply,
        extra: GeminiReply,
        pieces: list[str],
        thoughts: list[str],
        finish: str,
        draw: bool,
    ) -> web.Response:
        if reply.malformed:
            return web.Response(text="<html>upstream proxy error</html>", content_type="text/html")
        if extra.prompt_block:
            return web.json_response(_prompt_blocked(extra.prompt_block, reply))
        parts: list[dict[str, Any]] = [{"text": t, "thought": True} for t in thoughts]
        if extra.block:
            candidate: dict[str, Any] = {"finishReason": extra.block, "index": 0}
        else:
            if draw and extra.image:
                parts.append({"text": "Here is your picture."})
                parts.append({"inlineData": {"mimeType": "image/png", "data": _png64()}})
            else:
                parts.append({"text": "".join(pieces)})
            candidate = {"content": {"role": "model", "parts": parts}, "finishReason": finish}
            candidate["index"] = 0
        body: dict[str, Any] = {"candidates": [candidate], "modelVersion": "double"}
        if reply.usage is not None:
            body["usageMetadata"] = _usage(reply, len(thoughts))
        return web.json_response(body)

    async def _stream(
        self,
        request: web.Request,
        reply: Reply,
        extra: GeminiReply,
        pieces: list[str],
        thoughts: list[str],
        finish: str,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)

        async def send(data: Any) -> None:
            text = data if isinstance(data, str) else json.dumps(data)
            await response.write(f"data: {text}\r\n\r\n".encode())

        def event(parts: list[dict[str, Any]], reason: str | None = None) -> dict[str, Any]:
            candidate: dict[str, Any] = {"index": 0}
            if parts:
                candidate["content"] = {"role": "model", "parts": parts}
            if reason is not None:
                candidate["finishReason"] = reason
            body: dict[str, Any] = {"candidates": [candidate], "modelVersion": "double"}
            if reply.usage is not None:
                body["usageMetadata"] = _usage(reply, len(thoughts))
            return body

        if reply.malformed:
            await send('{"candidates": [{"content": {"parts": [{"text": "hel')
            return response
        if extra.prompt_block:
            await send(_prompt_blocked(extra.prompt_block, reply))
            await response.write_eof()
            return response
        for thought in thoughts:
            await send(event([{"text": thought, "thought": True}]))
            await self.pause(reply.chunk_delay)
        for sent, piece in enumerate(pieces):
            if reply.cut_after is not None and sent >= reply.cut_after:
                await asyncio.sleep(0.05)  # let what was written reach the client
                self.cut(request)
                return response
            if reply.error_after is not None and sent >= reply.error_after:
                await send(error_body(500, reply.error))
                await response.write_eof()
                return response
            if extra.block is not None and sent >= extra.block_after:
                break
            if sent:
                await self.pause(reply.chunk_delay)
            last = sent == len(pieces) - 1 and extra.block is None
            await send(event([{"text": piece}], finish if last else None))
        if extra.block is not None:
            await send(event([], extra.block))
        elif not pieces:
            await send(event([], finish))
        await response.write_eof()
        return response


def error_body(
    status: int, message: str, details: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": _STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if details:
        body["details"] = details
    return {"error": body}


def error(status: int, message: str, details: list[dict[str, Any]] | None = None) -> web.Response:
    return web.json_response(error_body(status, message, details), status=status)


def _prompt_blocked(reason: str, reply: Reply) -> dict[str, Any]:
    body: dict[str, Any] = {"promptFeedback": {"blockReason": reason}, "modelVersion": "double"}
    if reply.usage is not None:
        body["usageMetadata"] = {"promptTokenCount": reply.usage[0], "totalTokenCount": 0}
    return body


def _usage(reply: Reply, thoughts: int) -> dict[str, int]:
    assert reply.usage is not None
    prompt, output = reply.usage
    body = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output + thoughts,
    }
    if thoughts:
        body["thoughtsTokenCount"] = thoughts
    return body


def _as_messages(contents: list[Any]) -> list[dict[str, Any]]:
    """The contents as OpenAI-style messages, for the base's echo."""
    return [
        {"role": c.get("role"), "content": [p for p in c.get("parts", []) if "text" in p]}
        for c in contents
        if isinstance(c, dict)
    ]


def _png64() -> str:
    import base64

    return base64.b64encode(tiny_png()).decode()
