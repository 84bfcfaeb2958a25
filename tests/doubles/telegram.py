"""A fake Telegram Bot API that the real aiogram bot runs against, and a test client.

``TelegramDouble`` serves ``/bot{token}/{method}`` on 127.0.0.1 like api.telegram.org:
the same JSON envelope, status codes and error descriptions, real long polling, chat
state (messages with their text, entities and inline keyboards, so edits and "message
is not modified" behave like Telegram), drafts, files, webhooks, and injectable
failures. Every call is recorded with a monotonic timestamp.

Bot API 10.1 rich messages (sendRichMessage, sendRichMessageDraft, editMessageText with
``rich_message``) are checked like Telegram checks them (tests/doubles/telegram_rich.py);
a rich message is stored with its flattened ``text`` and its ``rich_message``.
``TelegramDouble(rich=False)`` (or ``tg.rich = False``) plays an older server that
knows neither method (404) and ignores ``rich_message`` in editMessageText.

The test side reads like a person using the bot::

    async with TelegramDouble() as tg:
        ann = tg.user(first_name="Ann")
        await ann.send("/start")
        reply = await ann.next_message()
        await ann.click("GPT-5 mini")
        await tg.wait_for("answerCallbackQuery")
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from tests.doubles.base import DoubleServer
from tests.doubles.telegram_rich import (
    TEXT_AND_RICH,
    CheckedRich,
    RichError,
    check_rich_message,
    flatten,
    rich_message_result,
)
from tests.doubles.telegram_validation import (
    FormattedText,
    FormattingError,
    parse_text,
    utf16_len,
)

_T = TypeVar("_T")
_Scripted = TypeVar("_Scripted", "Failure", "Delay")

BOT_ID = 7000000001
DEFAULT_TOKEN = f"{BOT_ID}:AAF-test-token-for-the-double"

# Methods that put something in a chat (what flood control counts).
SENDING_METHODS = frozenset(
    {
        "sendMessage",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "sendMessageDraft",
        "sendRichMessage",
        "sendRichMessageDraft",
        "sendPhoto",
        "sendDocument",
        "sendVoice",
        "sendAudio",
        "sendVideo",
        "sendSticker",
    }
)
_JSON_FIELDS = (
    "entities",
    "caption_entities",
    "reply_markup",
    "reply_parameters",
    "link_preview_options",
    "allowed_updates",
    "commands",
    "scope",
    "media",
    "rich_message",
)
# Bot API 10.1: what an older Bot API server does not know (it answers 404).
RICH_METHODS = frozenset({"sendRichMessage", "sendRichMessageDraft"})
DRAFT_METHODS = ("sendMessageDraft", "sendRichMessageDraft")
_CHAT_ACTIONS = {
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
}
# Update types sent when allowed_updates is empty (Telegram's default).
_NOT_BY_DEFAULT = {"chat_member", "message_reaction", "message_reaction_count"}
_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")
_BOT_COMMAND = re.compile(r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>])")
_MENTION = re.compile(r"(?<![\w@])@[A-Za-z0-9_]{2,32}(?![\w@])")

QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)


class ApiError(Exception):
    """An error answer: ``{"ok": false, "error_code": ..., "description": ...}``."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(description: str) -> ApiError:
    return ApiError(400, description)


@dataclass
class Call:
    """One Bot API call the double answered."""

    time: float  # time.monotonic() when it arrived
    method: str  # canonical name, e.g. "sendMessage"
    params: dict[str, Any]  # decoded: JSON fields parsed, uploads as bytes
    chat_id: int | None
    status: int = 200
    result: Any = None
    description: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def text(self) -> str | None:
        """The text sent; for a rich message (or draft) without one, its flattened text."""
        value = self.params.get("text")
        if value is not None:
            return str(value)
        rich = self.params.get("rich_message")
        if isinstance(rich, dict):
            with contextlib.suppress(TypeError, ValueError, AttributeError, KeyError):
                return flatten(rich)
        return None


Params = dict[str, Any]
Predicate = Callable[[Params], bool]


@dataclass
class Failure:
    """A scripted error for the next calls of one method (those ``when`` matches)."""

    error_code: int
    description: str
    retry_after: int | None
    times: int | None  # None: until cleared
    when: Predicate | None = None


@dataclass
class Delay:
    """A scripted pause before the double answers the next calls of one method (those
    ``when`` matches)."""

    seconds: float
    times: int | None  # None: until cleared
    when: Predicate | None = None


TRUE_SIZE = -1  # StoredFile.stated_size: tell the file's real size
FILE_CHUNK = 64 * 1024  # downloads are served in pieces of this size


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    source_url: str | None = None
    file_name: str | None = None
    # the size getFile tells: TRUE_SIZE (the real one), another number (a lie) or None
    # (left out, as Telegram may)
    stated_size: int | None = TRUE_SIZE
    served: int = 0  # bytes the download route wrote out for it, over every download

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_path": self.file_path,
        }
        size = len(self.data) if self.stated_size == TRUE_SIZE else self.stated_size
        if size is not None:
            info["file_size"] = size
        return info


@dataclass
class ChatState:
    info: dict[str, Any]
    messages: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_message_id: int = 1
    draft: dict[str, Any] | None = None
    blocked: bool = False
    sent_by_bot: list[int] = field(default_factory=list)  # sendMessage results, in order
    snapshots: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return int(self.info["id"])

    @property
    def is_private(self) -> bool:
        return bool(self.info["type"] == "private")


