"""Telegram's checks of rich messages (Bot API 10.1), measured independently of the bot.

A rich message (``InputRichMessage``) is first read with aiogram's own models, as the
Bot API reads its JSON, then walked the way Telegram counts it:

- text: at most 32,768 characters in UTF-16 code units over every text of the message
  (paragraphs, headings, code, formula sources, table cells, list items, details
  summaries, captions and credits, thinking, custom emoji alternative text), URLs not;
- blocks: at most 500, counting every block at any depth, every list item and every
  table row;
- depth: at most 16, a top-level block being at depth 1 and the blocks inside a list
  item, a block quote, a details block, a collage or a slideshow one deeper;
- table columns: at most 20 in a row (the sum of its cells' colspans);
- media: at most 50 (photos, videos, animations, audios, documents, voice notes, and the
  ``media`` of a Markdown or HTML message).

Text blocks must carry text, ``thinking`` blocks exist only in drafts, links are http(s)
or tg URLs, and table cells are aligned left/center/right and top/middle/bottom. Every
refusal is a Telegram-style ``"Bad Request: ..."`` description naming the rich message.

``flatten`` gives a rich message's plain text (one line per paragraph, heading, list
item, table row, ...), which is what the double shows as the message's ``text``.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

from aiogram.types import InputRichMessage
from pydantic import ValidationError

from tests.doubles.telegram_validation import _check_link, utf16_len

MAX_RICH_TEXT_LENGTH = 32_768  # UTF-16 code units over all the texts of a message
MAX_RICH_BLOCKS = 500  # blocks at any depth, list items and table rows
MAX_RICH_DEPTH = 16
MAX_RICH_TABLE_COLUMNS = 20
MAX_RICH_MEDIA = 50

RICH_EMPTY = "Bad Request: rich message is empty"
RICH_ONE_SOURCE = "Bad Request: rich message must have exactly one of blocks, markdown and html"
RICH_TOO_LONG = "Bad Request: rich message text is too long"
RICH_TOO_MANY_BLOCKS = "Bad Request: rich message has too many blocks"
RICH_TOO_DEEP = "Bad Request: rich message blocks are nested too deeply"
RICH_TOO_MANY_COLUMNS = "Bad Request: rich message table has too many columns"
RICH_TOO_MANY_MEDIA = "Bad Request: rich message has too many media"
RICH_THINKING = "Bad Request: rich message thinking blocks can be used only in drafts"
RICH_CANT_PARSE = "Bad Request: can't parse rich message"  # + ": <what>"
TEXT_AND_RICH = "Bad Request: only one of text and rich_message can be specified"

ALIGNS = ("left", "center", "right")
VALIGNS = ("top", "middle", "bottom")
LIST_ITEM_TYPES = ("a", "A", "i", "I", "1")
MEDIA_BLOCKS = {
    "photo": "photo",
    "video": "video",
    "animation": "animation",
    "audio": "audio",
    "document": "document",
    "voice_note": "voice_note",
}
# Blocks whose text Telegram requires (after trimming spaces and newlines).
_TEXT_REQUIRED = {
    "paragraph",
    "heading",
    "pre",
    "footer",
    "pullquote",
    "expandable_blockquote",
    "thinking",
}
# Blocks whose ``blocks`` are one level deeper.
_CONTAINERS = ("blockquote", "details", "collage", "slideshow")
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_HTML_TAG = re.compile(r"<[^>]*>")


class RichError(ValueError):
    """Telegram refused the rich message; ``description`` is the error description."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass(frozen=True)
class RichStats:
    """What Telegram counts in a rich message."""

    text_length: int = 0  # UTF-16 code units
    blocks: int = 0  # blocks at any depth + list items + table rows
    depth: int = 0  # the deepest block (a top-level block is at depth 1)
    columns: int = 0  # the widest table row (sum of colspans)
    media: int = 0


@dataclass(frozen=True)
class CheckedRich:
    """A rich message Telegram accepted: the payload as sent (nulls dropped), its
    plain text and its counts."""

    payload: dict[str, Any]
    text: str
    stats: RichStats


