"""A fake OpenAI Chat Completions API (and so of every compatible API).

Routes, mounted under ``/v1`` (so a provider's ``base_url`` is ``{double.url}/v1``):
``POST /v1/chat/completions`` (SSE ``chat.completion.chunk`` stream, or one
``chat.completion`` JSON when ``stream`` is false) and ``GET /v1/models``.

Errors use OpenAI's body shape ``{"error": {"message", "type", "param", "code"}}``: 401
for a wrong or missing Bearer key, 404 ``model_not_found`` for a model outside
``known_models`` (when set), 400 ``context_length_exceeded`` when the messages exceed
``context_limit`` (in tokens, counted as four characters each; the wording is
``context_message``), and whatever status a :class:`Reply` scripts (with a Retry-After
header when ``retry_after`` is set).

A streamed answer sends the role in its first delta, one delta per piece, the finish
reason (``length`` when ``max_completion_tokens`` cuts the pieces), a usage-only chunk
(empty ``choices``) when ``stream_options.include_usage`` asks for it, then ``[DONE]``.
``Reply.cut_after`` drops the connection, ``Reply.error_after`` sends an in-stream
``{"error": ...}`` event (its ``code`` is ``stream_error_code``), ``Reply.malformed``
sends data that is not JSON, ``Reply.hang`` never answers.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

from aiohttp import web

from tests.doubles.base import LLMDouble, Reply, _content_text

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    429: "requests",
}
_ERROR_CODES = {429: "rate_limit_exceeded"}


class OpenAIDouble(LLMDouble):
    """Speaks OpenAI's wire format on a loopback port; see the module docstring."""

    def __init__(self, key: str | None = "test-key") -> None:
        super().__init__(key)
        self.context_limit: int | None = None  # tokens (4 characters each); None: no limit
        # The 400 message over context_limit; compatible servers word it differently.
        self.context_message = (
            "This model's maximum context length is {limit} tokens. However, your messages "
            "resulted in {tokens} tokens. Please reduce the length of the messages."
        )
        # The "code" of Reply.error_after's in-stream error event (OpenRouter: a status).
        self.stream_error_code: str | int | None = None
        self._ids = itertools.count(1)
        self._handlers: set[asyncio.Task[Any]] = set()
        self.app.router.add_post("/v1/chat/completions", self._chat)
        self.app.router.add_get("/v1/models", self._models)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    async def stop(self) -> None:
        """Stop, first ending handlers still hanging or stalling (no shutdown wait)."""
        for task in self._handlers:
            task.cancel()
        await super().stop()

    # -- routes --------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return self._unauthorized(request)
        names = sorted(self.known_models) if self.known_models is not None else ["double-model"]
        data = [
            {"id": name, "object": "model", "created": 1_700_000_000, "owned_by": "double"}
            for name in names
        ]
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            return await self._answer(request)
        finally:
            self._handlers.discard(task)

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if not self.authorized(request):
            return self._unauthorized(request)
        try:
            payload = await request.json()
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.")
        model = str(payload.get("model", ""))
        if not self.model_exists(model):
            return _error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        reply = self.reply_for(model)
        messages: list[dict[str, Any]] = payload.get("messages") or []
        if reply.hang:
            await self.hang_forever()
        await self.pause(reply.first_delay)
        if reply.status != 200:
            return _error(reply.status, reply.error, retry_after=reply.retry_after)
        tokens = sum(len(_content_text(m.get("content"))) for m in messages) // 4
        if self.context_limit is not None and tokens > self.context_limit:
            return _error(
                400,
                self.context_message.format(limit=self.context_limit, tokens=tokens),
                param="messages",
                code="context_length_exceeded",
            )
        pieces = self.pieces(reply, self.answer_text(reply, messages))
        finish = "stop"
        limit = payload.get("max_completion_tokens") or payload.get("max_tokens")
        if isinstance(limit, int) and len(pieces) > limit:
            pieces, finish = pieces[:limit], "length"
        completion_id = f"chatcmpl-double{next(self._ids)}"
        if payload.get("stream"):
            include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
            return await self._stream(
                request, reply, model, completion_id, pieces, finish, include_usage
            )
        if reply.malformed:
            return web.Response(text="<html>upstream proxy error</html>", content_type="text/html")
        return web.json_response(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": "".join(pieces),
                            "refusal": None,
                        },
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
                "usage": _usage(reply),
                "system_fingerprint": None,
            }
        )

    async def _stream(
        self,
        request: web.Request,
        reply: Reply,
        model: str,
        completion_id: str,
        pieces: list[str],
        finish: str,
        include_usage: bool,
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
            }
        )
        await response.prepare(request)
        created = int(time.time())

        async def send(data: Any) -> None:
            text = data if isinstance(data, str) else json.dumps(data)
            await response.write(f"data: {text}\n\n".encode())

        def chunk(choices: list[dict[str, Any]], usage: Any = None) -> dict[str, Any]:
            event: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": choices,
            }
            if include_usage:
                event["usage"] = usage
            return event

        def choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

        if reply.malformed:
            await send('{"id": "chatcmpl-broken", "choices": [{"delta": {"content": "hel')
            await send("[DONE]")
            return response
        await send(chunk([choice({"role": "assistant", "content": "", "refusal": None})]))
        for sent, piece in enumerate(pieces):
            if reply.cut_after is not None and sent >= reply.cut_after:
                await asyncio.sleep(0.05)  # let the pieces already written reach the client
                self.cut(request)
                return response
            if reply.error_after is not None and sent >= reply.error_after:
                error = _error_body(500, reply.error)
                error["code"] = self.stream_error_code
                await send({"error": error})
                return response
            if sent:
                await self.pause(reply.chunk_delay)
            await send(chunk([choice({"content": piece})]))
        await send(chunk([choice({}, finish)]))
        if include_usage and reply.usage is not None:
            await send(chunk([], _usage(reply)))
        await send("[DONE]")
        await response.write_eof()
        return response

    def _unauthorized(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization")
        if not header:
            return _error(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        return _error(
            401,
            "Incorrect API key provided. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )


def _error_body(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {
        "message": message,
        "type": _ERROR_TYPES.get(status, "server_error"),
        "param": param,
        "code": code if code is not None else _ERROR_CODES.get(status),
    }


def _error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    retry_after: float | None = None,
) -> web.Response:
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    return web.json_response(
        {"error": _error_body(status, message, param=param, code=code)},
        status=status,
        headers=headers,
    )


def _usage(reply: Reply) -> dict[str, int] | None:
    if reply.usage is None:
        return None
    prompt, completion = reply.usage
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