class TelegramDouble(DoubleServer):
    """Telegram's Bot API for one bot, with users and groups driven by the test."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        username: str = "manymodels_bot",
        first_name: str = "Many Models",
        max_poll_wait: float = 1.0,
        rich: bool = True,
    ) -> None:
        super().__init__()
        self.token = token
        # Bot API 10.1 rich messages; False: an older server (sendRichMessage and
        # sendRichMessageDraft are unknown methods, editMessageText ignores rich_message)
        self.rich = rich
        self.bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else BOT_ID
        self.bot_user: dict[str, Any] = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": first_name,
            "username": username,
        }
        self.max_poll_wait = max_poll_wait
        self.api_calls: list[Call] = []
        self.chats: dict[int, ChatState] = {}
        self.files: dict[str, StoredFile] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.webhook: dict[str, Any] | None = None
        self.webhook_deliveries: list[tuple[int, int]] = []  # (update_id, status)
        self.allowed_updates: list[str] = []
        self._failures: dict[str, deque[Failure]] = {}
        self._delays: dict[str, deque[Delay]] = {}
        self._flood: tuple[int, float, int] | None = None
        self._flood_log: dict[int, deque[float]] = {}
        self._pending: list[dict[str, Any]] = []
        self._next_update_id = 100_001
        self._poll_generation = 0
        self._callbacks: dict[str, dict[str, Any]] = {}
        self._next_callback = 1
        self._next_file = 1
        self._changed = asyncio.Event()
        self._webhook_task: asyncio.Task[None] | None = None
        self._client: aiohttp.ClientSession | None = None
        self._cursors: dict[tuple[int, int], int] = {}
        self._next_user_id = 1001
        self._closing = False
        self._webhook_description = "Webhook is already deleted"
        self._handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            name.removeprefix("_api_"): getattr(self, name)
            for name in dir(self)
            if name.startswith("_api_")
        }
        self._by_lower = {name.lower(): name for name in self._handlers}
        self.app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        self.app.router.add_get("/file/bot{token}/{path:.+}", self._handle_file)

    # --- lifecycle ----------------------------------------------------------------

    async def stop(self) -> None:
        self._closing = True
        self._notify()  # long polls still waiting answer now
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
            self._webhook_task = None
        if self._client is not None:
            await self._client.close()
            self._client = None
        await super().stop()

    async def __aenter__(self) -> TelegramDouble:
        await self.start()
        return self

    @property
    def api_url(self) -> str:
        """What ``TELEGRAM_API_URL`` should be for a bot using this double."""
        return self.url

    @property
    def username(self) -> str:
        return str(self.bot_user["username"])

    # --- the test's handles -------------------------------------------------------

    def user(
        self,
        id: int | None = None,
        first_name: str = "Ann",
        *,
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
        is_premium: bool = False,
    ) -> FakeUser:
        """A person with a private chat with the bot."""
        if id is None:
            id = self._next_user_id
            self._next_user_id += 1
        names = {"first_name": first_name, "last_name": last_name, "username": username}
        names = {key: value for key, value in names.items() if value}
        info: dict[str, Any] = {"id": id, "is_bot": False, **names}
        if language_code:
            info["language_code"] = language_code
        if is_premium:
            info["is_premium"] = True
        self.chats.setdefault(id, ChatState({"id": id, "type": "private", **names}))
        return FakeUser(self, info)

    def group(
        self, id: int = -1001234567890, title: str = "Group chat", *, supergroup: bool = True
    ) -> FakeGroup:
        """A group (a supergroup by default) the bot is a member of."""
        info = {"id": id, "type": "supergroup" if supergroup else "group", "title": title}
        self.chats.setdefault(id, ChatState(info))
        return FakeGroup(self, info)

    def add_file(
        self, data: bytes, *, file_path: str | None = None, kind: str = "documents"
    ) -> str:
        """Register a file that getFile and downloads serve; returns its file_id."""
        number = self._next_file
        self._next_file += 1
        file_id = f"AgAC{number:06d}{hashlib.sha256(data).hexdigest()[:16]}"
        path = file_path or f"{kind}/file_{number}"
        self.files[file_id] = StoredFile(file_id, f"AQAD{number:06d}", path, data)
        return file_id

    def file_bytes(self, file_id: str) -> bytes:
        """The content of a file (one a test added, or one the bot uploaded)."""
        return self.files[file_id].data

    def fail_next(
        self,
        method: str,
        error_code: int = 429,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        times: int | None = 1,
        when: Predicate | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an error (None: always);
        with ``when``, only the calls whose params it accepts (the others go through).

        A 429 gets ``parameters.retry_after`` (default 1) and Telegram's wording.
        """
        if error_code == 429 and retry_after is None:
            retry_after = 1
        if description is None:
            description = _default_description(error_code, retry_after)
        failure = Failure(error_code, description, retry_after, times, when)
        self._failures.setdefault(self._canonical(method), deque()).append(failure)

    def delay_next(
        self,
        method: str,
        seconds: float,
        *,
        times: int | None = 1,
        when: Predicate | None = None,
    ) -> None:
        """Hold the next ``times`` calls of ``method`` (those ``when`` accepts) for
        ``seconds`` before answering them, as a slow Telegram would."""
        delay = Delay(seconds, times, when)
        self._delays.setdefault(self._canonical(method), deque()).append(delay)

    def clear_failures(self) -> None:
        self._failures.clear()
        self._delays.clear()

    def limit_rate(self, calls: int = 1, per_seconds: float = 1.0, retry_after: int = 1) -> None:
        """Flood control: more than ``calls`` sends per chat within ``per_seconds`` get 429."""
        self._flood = (calls, per_seconds, retry_after)

    def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue any update (an ``update_id`` is assigned) until getUpdates takes it."""
        update = {"update_id": self._next_update_id, **update}
        self._next_update_id += 1
        self._pending.append(update)
        self._notify()
        return update

    # --- what the bot did -----------------------------------------------------------

    def calls(  # type: ignore[override]  # API calls, not the base's raw requests
        self, method: str | None = None, chat_id: int | None = None, *, ok: bool | None = None
    ) -> list[Call]:
        """Recorded calls, optionally of one method, to one chat, successful or not."""
        name = self._canonical(method) if method else None
        return [
            call
            for call in self.api_calls
            if (name is None or call.method == name)
            and (chat_id is None or call.chat_id == chat_id)
            and (ok is None or call.ok == ok)
        ]

    def mark(self) -> int:
        """A position in the call log, for ``wait_for(..., since=mark)``."""
        return len(self.api_calls)

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 5.0,
        *,
        since: int = 0,
        ok: bool | None = None,
    ) -> Call:
        """The first call of ``method`` (from ``since``) matching ``predicate``."""
        name = self._canonical(method)

        def find() -> Call | None:
            for call in self.api_calls[since:]:
                if call.method != name or (ok is not None and call.ok != ok):
                    continue
                if predicate is None or predicate(call):
                    return call
            return None

        return await self._wait(find, timeout, f"a {name} call")

    async def wait_callback_answer(self, query_id: str, timeout: float = 5.0) -> Call:
        """The answerCallbackQuery call for one callback query."""
        return await self.wait_for(
            "answerCallbackQuery",
            lambda call: str(call.params.get("callback_query_id")) == query_id,
            timeout,
        )

    def messages(self, chat_id: int) -> list[dict[str, Any]]:
        """The chat as its members see it now: edits applied, deletions gone."""
        chat = self.chats[chat_id]
        return [_view(chat.messages[key]) for key in sorted(chat.messages)]

    def draft(self, chat_id: int) -> dict[str, Any] | None:
        """The draft shown in a private chat now (drafts end when the bot sends)."""
        draft = self.chats[chat_id].draft
        return None if draft is None else _copy(draft)

    def drafts(self, chat_id: int) -> list[Call]:
        """The drafts shown in a chat, text and rich, in order (``call.text`` is a rich
        draft's flattened text)."""
        return [
            call for call in self.calls(chat_id=chat_id, ok=True) if call.method in DRAFT_METHODS
        ]

    def rich_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """The chat's rich messages as shown now (edits applied): each has ``text`` (the
        flattened text) and ``rich_message`` (what Telegram returns: the blocks sent,
        list items labelled)."""
        return [message for message in self.messages(chat_id) if "rich_message" in message]

    async def next_bot_message(
        self,
        chat_id: int,
        timeout: float = 5.0,
        *,
        reader: int = 0,
    ) -> dict[str, Any]:
        """The next message the bot sent with sendMessage to a chat (per reader)."""
        chat = self.chats[chat_id]
        key = (reader, chat_id)
        cursor = self._cursors.get(key, 0)

        def find() -> dict[str, Any] | None:
            if len(chat.sent_by_bot) <= cursor:
                return None
            message_id = chat.sent_by_bot[cursor]
            current = chat.messages.get(message_id) or chat.snapshots[message_id]
            return _view(current)

        message = await self._wait(find, timeout, f"a new bot message in chat {chat_id}")
        self._cursors[key] = cursor + 1
        return message

    async def wait_message(
        self,
        chat_id: int,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float = 5.0,
    ) -> dict[str, Any]:
        """The first bot message in a chat whose current state (edits applied) matches.

        Works whichever way the bot streams: a draft then a message, or a message it edits.
        """

        def find() -> dict[str, Any] | None:
            for message in self.messages(chat_id):
                if message["from"]["id"] == self.bot_id and predicate(message):
                    return message
            return None

        return await self._wait(find, timeout, f"a matching bot message in chat {chat_id}")

    # --- helpers ----------------------------------------------------------------------

    def _canonical(self, method: str) -> str:
        return self._by_lower.get(method.lower(), method)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait(self, find: Callable[[], _T | None], timeout: float, what: str) -> _T:
        deadline = time.monotonic() + timeout
        while True:
            changed = self._changed
            found = find()
            if found is not None:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                recent = ", ".join(
                    f"{c.method}({c.status})"
                    for c in self.api_calls[-8:]
                    if c.method != "getUpdates"
                )
                raise TimeoutError(f"waited {timeout}s for {what}; recent calls: {recent}")
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                continue

    def _chat(self, params: dict[str, Any], *, sending: bool = False) -> ChatState:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise bad_request("Bad Request: chat_id is empty")
        chat: ChatState | None = None
        if isinstance(raw, str) and raw.startswith("@"):
            chat = next((c for c in self.chats.values() if c.info.get("username") == raw[1:]), None)
        else:
            try:
                chat = self.chats.get(int(raw))
            except (TypeError, ValueError):
                chat = None
        if chat is None:
            raise bad_request("Bad Request: chat not found")
        if sending and chat.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _new_message(self, chat: ChatState, sender: dict[str, Any]) -> dict[str, Any]:
        message_id = chat.next_message_id
        chat.next_message_id += 1
        return {
            "message_id": message_id,
            "from": dict(sender),
            "chat": dict(chat.info),
            "date": int(time.time()),
        }

    def _store(self, chat: ChatState, message: dict[str, Any]) -> dict[str, Any]:
        chat.messages[message["message_id"]] = message
        self._notify()
        return _copy(message)

    # --- HTTP -------------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        method = self._canonical(request.match_info["method"])
        try:
            params = await _read_params(request)
        except ApiError as error:
            params = {}
            self._log_call(arrived, method, params, error)
            return _error_response(error)
        if request.match_info["token"] != self.token:
            unauthorized = ApiError(401, "Unauthorized")
            self._log_call(arrived, method, params, unauthorized)
            return _error_response(unauthorized)
        try:
            result = await self._dispatch(method, params)
        except ApiError as error:
            self._log_call(arrived, method, params, error)
            return _error_response(error)
        self._log_call(arrived, method, params, None, result)
        body: dict[str, Any] = {"ok": True, "result": result}
        if method in ("setWebhook", "deleteWebhook") and isinstance(result, bool):
            body["description"] = self._webhook_description
        return web.json_response(body)

    async def _dispatch(self, method: str, params: dict[str, Any]) -> Any:
        delay = _take(self._delays.get(method), params)
        if delay is not None:
            await asyncio.sleep(delay.seconds)
        failure = _take(self._failures.get(method), params)
        if failure is not None:
            raise ApiError(failure.error_code, failure.description, failure.retry_after)
        if method in RICH_METHODS and not self.rich:
            raise ApiError(404, "Not Found")  # what the Bot API answers for unknown methods
        for name in _JSON_FIELDS:
            if isinstance(params.get(name), str) and params[name]:
                what = "reply keyboard markup" if name == "reply_markup" else name
                raise bad_request(f"Bad Request: can't parse {what} JSON object")
        if method in SENDING_METHODS:
            self._check_flood(params)
        handler = self._handlers.get(method)
        if handler is None:
            return True
        result = handler(params)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    def _log_call(
        self,
        arrived: float,
        method: str,
        params: dict[str, Any],
        error: ApiError | None,
        result: Any = None,
    ) -> None:
        chat_id: int | None
        try:
            chat_id = int(params["chat_id"])
        except (KeyError, TypeError, ValueError):
            chat_id = None
        call = Call(arrived, method, params, chat_id)
        if error is None:
            call.result = result
        else:
            call.status, call.description = error.code, error.description
        self.api_calls.append(call)
        self._notify()

    def _check_flood(self, params: dict[str, Any]) -> None:
        if self._flood is None:
            return
        calls, per_seconds, retry_after = self._flood
        try:
            chat_id = int(params.get("chat_id", 0))
        except (TypeError, ValueError):
            return
        now = time.monotonic()
        log = self._flood_log.setdefault(chat_id, deque())
        while log and now - log[0] >= per_seconds:
            log.popleft()
        if len(log) >= calls:
            raise ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)
        log.append(now)

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        stored = next((f for f in self.files.values() if f.file_path == path), None)
        if request.match_info["token"] != self.token or stored is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        # in pieces, counted as they go out: a test can tell how much a client read
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = len(stored.data)
        await response.prepare(request)
        data = memoryview(stored.data)
        try:
            for start in range(0, len(data), FILE_CHUNK):
                piece = data[start : start + FILE_CHUNK]
                await response.write(piece)
                stored.served += len(piece)
            await response.write_eof()
        except ConnectionError:  # the client went away (or stopped reading) midway
            pass
        return response

    # --- methods: bot and updates -------------------------------------------------------

    def _api_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _api_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _int(params, "offset", 0)
        limit = _int(params, "limit", 100)
        limit = 100 if limit <= 0 or limit > 100 else limit
        wait = min(max(_int(params, "timeout", 0), 0), self.max_poll_wait)
        if "allowed_updates" in params and isinstance(params["allowed_updates"], list):
            self.allowed_updates = [str(kind) for kind in params["allowed_updates"]]
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()  # an earlier poll still waiting ends with 409
        if offset > 0:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        elif offset < 0:
            self._pending = self._pending[offset:]
        deadline = time.monotonic() + wait
        while True:
            if generation != self._poll_generation:
                raise ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
            self._pending = [u for u in self._pending if self._allowed(u)]
            if self._pending or self._closing or time.monotonic() >= deadline:
                return [_copy(update) for update in self._pending[:limit]]
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), deadline - time.monotonic())

    def _allowed(self, update: dict[str, Any]) -> bool:
        kind = next(key for key in update if key != "update_id")
        if self.allowed_updates:
            return kind in self.allowed_updates
        return kind not in _NOT_BY_DEFAULT

    # --- methods: messages --------------------------------------------------------------

    def _api_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        text = _formatted(params, "text", "entities")
        chat = self._chat(params, sending=True)
        markup = _inline_markup(params.get("reply_markup"))
        message = self._new_message(chat, self.bot_user)
        self._reply_to(chat, params, message)
        message["text"] = text.text
        if text.entities:
            message["entities"] = text.entities
        if markup:
            message["reply_markup"] = markup
        chat.draft = None
        chat.sent_by_bot.append(message["message_id"])
        chat.snapshots[message["message_id"]] = _copy(message)
        return self._store(chat, message)

    def _reply_to(self, chat: ChatState, params: dict[str, Any], message: dict[str, Any]) -> None:
        reply = params.get("reply_parameters")
        target: Any = None
        allow_missing = False
        if isinstance(reply, dict):
            target = reply.get("message_id")
            allow_missing = bool(reply.get("allow_sending_without_reply"))
        elif params.get("reply_to_message_id") is not None:
            target = params["reply_to_message_id"]
            allow_missing = _bool(params.get("allow_sending_without_reply"))
        if target is None:
            return
        replied = chat.messages.get(int(target))
        if replied is None:
            if allow_missing:
                return
            raise bad_request("Bad Request: message to be replied not found")
        replied = _copy(replied)
        replied.pop("reply_to_message", None)
        message["reply_to_message"] = replied

    def _editable(self, params: dict[str, Any]) -> tuple[ChatState, dict[str, Any]]:
        if params.get("inline_message_id"):
            raise bad_request("Bad Request: MESSAGE_ID_INVALID")
        chat = self._chat(params)
        if params.get("message_id") in (None, ""):
            raise bad_request("Bad Request: message identifier is not specified")
        message = chat.messages.get(_int(params, "message_id", 0))
        if message is None:
            raise bad_request("Bad Request: message to edit not found")
        if message["from"]["id"] != self.bot_id:
            raise bad_request("Bad Request: message can't be edited")
        return chat, message

    def _api_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.rich and params.get("rich_message") not in (None, ""):
            if params.get("text") not in (None, ""):
                raise bad_request(TEXT_AND_RICH)
            return self._edit_rich(params)
        text = _formatted(params, "text", "entities")
        chat, message = self._editable(params)
        if "text" not in message:
            raise bad_request("Bad Request: there is no text in the message to edit")
        markup = _inline_markup(params.get("reply_markup"))
        unchanged = (
            message["text"] == text.text
            and "rich_message" not in message
            and message.get("entities", []) == text.entities
            and message.get("reply_markup") == markup
        )
        if unchanged:
            raise bad_request(NOT_MODIFIED)
        message["text"] = text.text
        message.pop("rich_message", None)
        _set_or_drop(message, "entities", text.entities)
        _set_or_drop(message, "reply_markup", markup)
        message["edit_date"] = int(time.time())
        return self._store(chat, message)

    def _edit_rich(self, params: dict[str, Any]) -> dict[str, Any]:
        """editMessageText with ``rich_message``: the message's content is replaced."""
        rich = _rich(params)
        chat, message = self._editable(params)
        if "text" not in message:
            raise bad_request("Bad Request: there is no text in the message to edit")
        markup = _inline_markup(params.get("reply_markup"))
        shown = rich_message_result(rich.payload)
        if message.get("rich_message") == shown and message.get("reply_markup") == markup:
            raise bad_request(NOT_MODIFIED)
        message["text"] = rich.text
        message["rich_message"] = shown
        message.pop("entities", None)
        _set_or_drop(message, "reply_markup", markup)
        message["edit_date"] = int(time.time())
        return self._store(chat, message)

    def _api_editMessageCaption(self, params: dict[str, Any]) -> dict[str, Any]:
        caption = _formatted(params, "caption", "caption_entities", caption=True)
        chat, message = self._editable(params)
        markup = _inline_markup(params.get("reply_markup"))
        unchanged = (
            message.get("caption", "") == caption.text
            and message.get("caption_entities", []) == caption.entities
            and message.get("reply_markup") == markup
        )
        if unchanged:
            raise bad_request(NOT_MODIFIED)
        _set_or_drop(message, "caption", caption.text)
        _set_or_drop(message, "caption_entities", caption.entities)
        _set_or_drop(message, "reply_markup", markup)
        message["edit_date"] = int(time.time())
        return self._store(chat, message)

    def _api_editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        chat, message = self._editable(params)
        markup = _inline_markup(params.get("reply_markup"))
        if message.get("reply_markup") == markup:
            raise bad_request(NOT_MODIFIED)
        _set_or_drop(message, "reply_markup", markup)
        message["edit_date"] = int(time.time())
        return self._store(chat, message)

    def _api_deleteMessage(self, params: dict[str, Any]) -> bool:
        chat = self._chat(params)
        if chat.messages.pop(_int(params, "message_id", 0), None) is None:
            raise bad_request("Bad Request: message to delete not found")
        self._notify()
        return True

    def _api_deleteMessages(self, params: dict[str, Any]) -> bool:
        chat = self._chat(params)
        ids = params.get("message_ids")
        if isinstance(ids, str):
            ids = json.loads(ids)
        for message_id in ids or []:
            chat.messages.pop(int(message_id), None)
        self._notify()
        return True

    def _api_sendMessageDraft(self, params: dict[str, Any]) -> bool:
        text = _formatted(params, "text", "entities", allow_empty=True)
        chat = self._chat(params, sending=True)
        if not chat.is_private:
            raise bad_request("Bad Request: TEXTDRAFT_PEER_INVALID")
        draft_id = _int(params, "draft_id", 0)
        if draft_id == 0:
            raise bad_request("Bad Request: RANDOM_ID_INVALID")
        chat.draft = {"draft_id": draft_id, "text": text.text, "entities": text.entities}
        if _bool(params.get("can_stop")):
            chat.draft["can_stop"] = True
        self._notify()
        return True

    def _api_sendRichMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        rich = _rich(params)
        chat = self._chat(params, sending=True)
        markup = _inline_markup(params.get("reply_markup"))
        message = self._new_message(chat, self.bot_user)
        self._reply_to(chat, params, message)
        message["text"] = rich.text
        message["rich_message"] = rich_message_result(rich.payload)
        if markup:
            message["reply_markup"] = markup
        chat.draft = None
        chat.sent_by_bot.append(message["message_id"])
        chat.snapshots[message["message_id"]] = _copy(message)
        return self._store(chat, message)

    def _api_sendRichMessageDraft(self, params: dict[str, Any]) -> bool:
        rich = _rich(params, draft=True)
        chat = self._chat(params, sending=True)
        if not chat.is_private:
            raise bad_request("Bad Request: TEXTDRAFT_PEER_INVALID")
        draft_id = _int(params, "draft_id", 0)
        if draft_id == 0:
            raise bad_request("Bad Request: RANDOM_ID_INVALID")
        chat.draft = {
            "draft_id": draft_id,
            "text": rich.text,
            "entities": [],
            "rich_message": rich.payload,
        }
        for flag in ("can_stop", "keep_on_stop"):
            if _bool(params.get(flag)):
                chat.draft[flag] = True
        self._notify()
        return True

    def _api_sendChatAction(self, params: dict[str, Any]) -> bool:
        if str(params.get("action", "")).lower() not in _CHAT_ACTIONS:
            raise bad_request("Bad Request: wrong parameter action in request")
        self._chat(params, sending=True)
        return True

    def _api_getChat(self, params: dict[str, Any]) -> dict[str, Any]:
        gifts = ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription")
        return {
            **self._chat(params).info,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {name: False for name in (*gifts, "gifts_from_channels")},
        }

    def _api_close(self, params: dict[str, Any]) -> bool:
        return True

    def _api_logOut(self, params: dict[str, Any]) -> bool:
        return True

    # --- methods: media and files ---------------------------------------------------------

    def _api_sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        stored = self._input_file(params, "photo", "photos", ".jpg")
        media = [
            {**_file_ids(stored), "width": 90, "height": 90, "file_size": len(stored.data)},
            {**_file_ids(stored), "width": 1280, "height": 1280, "file_size": len(stored.data)},
        ]
        return self._send_media(params, "photo", media)

    def _api_sendDocument(self, params: dict[str, Any]) -> dict[str, Any]:
        stored = self._input_file(params, "document", "documents", "")
        name = stored.file_name or stored.file_path.split("/")[-1]
        media = {**_file_ids(stored), "file_name": name, "file_size": len(stored.data)}
        return self._send_media(params, "document", media)

    def _send_media(self, params: dict[str, Any], kind: str, media: Any) -> dict[str, Any]:
        caption = _formatted(params, "caption", "caption_entities", caption=True)
        chat = self._chat(params, sending=True)
        markup = _inline_markup(params.get("reply_markup"))
        message = self._new_message(chat, self.bot_user)
        self._reply_to(chat, params, message)
        message[kind] = media
        if caption.text:
            message["caption"] = caption.text
        if caption.entities:
            message["caption_entities"] = caption.entities
        if markup:
            message["reply_markup"] = markup
        chat.draft = None
        return self._store(chat, message)

    def _input_file(self, params: dict[str, Any], name: str, kind: str, suffix: str) -> StoredFile:
        field_name = name
        value = params.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            field_name = value[len("attach://") :]
            value = params.get(field_name)
        if isinstance(value, bytes):
            if not value:
                raise bad_request("Bad Request: file must be non-empty")
            stored = self.files[self.add_file(value, kind=kind)]
            stored.file_path += suffix
            stored.file_name = params.get("_filenames", {}).get(field_name)
            return stored
        if isinstance(value, str) and value:
            if value in self.files:
                return self.files[value]
            if urlsplit(value).scheme in ("http", "https"):
                file_id = self.add_file(b"", kind=kind)
                self.files[file_id].source_url = value
                return self.files[file_id]
            raise bad_request(
                "Bad Request: wrong remote file identifier specified: Wrong string length"
            )
        raise bad_request(f"Bad Request: there is no {name} in the request")

    def _api_getFile(self, params: dict[str, Any]) -> dict[str, Any]:
        stored = self.files.get(str(params.get("file_id", "")))
        if stored is None:
            raise bad_request("Bad Request: invalid file_id")
        return stored.info()

    # --- methods: callbacks, commands, webhooks ---------------------------------------

    def _api_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        query = self._callbacks.get(str(params.get("callback_query_id", "")))
        if query is None or query["answered"]:
            raise bad_request(QUERY_TOO_OLD)
        query["answered"] = True
        query["answer"] = {k: v for k, v in params.items() if k != "callback_query_id"}
        return True

    def _api_setMyCommands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise bad_request("Bad Request: can't parse commands JSON object")
        for item in commands:
            if not isinstance(item, dict) or not _COMMAND.match(str(item.get("command", ""))):
                raise bad_request("Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(item.get("description", "")).strip()) <= 256:
                raise bad_request("Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        self.commands[_commands_key(params)] = [
            {"command": str(c["command"]), "description": str(c["description"])} for c in commands
        ]
        return True

    def _api_getMyCommands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        return [dict(c) for c in self.commands.get(_commands_key(params), [])]

    def _api_deleteMyCommands(self, params: dict[str, Any]) -> bool:
        self.commands.pop(_commands_key(params), None)
        return True

    def _api_setWebhook(self, params: dict[str, Any]) -> bool:
        url = str(params.get("url") or "")
        if not url:
            return self._api_deleteWebhook(params)
        parts = urlsplit(url)
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
            raise bad_request("Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        if _bool(params.get("drop_pending_updates")):
            self._pending.clear()
        if isinstance(params.get("allowed_updates"), list):
            self.allowed_updates = [str(kind) for kind in params["allowed_updates"]]
        self._webhook_description = "Webhook was set"
        self.webhook = {"url": url, "secret_token": params.get("secret_token")}
        self._poll_generation += 1
        if self._webhook_task is None:
            self._webhook_task = asyncio.get_running_loop().create_task(self._deliver_webhooks())
        self._notify()
        return True

    def _api_deleteWebhook(self, params: dict[str, Any]) -> bool:
        self._webhook_description = (
            "Webhook was deleted" if self.webhook is not None else "Webhook is already deleted"
        )
        self.webhook = None
        if _bool(params.get("drop_pending_updates")):
            self._pending.clear()
        self._notify()
        return True

    def _api_getWebhookInfo(self, params: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self.allowed_updates:
            info["allowed_updates"] = list(self.allowed_updates)
        return info

    async def _deliver_webhooks(self) -> None:
        """Push pending updates to the webhook one by one, as Telegram does."""
        while True:
            webhook = self.webhook
            if webhook is None or not self._pending:
                changed = self._changed
                await changed.wait()
                continue
            update = self._pending[0]
            if not self._allowed(update):
                self._pending.pop(0)
                continue
            status = await self._post_update(webhook, update)
            self.webhook_deliveries.append((update["update_id"], status))
            if 200 <= status < 300:
                if self._pending and self._pending[0] is update:
                    self._pending.pop(0)
                self._notify()
            else:
                await asyncio.sleep(0.1)

    async def _post_update(self, webhook: dict[str, Any], update: dict[str, Any]) -> int:
        if self._client is None:
            self._client = aiohttp.ClientSession()
        headers = {}
        if webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = str(webhook["secret_token"])
        try:
            async with self._client.post(
                webhook["url"], json=update, headers=headers, timeout=aiohttp.ClientTimeout(10)
            ) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return 0
        await self._answer_in_webhook_reply(body)
        return status

    async def _answer_in_webhook_reply(self, body: bytes) -> None:
        """Run a method the bot put in its webhook reply, as Telegram does."""
        try:
            reply = json.loads(body) if body else None
        except ValueError:
            return
        if not isinstance(reply, dict) or "method" not in reply:
            return
        params = {k: v for k, v in reply.items() if k != "method"}
        method = self._canonical(str(reply["method"]))
        arrived = time.monotonic()
        try:
            result = await self._dispatch(method, params)
        except ApiError as error:
            self._log_call(arrived, method, params, error)
            return
        self._log_call(arrived, method, params, None, result)

    # --- what people do -----------------------------------------------------------------

    def deliver_message(
        self, sender: dict[str, Any], chat_id: int, content: dict[str, Any], reply_to: Any = None
    ) -> dict[str, Any]:
        """A person's message appears in the chat and reaches the bot as an update."""
        chat = self.chats[chat_id]
        message = self._new_message(chat, sender)
        if reply_to is not None:
            replied_id = reply_to["message_id"] if isinstance(reply_to, dict) else int(reply_to)
            replied = _copy(chat.messages[replied_id])
            replied.pop("reply_to_message", None)
            message["reply_to_message"] = replied
        message.update(content)
        self._store(chat, message)
        self.push_update({"message": _copy(message)})
        return _copy(message)

    def edit_message(self, chat_id: int, message_id: int, text: str) -> dict[str, Any]:
        chat = self.chats[chat_id]
        message = chat.messages[message_id]
        message["text"] = text
        _set_or_drop(message, "entities", detect_entities(text))
        message["edit_date"] = int(time.time())
        self._store(chat, message)
        self.push_update({"edited_message": _copy(message)})
        return _copy(message)

    def forge_stop_generation(self, chat_id: int, draft_id: int) -> dict[str, Any]:
        """A stopped_message_generation update for any chat and draft id, whether or not
        that chat shows such a draft (what a hostile client could claim)."""
        stopped = {"chat": dict(self.chats[chat_id].info), "draft_id": draft_id}
        self.push_update({"stopped_message_generation": stopped})
        return stopped

    def stop_generation(self, chat_id: int) -> dict[str, Any]:
        """The user presses Stop on the current draft: a stopped_message_generation update."""
        chat = self.chats[chat_id]
        if chat.draft is None or not chat.draft.get("can_stop"):
            raise LookupError(f"no draft with a Stop button in chat {chat_id}")
        stopped = {"chat": dict(chat.info), "draft_id": chat.draft["draft_id"]}
        self.push_update({"stopped_message_generation": stopped})
        return stopped

    def press_button(
        self, sender: dict[str, Any], chat_id: int, label: str, message_id: int | None = None
    ) -> dict[str, Any]:
        """Press the inline button with this label on the latest bot message having it
        (or on message ``message_id``)."""
        chat = self.chats[chat_id]
        labels: list[str] = []
        for number in sorted(chat.messages, reverse=True):
            if message_id is not None and number != message_id:
                continue
            message = chat.messages[number]
            for button in _buttons(message):
                labels.append(button["text"])
                if button["text"] != label:
                    continue
                if "callback_data" not in button:
                    raise ValueError(f"button {label!r} has no callback_data: {button}")
                return self._push_callback(sender, chat_id, message, button["callback_data"])
        raise LookupError(f"no button {label!r} in chat {chat_id}; buttons: {labels}")

    def forge_callback(
        self, sender: dict[str, Any], chat_id: int, data: str, message_id: int | None = None
    ) -> dict[str, Any]:
        """A callback query with any ``data`` (no button need carry it), as if pressed
        under the bot's message ``message_id`` (default: its latest) in a chat."""
        chat = self.chats[chat_id]
        ids = [
            number
            for number, message in chat.messages.items()
            if message["from"]["id"] == self.bot_id and message_id in (None, number)
        ]
        if not ids:
            raise LookupError(f"no bot message {message_id or ''} in chat {chat_id}")
        return self._push_callback(sender, chat_id, chat.messages[max(ids)], data)

    def _push_callback(
        self, sender: dict[str, Any], chat_id: int, message: dict[str, Any], data: str
    ) -> dict[str, Any]:
        query_id = f"{self.bot_id}{self._next_callback:08d}"
        self._next_callback += 1
        query = {
            "id": query_id,
            "from": dict(sender),
            "message": _copy(message),
            "chat_instance": str(abs(hash((self.bot_id, chat_id)))),
            "data": data,
        }
        self._callbacks[query_id] = {"answered": False, "answer": None}
        self.push_update({"callback_query": query})
        return query

    # --- payments in Telegram Stars (sendInvoice, pre_checkout_query, successful_payment) --

    @property
    def stars(self) -> StarsLedger:
        """What the payment side of the double saw: invoices, answers, transactions."""
        ledger: StarsLedger | None = self.__dict__.get("_stars")
        if ledger is None:
            ledger = self.__dict__["_stars"] = StarsLedger()
        return ledger

    def _api_sendInvoice(self, params: dict[str, Any]) -> dict[str, Any]:
        prices = _json_list(params.get("prices"))
        if params.get("currency") == "XTR" and (len(prices) != 1 or params.get("provider_token")):
            raise bad_request("Bad Request: XTR invoices take one price and no provider_token")
        chat = self._chat(params, sending=True)
        message = self._new_message(chat, self.bot_user)
        message["invoice"] = {
            "title": params.get("title"),
            "description": params.get("description"),
            "start_parameter": "",
            "currency": params.get("currency"),
            "total_amount": sum(int(p["amount"]) for p in prices),
        }
        # stored in the chat, but not among the bot's messages ``next_message`` reads
        self.stars.invoices[(chat.id, message["message_id"])] = dict(params, prices=prices)
        return self._store(chat, message)

    def _api_createInvoiceLink(self, params: dict[str, Any]) -> str:
        prices = _json_list(params.get("prices"))
        if params.get("currency") == "XTR" and len(prices) != 1:
            raise bad_request("Bad Request: XTR invoices take one price")
        link = f"https://t.me/$invoice{len(self.stars.links) + 1}"
        self.stars.links[link] = dict(params, prices=prices)
        return link

    def _api_answerPreCheckoutQuery(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("pre_checkout_query_id"))
        if query_id not in self.stars.queries:
            raise bad_request("Bad Request: query is too old and response timeout expired")
        self.stars.answers[query_id] = {
            "ok": _bool(params.get("ok")),
            "error_message": params.get("error_message"),
            "time": time.monotonic(),
        }
        return True

    def _api_refundStarPayment(self, params: dict[str, Any]) -> bool:
        charge = str(params.get("telegram_payment_charge_id"))
        found = self.stars.transactions.get(charge)
        if found is None or found["source"]["user"]["id"] != int(params.get("user_id", 0)):
            raise bad_request("Bad Request: CHARGE_NOT_FOUND")
        if charge in self.stars.refunded:
            raise bad_request("Bad Request: CHARGE_ALREADY_REFUNDED")
        self.stars.refunded.add(charge)
        return True

    def _api_getStarTransactions(self, params: dict[str, Any]) -> dict[str, Any]:
        offset, limit = _int(params, "offset", 0), _int(params, "limit", 100)
        newest = list(reversed(self.stars.transactions.values()))
        return {"transactions": [_copy(t) for t in newest[offset : offset + limit]]}

    def pre_checkout(
        self,
        sender: dict[str, Any],
        payload: str,
        total_amount: int,
        currency: str = "XTR",
    ) -> str:
        """The user confirms a payment: a pre_checkout_query update; returns its id."""
        query_id = f"pcq{len(self.stars.queries) + 1}"
        query = {
            "id": query_id,
            "from": dict(sender),
            "currency": currency,
            "total_amount": total_amount,
            "invoice_payload": payload,
        }
        self.stars.queries[query_id] = {**query, "time": time.monotonic()}
        self.push_update({"pre_checkout_query": query})
        return query_id

    async def wait_pre_checkout_answer(self, query_id: str, timeout: float = 5.0) -> dict[str, Any]:
        return await self._wait(
            lambda: self.stars.answers.get(query_id), timeout, f"the answer to {query_id}"
        )

    def charge(
        self,
        sender: dict[str, Any],
        payload: str,
        total_amount: int,
        *,
        charge_id: str | None = None,
        deliver: bool = True,
        subscription_expiration_date: int | None = None,
        is_recurring: bool = False,
    ) -> str:
        """Telegram takes the Stars (a transaction ``getStarTransactions`` lists) and,
        with ``deliver``, sends the bot the successful_payment message; returns the
        charge id. ``deliver=False``: the bot died before it got (or stored) it."""
        charge_id = charge_id or f"stxcharge{len(self.stars.transactions) + 1:06d}"
        self.stars.transactions[charge_id] = {
            "id": charge_id,
            "amount": total_amount,
            "date": int(time.time()),
            "source": {
                "type": "user",
                "transaction_type": "invoice_payment",
                "user": dict(sender),
                "invoice_payload": payload,
            },
        }
        if deliver:
            self.deliver_payment(
                sender, payload, total_amount, charge_id, subscription_expiration_date, is_recurring
            )
        return charge_id

    def deliver_payment(
        self,
        sender: dict[str, Any],
        payload: str,
        total_amount: int,
        charge_id: str,
        subscription_expiration_date: int | None = None,
        is_recurring: bool = False,
    ) -> dict[str, Any]:
        """The successful_payment message (again, for a redelivery)."""
        payment: dict[str, Any] = {
            "currency": "XTR",
            "total_amount": total_amount,
            "invoice_payload": payload,
            "telegram_payment_charge_id": charge_id,
            "provider_payment_charge_id": "",
        }
        if subscription_expiration_date is not None:
            payment["subscription_expiration_date"] = subscription_expiration_date
        if is_recurring:
            payment["is_recurring"] = True
        return self.deliver_message(sender, int(sender["id"]), {"successful_payment": payment})

    def subscription_update(self, sender: dict[str, Any], payload: str, state: str) -> None:
        """A ``subscription`` update: the user's plan was canceled, is active or failed."""
        self.push_update(
            {"subscription": {"user": dict(sender), "invoice_payload": payload, "state": state}}
        )


@dataclass
class StarsLedger:
    invoices: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    queries: dict[str, dict[str, Any]] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunded: set[str] = field(default_factory=set)

    def last_invoice_payload(self) -> tuple[str, int]:
        params = list(self.invoices.values())[-1]
        return str(params["payload"]), int(params["prices"][0]["amount"])

    def last_link_payload(self) -> tuple[str, int]:
        params = list(self.links.values())[-1]
        return str(params["payload"]), int(params["prices"][0]["amount"])


def _json_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    return value if isinstance(value, list) else []


@dataclass
class FakeGroup:
    """A group chat; users send to it with ``user.send(text, chat=group)``."""

    tg: TelegramDouble
    info: dict[str, Any]

    @property
    def id(self) -> int:
        return int(self.info["id"])

    def messages(self) -> list[dict[str, Any]]:
        return self.tg.messages(self.id)


ChatRef = FakeGroup | int | None


class FakeUser:
    """A person talking to the bot, in private (default) or in a group."""

    def __init__(self, tg: TelegramDouble, info: dict[str, Any]) -> None:
        self.tg = tg
        self.info = info

    @property
    def id(self) -> int:
        return int(self.info["id"])

    def _chat_id(self, chat: ChatRef) -> int:
        if chat is None:
            return self.id
        return chat.id if isinstance(chat, FakeGroup) else int(chat)

    async def send(
        self,
        text: str,
        *,
        chat: ChatRef = None,
        reply_to: dict[str, Any] | int | None = None,
        entities: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Send a text message; commands and @mentions get their entities."""
        content: dict[str, Any] = {"text": text}
        found = entities if entities is not None else detect_entities(text)
        if found:
            content["entities"] = found
        return self.tg.deliver_message(self.info, self._chat_id(chat), content, reply_to)

    async def send_sticker(self, emoji: str = "👍", *, chat: ChatRef = None) -> dict[str, Any]:
        file_id = self.tg.add_file(b"RIFF-sticker", kind="stickers")
        sticker = {
            **_file_ids(self.tg.files[file_id]),
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
        }
        return self.tg.deliver_message(self.info, self._chat_id(chat), {"sticker": sticker})

    async def send_voice(
        self, data: bytes = b"OggS-voice", duration: int = 2, *, chat: ChatRef = None
    ) -> dict[str, Any]:
        stored = self.tg.files[self.tg.add_file(data, kind="voice")]
        stored.file_path += ".oga"
        voice = {
            **_file_ids(stored),
            "duration": duration,
            "mime_type": "audio/ogg",
            "file_size": len(data),
        }
        return self.tg.deliver_message(self.info, self._chat_id(chat), {"voice": voice})

    async def send_photo(
        self,
        data: bytes = b"\xff\xd8\xff-photo",
        caption: str | None = None,
        *,
        chat: ChatRef = None,
    ) -> dict[str, Any]:
        stored = self.tg.files[self.tg.add_file(data, kind="photos")]
        stored.file_path += ".jpg"
        photo = [
            {**_file_ids(stored), "width": 90, "height": 90, "file_size": len(data)},
            {**_file_ids(stored), "width": 800, "height": 800, "file_size": len(data)},
        ]
        content: dict[str, Any] = {"photo": photo}
        if caption:
            content["caption"] = caption
        return self.tg.deliver_message(self.info, self._chat_id(chat), content)

    async def send_document(
        self,
        data: bytes = b"%PDF-1.4",
        file_name: str = "notes.pdf",
        mime_type: str = "application/pdf",
        caption: str | None = None,
        *,
        chat: ChatRef = None,
    ) -> dict[str, Any]:
        stored = self.tg.files[self.tg.add_file(data, kind="documents")]
        document = {
            **_file_ids(stored),
            "file_name": file_name,
            "mime_type": mime_type,
            "file_size": len(data),
        }
        content: dict[str, Any] = {"document": document}
        if caption:
            content["caption"] = caption
        return self.tg.deliver_message(self.info, self._chat_id(chat), content)

    async def send_location(
        self, latitude: float = 52.52, longitude: float = 13.405, *, chat: ChatRef = None
    ) -> dict[str, Any]:
        location = {"latitude": latitude, "longitude": longitude}
        return self.tg.deliver_message(self.info, self._chat_id(chat), {"location": location})

    async def edit(self, message: dict[str, Any], text: str) -> dict[str, Any]:
        """Edit one of this user's messages; the bot gets an ``edited_message``."""
        return self.tg.edit_message(message["chat"]["id"], message["message_id"], text)

    async def click(
        self, label: str, *, chat: ChatRef = None, message_id: int | None = None
    ) -> dict[str, Any]:
        """Press an inline button by its visible label (on the latest message that has
        it, or on ``message_id``); returns the callback query."""
        return self.tg.press_button(self.info, self._chat_id(chat), label, message_id)

    async def press_data(
        self, data: str, *, chat: ChatRef = None, message_id: int | None = None
    ) -> dict[str, Any]:
        """A forged press: a callback query with ``data`` under the bot's latest message
        here (or ``message_id``), whatever its buttons say; returns the query."""
        return self.tg.forge_callback(self.info, self._chat_id(chat), data, message_id)

    async def next_message(self, timeout: float = 5.0, *, chat: ChatRef = None) -> dict[str, Any]:
        """The next final message (sendMessage) the bot sent to this chat."""
        return await self.tg.next_bot_message(self._chat_id(chat), timeout, reader=self.id)

    async def wait_message(
        self,
        predicate: Callable[[dict[str, Any]], bool] | None = None,
        *,
        contains: str | None = None,
        timeout: float = 5.0,
        chat: ChatRef = None,
    ) -> dict[str, Any]:
        """Wait until a bot message here (as it is now, edits applied) matches."""

        def matches(message: dict[str, Any]) -> bool:
            if contains is not None and contains not in message.get("text", ""):
                return False
            return predicate is None or predicate(message)

        return await self.tg.wait_message(self._chat_id(chat), matches, timeout)

    def messages(self, *, chat: ChatRef = None) -> list[dict[str, Any]]:
        """The chat as this user sees it: both sides, edits applied."""
        return self.tg.messages(self._chat_id(chat))

    def bot_messages(self, *, chat: ChatRef = None) -> list[dict[str, Any]]:
        return [m for m in self.messages(chat=chat) if m["from"]["id"] == self.tg.bot_id]

    def rich_messages(self, *, chat: ChatRef = None) -> list[dict[str, Any]]:
        """The rich messages in this chat (edits applied)."""
        return self.tg.rich_messages(self._chat_id(chat))

    def draft(self) -> dict[str, Any] | None:
        """The bot's draft shown in this user's private chat now."""
        return self.tg.draft(self.id)

    async def press_stop(self) -> dict[str, Any]:
        """Press the Stop button of the bot's draft (one sent with ``can_stop``)."""
        return self.tg.stop_generation(self.id)

    def block(self, blocked: bool = True) -> None:
        """Block the bot: its sends to this user fail with 403."""
        self.tg.chats[self.id].blocked = blocked


# --- module helpers ------------------------------------------------------------------


def detect_entities(text: str) -> list[dict[str, Any]]:
    """The entities Telegram finds in a person's text: bot commands and @mentions."""
    found: list[dict[str, Any]] = []
    for kind, pattern in (("bot_command", _BOT_COMMAND), ("mention", _MENTION)):
        for match in pattern.finditer(text):
            found.append(
                {
                    "type": kind,
                    "offset": utf16_len(text[: match.start()]),
                    "length": utf16_len(match.group()),
                }
            )
    return sorted(found, key=lambda e: e["offset"])


def button_labels(message: dict[str, Any]) -> list[list[str]]:
    """The inline keyboard of a message as rows of labels."""
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [[button["text"] for button in row] for row in rows]


def _buttons(message: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for row in (message.get("reply_markup") or {}).get("inline_keyboard", []):
        yield from row


def _copy(value: _T) -> _T:
    """A deep copy, so callers never hold the double's own state."""
    copied: _T = json.loads(json.dumps(value))
    return copied


def _view(message: dict[str, Any]) -> dict[str, Any]:
    """A message for a test to read: a copy, with ``entities`` even when there are none."""
    view = _copy(message)
    for text, entities in (("text", "entities"), ("caption", "caption_entities")):
        if text in view:
            view.setdefault(entities, [])
    return view


def _set_or_drop(target: dict[str, Any], key: str, value: Any) -> None:
    if value:
        target[key] = value
    else:
        target.pop(key, None)


def _take(queue: deque[_Scripted] | None, params: Params) -> _Scripted | None:
    """The first scripted failure or delay in ``queue`` that applies to a call with
    ``params``, counted as used (gone once used up); None if none applies."""
    if not queue:
        return None
    for index, scripted in enumerate(queue):
        if scripted.when is None or scripted.when(params):
            if scripted.times is not None:
                scripted.times -= 1
                if scripted.times <= 0:
                    del queue[index]
            return scripted
    return None


def _file_ids(stored: StoredFile) -> dict[str, str]:
    return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}


def _default_description(error_code: int, retry_after: int | None) -> str:
    if error_code == 429:
        return f"Too Many Requests: retry after {retry_after}"
    return {
        400: "Bad Request: injected failure",
        401: "Unauthorized",
        403: "Forbidden: bot was blocked by the user",
        404: "Not Found",
        409: "Conflict: terminated by other getUpdates request; "
        "make sure that only one bot instance is running",
        502: "Bad Gateway",
    }.get(error_code, "Internal Server Error")


def _error_response(error: ApiError) -> web.Response:
    return web.json_response(error.body(), status=error.code)


def _int(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise bad_request(f"Bad Request: invalid {name} specified") from None


def _bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("true", "1")
    return bool(value)


def _commands_key(params: dict[str, Any]) -> str:
    scope = params.get("scope") or {"type": "default"}
    return json.dumps([scope, params.get("language_code") or ""], sort_keys=True)


def _formatted(
    params: dict[str, Any],
    text_field: str,
    entities_field: str,
    *,
    caption: bool = False,
    allow_empty: bool = False,
) -> FormattedText:
    """The text of a request, checked and parsed like Telegram (raises ApiError)."""
    entities = params.get(entities_field)
    if entities is not None and not isinstance(entities, list):
        raise bad_request(f"Bad Request: can't parse {entities_field} JSON object")
    try:
        return parse_text(
            params.get(text_field),
            entities,
            params.get("parse_mode"),
            caption=caption,
            allow_empty=allow_empty,
        )
    except FormattingError as error:
        raise bad_request(error.description) from None


def _rich(params: dict[str, Any], *, draft: bool = False) -> CheckedRich:
    """The ``rich_message`` of a request, checked like Telegram (raises ApiError)."""
    try:
        return check_rich_message(params.get("rich_message"), draft=draft)
    except RichError as error:
        raise bad_request(error.description) from None


def _inline_markup(markup: Any) -> dict[str, Any] | None:
    """The inline keyboard a message will show (None for none), validated."""
    if markup is None or markup == "":
        return None
    if not isinstance(markup, dict):
        raise bad_request("Bad Request: can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return None
    if not isinstance(rows, list):
        raise bad_request("Bad Request: can't parse inline keyboard markup JSON object")
    clean_rows = []
    for row in rows:
        clean_row = []
        for button in row:
            button = {k: v for k, v in button.items() if v is not None}
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise bad_request("Bad Request: BUTTON_DATA_INVALID")
            if set(button) <= {"text"}:
                raise bad_request(
                    "Bad Request: can't parse inline keyboard button: "
                    "Text buttons are unallowed in the inline keyboard"
                )
            clean_row.append(button)
        if clean_row:
            clean_rows.append(clean_row)
    return {"inline_keyboard": clean_rows} if clean_rows else None


def _decode_json_fields(params: dict[str, Any]) -> dict[str, Any]:
    """Parse the fields sent as JSON strings; what does not parse stays a string."""
    for name in _JSON_FIELDS:
        value = params.get(name)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                params[name] = json.loads(value)
    return params


async def _read_params(request: web.Request) -> dict[str, Any]:
    """Query string and body (urlencoded, multipart or JSON) as one dict."""
    params: dict[str, Any] = dict(request.query)
    body = await request.read()
    if not body:
        return _decode_json_fields(params)
    content_type = request.content_type
    if content_type == "application/json":
        try:
            data = json.loads(body)
        except ValueError:
            raise bad_request("Bad Request: can't parse JSON encoded request") from None
        if isinstance(data, dict):
            params.update(data)
    elif content_type == "multipart/form-data":
        params.update(_parse_multipart(request.headers["Content-Type"], body))
    else:
        params.update((await request.post()).items())
    return _decode_json_fields(params)


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """Fields as strings, file parts as bytes (their names in ``_filenames``)."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
    params: dict[str, Any] = {}
    filenames: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is None:
            params[name] = data.decode("utf-8")
        else:
            params[name] = data
            filenames[name] = filename
    if filenames:
        params["_filenames"] = filenames
    return params