def check_rich_message(value: Any, *, draft: bool = False) -> CheckedRich:
    """Read a ``rich_message`` like sendRichMessage (``draft``: like
    sendRichMessageDraft) does; raises RichError with Telegram's description."""
    if value is None or value == "":
        raise RichError(RICH_EMPTY)
    if not isinstance(value, dict):
        raise RichError(f"{RICH_CANT_PARSE}: expected an Object")
    payload = _drop_nulls(value)
    sources = [name for name in ("blocks", "markdown", "html") if name in payload]
    if len(sources) != 1:
        raise RichError(RICH_ONE_SOURCE)
    try:
        InputRichMessage.model_validate(payload)
    except ValidationError as error:
        raise RichError(f"{RICH_CANT_PARSE}: {_first_problem(error)}") from None
    source = sources[0]
    if source == "blocks" and not payload["blocks"]:
        raise RichError(RICH_EMPTY)
    if source != "blocks" and not str(payload[source]).strip(" \n"):
        raise RichError(RICH_EMPTY)
    walker = _Walker(strict=True, draft=draft)
    walker.message(payload)
    stats = walker.stats()
    if stats.text_length > MAX_RICH_TEXT_LENGTH:
        raise RichError(RICH_TOO_LONG)
    if stats.blocks > MAX_RICH_BLOCKS:
        raise RichError(RICH_TOO_MANY_BLOCKS)
    if stats.depth > MAX_RICH_DEPTH:
        raise RichError(RICH_TOO_DEEP)
    if stats.columns > MAX_RICH_TABLE_COLUMNS:
        raise RichError(RICH_TOO_MANY_COLUMNS)
    if stats.media > MAX_RICH_MEDIA:
        raise RichError(RICH_TOO_MANY_MEDIA)
    return CheckedRich(payload, flatten(payload), stats)


def validate_rich_message(value: Any, *, draft: bool = False) -> str | None:
    """Telegram's error description for this rich message, or None when accepted."""
    try:
        check_rich_message(value, draft=draft)
    except RichError as error:
        return error.description
    return None


def measure(rich_message: dict[str, Any]) -> RichStats:
    """Telegram's counts of a rich message (Bot API dict), whether within limits or not."""
    walker = _Walker(strict=False, draft=True)
    walker.message(_drop_nulls(rich_message))
    return walker.stats()


def flatten(rich_message: dict[str, Any]) -> str:
    """The plain text of a rich message (sent or received form): paragraphs, headings,
    preformatted text, formulas, list items and table rows each on their own line(s),
    a row's cells joined by " | ", a details block's summary before its blocks, a
    block quote's credit after them, thinking text as any other text."""
    rich_message = _drop_nulls(rich_message)
    if rich_message.get("markdown") is not None:
        return str(rich_message["markdown"]).strip()
    if rich_message.get("html") is not None:
        return html.unescape(_HTML_TAG.sub("", str(rich_message["html"]))).strip()
    return "\n".join(_block_lines(rich_message.get("blocks") or []))


def flatten_text(rich_text: Any) -> str:
    """The plain text of one RichText (a string, a list, or a typed object)."""
    if rich_text is None:
        return ""
    if isinstance(rich_text, str):
        return rich_text
    if isinstance(rich_text, list):
        return "".join(flatten_text(part) for part in rich_text)
    kind = rich_text.get("type")
    if kind == "custom_emoji":
        return str(rich_text.get("alternative_text", ""))
    if kind == "mathematical_expression":
        return str(rich_text.get("expression", ""))
    if kind == "button":
        return flatten_text((rich_text.get("button") or {}).get("text"))
    if kind == "anchor":
        return ""
    return flatten_text(rich_text.get("text"))


def rich_message_result(payload: dict[str, Any]) -> dict[str, Any]:
    """The ``RichMessage`` Telegram returns in ``Message.rich_message`` for a sent
    ``InputRichMessage``: list items get their labels, media blocks their files, maps
    their size; a Markdown or HTML message comes back as paragraphs."""
    if "blocks" in payload:
        blocks = [_result_block(block) for block in payload["blocks"]]
    else:
        blocks = [
            {"type": "paragraph", "text": line}
            for line in flatten(payload).split("\n")
            if line.strip()
        ]
    result: dict[str, Any] = {"blocks": blocks}
    if payload.get("is_rtl"):
        result["is_rtl"] = True
    return result


# --- reading ---------------------------------------------------------------------


def _drop_nulls(value: Any) -> Any:
    """The JSON form of a value: nulls dropped, enums (of aiogram's python-mode
    ``model_dump``) as their values."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(item) for item in value]
    if isinstance(value, Enum):
        return value.value
    return value


def _first_problem(error: ValidationError) -> str:
    """The first pydantic error as ``field "blocks.0.text": Field required``."""
    problem = error.errors()[0]
    path: list[str] = []
    for part in problem["loc"]:
        text = str(part)
        if "[" in text or text[:1].isupper() or text in ("str", "int", "bool", "float"):
            break  # a union member's name: where the value went wrong is before it
        path.append(text)
    where = ".".join(path) or "rich_message"
    return f'field "{where}": {problem["msg"]}'


class _Walker:
    """Counts (and with ``strict``, checks) a rich message's blocks and texts."""

    def __init__(self, *, strict: bool, draft: bool) -> None:
        self.strict = strict
        self.draft = draft
        self.text_length = 0
        self.blocks = 0
        self.depth = 0
        self.columns = 0
        self.media = 0

    def stats(self) -> RichStats:
        return RichStats(self.text_length, self.blocks, self.depth, self.columns, self.media)

    def refuse(self, description: str) -> None:
        if self.strict:
            raise RichError(description)

    def message(self, payload: dict[str, Any]) -> None:
        if payload.get("markdown") is not None or payload.get("html") is not None:
            self.text_length += utf16_len(flatten(payload))
            self.blocks += 1
            self.depth = max(self.depth, 1)
            self.media += len(payload.get("media") or [])
            return
        self.block_list(payload.get("blocks") or [], 1)

    def block_list(self, blocks: list[Any], depth: int) -> None:
        for block in blocks:
            self.block(block, depth)

    def block(self, block: dict[str, Any], depth: int) -> None:
        kind = str(block.get("type"))
        self.blocks += 1
        self.depth = max(self.depth, depth)
        if kind == "thinking" and not self.draft:
            self.refuse(RICH_THINKING)
        if kind in _TEXT_REQUIRED:
            self.required_text(kind, block.get("text"))
        if kind == "heading" and not 1 <= int(block.get("size", 0)) <= 6:
            self.refuse("Bad Request: rich message heading size must be between 1 and 6")
        if kind == "mathematical_expression":
            expression = str(block.get("expression", ""))
            if not expression.strip(" \n"):
                self.refuse("Bad Request: rich message mathematical_expression must be non-empty")
            self.text_length += utf16_len(expression)
        for name in ("credit", "caption"):
            self.caption(block.get(name))
        if kind == "list":
            self.list_items(block.get("items") or [], depth)
        elif kind in _CONTAINERS:
            if kind == "details":
                self.required_text("details summary", block.get("summary"))
            self.block_list(block.get("blocks") or [], depth + 1)
        elif kind == "table":
            self.table(block.get("cells") or [])
        elif kind == "buttons":
            self.buttons(block)
        elif kind in MEDIA_BLOCKS:
            self.media += 1

    def buttons(self, block: dict[str, Any]) -> None:
        buttons = block.get("buttons") or []
        if not 1 <= len(buttons) <= 8:
            self.refuse("Bad Request: rich message buttons block must have 1-8 buttons")
        align = block.get("align")
        if align is not None and align not in ALIGNS:
            self.refuse(f"Bad Request: rich message buttons align '{align}' is invalid")
        for button in buttons:
            self.button(button)

    def list_items(self, items: list[Any], depth: int) -> None:
        for item in items:
            self.blocks += 1
            kind = item.get("type")
            if kind is not None and kind not in LIST_ITEM_TYPES:
                self.refuse(f"Bad Request: rich message list item type '{kind}' is invalid")
            self.block_list(item.get("blocks") or [], depth + 1)

    def table(self, rows: list[Any]) -> None:
        for row in rows:
            self.blocks += 1
            width = 0
            for cell in row:
                width += max(int(cell.get("colspan") or 1), 1)
                align, valign = cell.get("align"), cell.get("valign")
                if align not in ALIGNS:
                    self.refuse(f"Bad Request: rich message table cell align '{align}' is invalid")
                if valign not in VALIGNS:
                    self.refuse(
                        f"Bad Request: rich message table cell valign '{valign}' is invalid"
                    )
                self.text(cell.get("text"))
            self.columns = max(self.columns, width)

    def required_text(self, what: str, rich_text: Any) -> None:
        if not flatten_text(rich_text).strip(" \n"):
            self.refuse(f"Bad Request: rich message {what} text must be non-empty")
        self.text(rich_text)

    def caption(self, caption: Any) -> None:
        if isinstance(caption, dict) and "type" not in caption and "text" in caption:
            self.text(caption.get("text"))  # a RichBlockCaption: text and credit
            self.text(caption.get("credit"))
        elif caption is not None:
            self.text(caption)  # a RichText (a table caption, a credit)

    def button(self, button: dict[str, Any]) -> None:
        self.text(button.get("text"))
        if button.get("url") is not None:
            self.url(str(button["url"]))

    def text(self, rich_text: Any) -> None:
        """Count a RichText's characters and check its links."""
        for piece, node in _text_pieces(rich_text):
            self.text_length += utf16_len(piece)
            if node is None:
                continue
            if node.get("type") == "url":
                self.url(str(node.get("url", "")))
            elif node.get("type") == "button":
                self.button(node.get("button") or {})

    def url(self, url: str) -> None:
        match = _URL_SCHEME.match(url)
        scheme = match.group(1).lower() if match else ""
        if scheme == "tg":
            if len(url) > len("tg://"):
                return
            reason = "Wrong tg URL"
        elif scheme in ("http", "https"):
            checked, reason = _check_link(url)
            if checked:
                return
        else:
            reason = "Unsupported URL protocol"
        self.refuse(f"Bad Request: rich message URL '{url}' is invalid: {reason}")


def _text_pieces(rich_text: Any) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """The counted strings of a RichText, each with the typed node it belongs to (None
    for plain strings); buttons' texts come with the button node."""
    if rich_text is None:
        return
    if isinstance(rich_text, str):
        yield rich_text, None
        return
    if isinstance(rich_text, list):
        for part in rich_text:
            yield from _text_pieces(part)
        return
    kind = rich_text.get("type")
    if kind == "custom_emoji":
        yield str(rich_text.get("alternative_text", "")), rich_text
    elif kind == "mathematical_expression":
        yield str(rich_text.get("expression", "")), rich_text
    elif kind == "button":
        yield "", rich_text  # its text is counted with the button
    elif kind != "anchor":
        yield "", rich_text
        yield from _text_pieces(rich_text.get("text"))


# --- flattening --------------------------------------------------------------------


def _block_lines(blocks: list[Any]) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        lines.extend(_lines_of(block))
    return lines


def _lines_of(block: dict[str, Any]) -> list[str]:
    kind = block.get("type")
    lines: list[str] = []

    def add(rich_text: Any) -> None:
        text = flatten_text(rich_text)
        if text:
            lines.extend(text.split("\n"))

    if kind in ("paragraph", "heading", "pre", "footer", "thinking"):
        add(block.get("text"))
    elif kind in ("pullquote", "expandable_blockquote"):
        add(block.get("text"))
        add(block.get("credit"))
    elif kind == "mathematical_expression":
        add(block.get("expression"))
    elif kind == "list":
        for item in block.get("items") or []:
            lines.extend(_block_lines(item.get("blocks") or []))
    elif kind == "blockquote":
        lines.extend(_block_lines(block.get("blocks") or []))
        add(block.get("credit"))
    elif kind == "details":
        add(block.get("summary"))
        lines.extend(_block_lines(block.get("blocks") or []))
    elif kind in ("collage", "slideshow"):
        lines.extend(_block_lines(block.get("blocks") or []))
        lines.extend(_caption_lines(block.get("caption")))
    elif kind == "table":
        add(block.get("caption"))
        for row in block.get("cells") or []:
            lines.append(" | ".join(flatten_text(cell.get("text")) for cell in row))
    elif kind == "buttons":
        lines.append(" | ".join(flatten_text(b.get("text")) for b in block.get("buttons") or []))
    elif kind in MEDIA_BLOCKS or kind == "map":
        lines.extend(_caption_lines(block.get("caption")))
    return lines


def _caption_lines(caption: Any) -> list[str]:
    if not isinstance(caption, dict):
        return []
    texts = (flatten_text(caption.get("text")), flatten_text(caption.get("credit")))
    return [line for text in texts if text for line in text.split("\n")]


# --- the received form -------------------------------------------------------------


def _result_block(block: dict[str, Any]) -> dict[str, Any]:
    kind = block.get("type")
    result = dict(block)
    if kind == "list":
        result["items"] = [_result_item(item, n) for n, item in enumerate(block["items"], 1)]
    elif kind in _CONTAINERS:
        result["blocks"] = [_result_block(inner) for inner in block.get("blocks") or []]
    elif kind == "map":
        result = {"zoom": 15, "width": 600, "height": 400, **result}
    elif kind in MEDIA_BLOCKS:
        field_name = MEDIA_BLOCKS[str(kind)]
        media = block.get(field_name) or {}
        result[field_name] = _received_file(str(kind), media)
        if media.get("has_spoiler") and kind in ("photo", "video", "animation"):
            result["has_spoiler"] = True
    return result


def _result_item(item: dict[str, Any], number: int) -> dict[str, Any]:
    result = dict(item)
    result["blocks"] = [_result_block(inner) for inner in item.get("blocks") or []]
    if "label" not in result:
        value = item.get("value")
        ordered = "type" in item or value is not None
        result["label"] = f"{value if value is not None else number}." if ordered else "•"
    return result


def _received_file(kind: str, media: dict[str, Any]) -> Any:
    """The file Telegram would return for an InputMedia (deterministic fake ids)."""
    digest = hashlib.sha256(str(media.get("media", "")).encode()).hexdigest()
    ids = {"file_id": f"Rich{digest[:24]}", "file_unique_id": f"AgR{digest[:12]}"}
    width, height = int(media.get("width") or 640), int(media.get("height") or 480)
    duration = int(media.get("duration") or 1)
    if kind == "photo":
        return [{**ids, "width": width, "height": height}]
    if kind in ("video", "animation"):
        return {**ids, "width": width, "height": height, "duration": duration}
    if kind in ("audio", "voice_note"):
        return {**ids, "duration": duration}
    return ids
