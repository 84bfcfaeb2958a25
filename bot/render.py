"""Model output (Markdown) to Telegram messages: plain text plus entities, split to fit.

We render with telegramify-markdown, which parses with pulldown-cmark (a CommonMark
parser, through pyromark) and returns text with ``MessageEntity`` offsets in UTF-16 units.
Sending entities instead of a ``parse_mode`` string means no escaping exists that a model
could break, so Telegram's "can't parse entities" cannot happen; the library's MarkdownV2
mode, chatgpt-md-converter and sulguk (HTML) all produce markup that must be escaped
perfectly, and mistletoe would leave the Telegram renderer to us.

On top of the library this module shows raw HTML as written (the library drops it, and
``<script>`` in a model's answer is text), fixes or drops what Telegram refuses (links
whose URL it rejects, custom emoji, nested quotes, crossing entities, control characters,
lone surrogates), and splits long answers itself: on
paragraph, then line, then word boundaries, keeping code blocks whole when they fit,
never letting an entity cross a message boundary, and ending a message early rather than
give it more than 100 entities.
"""

from __future__ import annotations

import logging
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from heapq import heapify, heappop, heappush
from typing import Any
from urllib.parse import urlsplit

from aiogram.types import MessageEntity
from telegramify_markdown.config import RenderConfig
from telegramify_markdown.converter import STANDARD_OPTIONS, EventWalker, _parse

__all__ = [
    "EMPTY_PREVIEW",
    "MAX_ENTITIES",
    "MAX_MESSAGE_LENGTH",
    "Part",
    "plain_parts",
    "render",
    "render_preview",
    "utf16_len",
]

log = logging.getLogger(__name__)

MAX_MESSAGE_LENGTH = 4096  # UTF-16 code units in one Telegram text message
MAX_ENTITIES = 100  # Telegram ignores formatting past about this many entities
EMPTY_PREVIEW = "…"  # what a preview shows while the answer has no visible text yet

_PARAGRAPH, _LINE, _WORD = "\n\n", "\n", " "
_LANGUAGE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789+-#._")
_HOST_PUNCTUATION = frozenset("-._~")
_BLOCKQUOTES = frozenset({"blockquote", "expandable_blockquote"})
_SPOILER_TAGS = frozenset({"<tg-spoiler>", "</tg-spoiler>"})

# What Telegram would remove from a text anyway, removed first so that we measure and
# split what will be shown: control characters (tab and newline stay), bidirectional
# embeddings and overrides; bare carriage returns and Unicode line and paragraph
# separators become newlines.
_UNSHOWN: dict[int, int | None] = {
    c: None
    for c in (*range(0x20), *range(0x7F, 0xA0), *range(0x202A, 0x202F))
    if c not in (0x09, 0x0A)
}
_UNSHOWN.update({0x0D: 0x0A, 0x2028: 0x0A, 0x2029: 0x0A})
# Combining marks that Telegram strips: a part made of nothing else would be empty.
_STRIPPED_MARKS = frozenset("\u030a\u0333\u033f")
# Zero-width joiner, variation selectors and skin tones: a hard cut must not go before them.
_JOINERS = frozenset("\u200d\ufe0e\ufe0f\U0001f3fb\U0001f3fc\U0001f3fd\U0001f3fe\U0001f3ff")


def _config() -> RenderConfig:
    config = RenderConfig.isolated()
    symbols = config.markdown_symbol
    # Headings are bold (and underlined); no emoji in front of them.
    symbols.heading_level_1 = symbols.heading_level_2 = ""
    symbols.heading_level_3 = symbols.heading_level_4 = ""
    return config


_CONFIG = _config()

_Span = tuple[int, int]  # [start, end) Python string indices


@dataclass(frozen=True)
class Part:
    """One Telegram message: text and its entities (offsets in UTF-16 units of ``text``)."""

    text: str
    entities: list[MessageEntity]


def utf16_len(s: str) -> int:
    """Length of ``s`` in UTF-16 code units, the unit of Telegram's limits and offsets."""
    if s.isascii():
        return len(s)
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def render(markdown: str, limit: int = MAX_MESSAGE_LENGTH) -> list[Part]:
    """Render a whole answer as messages of at most ``limit`` UTF-16 units each.

    Returns no parts when the answer has no visible text. No entity crosses a part's
    edges, and a part ends early rather than carry more than ``MAX_ENTITIES`` entities
    (Telegram would ignore the rest of the formatting).
    """
    _check_limit(limit)
    text, entities = _convert(_clean(markdown))
    index = _Utf16Index(text)
    spans = [(index.py(e.offset), index.py(e.offset + e.length)) for e in entities]
    protected = [
        span
        for span, e in zip(spans, entities, strict=True)
        if e.type == "pre" and e.length <= limit
    ]
    return [
        Part(text[a:b], _entities_between(entities, index.u16(a), index.u16(b)))
        for a, b in _split(text, index, limit, protected, spans)
    ]


def render_preview(markdown: str, limit: int = MAX_MESSAGE_LENGTH) -> Part:
    """One valid message for a draft or edit of a partial answer: its last part.

    While the answer has no visible text yet (say, only an opening code fence), the part
    is ``EMPTY_PREVIEW``.
    """
    parts = render(markdown, limit)
    return parts[-1] if parts else Part(EMPTY_PREVIEW, [])


def plain_parts(markdown: str, limit: int = MAX_MESSAGE_LENGTH) -> list[str]:
    """The fallback when Telegram refuses the formatting: the answer as the model wrote it.

    No parsing is involved, so nothing can fail and nothing is lost (link URLs included);
    the text is split like ``render`` splits, and only what Telegram would not show
    (control characters and the like) is dropped.
    """
    _check_limit(limit)
    text = _clean(markdown)
    return [text[a:b] for a, b in _split(text, _Utf16Index(text), limit)]


# --- Markdown to text and entities --------------------------------------------------


class _Walker(EventWalker):
    """telegramify-markdown's event walker, except that raw HTML is kept as text.

    The library drops HTML blocks and inline tags; a model that writes ``<script>`` or
    ``<br>`` means them as text, so they are shown as written.
    """

    def __init__(self, config: RenderConfig, source: str) -> None:
        super().__init__(config, source)
        self._html: list[str] | None = None

    def _handle_event(self, event: Any) -> None:
        payload, source_range = event if isinstance(event, tuple) else (event, None)
        if isinstance(payload, dict):
            if payload.get("Start") == "HtmlBlock":
                self._start_html_block(source_range)
                return
            if payload.get("End") == "HtmlBlock":
                self._end_html_block()
                return
            if "Html" in payload and self._html is not None:
                self._html.append(payload["Html"])
                return
        super()._handle_event(event)

    def _on_inline_html(self, html: str) -> None:
        if html in _SPOILER_TAGS:  # the library's rewrite of ||spoiler||
            super()._on_inline_html(html)
        else:
            self._on_text(html)

    def _start_html_block(self, source_range: dict[str, int] | None) -> None:
        self._html = []
        if not self._list_stack:
            self._ensure_block_spacing(self._source_start(source_range))
        elif self._buf.py_offset and not self._buf.trailing_newline_count():
            self._buf.write("\n")

    def _end_html_block(self) -> None:
        self._on_text("".join(self._html or ()).rstrip("\n"))
        self._html = None
        if self._list_stack:
            self._buf.write("\n")
        else:
            self._mark_block_end()


@dataclass(frozen=True, slots=True)
class _Entity:
    """A library entity after clean-up: offsets in UTF-16 units of the whole text."""

    type: str
    offset: int
    length: int
    url: str | None = None
    language: str | None = None


def _convert(markdown: str) -> tuple[str, list[_Entity]]:
    try:
        source, events = _parse(markdown, STANDARD_OPTIONS, latex_escape=True)
        text, entities, _ = _Walker(_CONFIG, source).walk(events)
    except Exception:  # a parser bug must not cost the user the answer
        log.warning("Markdown rendering failed, showing the text as written", exc_info=True)
        return markdown, []
    return text, _clean_entities(entities)


def _clean_entities(entities: list[Any]) -> list[_Entity]:
    """Keep what Telegram accepts, sorted outer-first and properly nested."""
    kept: list[_Entity] = []
    for e in entities:
        url = language = None
        if e.type == "custom_emoji":  # a bot may not send custom emoji
            continue
        if e.type == "text_link":
            url = _safe_url(e.url or "")
            if url is None:
                continue
        if e.type == "pre":
            language = _safe_language(e.language or "")
        kept.append(_Entity(e.type, e.offset, e.length, url, language))
    return _without_nested_quotes(_nested(kept))


def _nested(entities: list[_Entity]) -> list[_Entity]:
    """Sort outer-first and split every entity that crosses another, so that any two are
    nested or apart: Telegram refuses crossing entities. (The library's ``||spoiler||``
    is inline HTML, not a node of the Markdown tree, so it can cross emphasis.)"""
    heap = [(e.offset, -e.length, i, e) for i, e in enumerate(entities)]
    heapify(heap)
    result: list[_Entity] = []
    ends: list[int] = []  # ends of the entities that contain the current one, innermost last
    while heap:
        offset, _, i, e = heappop(heap)
        while ends and ends[-1] <= offset:
            ends.pop()
        end = offset + e.length
        if ends and ends[-1] < end:  # crosses its container: the rest comes later
            cut = ends[-1]
            heappush(heap, (cut, cut - end, i, replace(e, offset=cut, length=end - cut)))
            e, end = replace(e, length=cut - offset), cut
        result.append(e)
        ends.append(end)
    return result


def _without_nested_quotes(entities: list[_Entity]) -> list[_Entity]:
    """Drop quotes inside quotes (``> > deep``): Telegram does not nest them."""
    result: list[_Entity] = []
    quote_end = -1
    for e in entities:
        if e.type in _BLOCKQUOTES:
            if e.offset < quote_end:
                continue
            quote_end = e.offset + e.length
        result.append(e)
    return result


def _safe_url(url: str) -> str | None:
    """``url`` if Telegram takes it for a text link: http(s) with a dotted host name."""
    if not url.isprintable() or " " in url:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # raises on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or "." not in host:
        return None
    if host.startswith(".") or host.endswith(".") or ".." in host:
        return None
    if not all(c.isalnum() or c in _HOST_PUNCTUATION for c in host):
        return None
    return url


def _safe_language(info: str) -> str | None:
    """The first word of a code fence's info string, if it looks like a language name."""
    words = info.split()
    if not words:
        return None
    word = words[0]
    return word if len(word) <= 32 and set(word.lower()) <= _LANGUAGE_CHARS else None


def _entities_between(entities: list[_Entity], start: int, end: int) -> list[MessageEntity]:
    """Entities clipped to [start, end) and re-based to ``start``.

    Splitting already keeps a part under ``MAX_ENTITIES``; the cap here is the guard for
    the one case it cannot (more than that many entities overlapping one cut).
    """
    result: list[MessageEntity] = []
    for e in entities:
        if e.offset >= end:
            break  # sorted by offset
        lo, hi = max(e.offset, start), min(e.offset + e.length, end)
        if hi > lo:
            result.append(
                MessageEntity(
                    type=e.type, offset=lo - start, length=hi - lo, url=e.url, language=e.language
                )
            )
            if len(result) == MAX_ENTITIES:
                break
    return result


# --- Splitting ---------------------------------------------------------------------------


class _Utf16Index:
    """Converts between Python string indices and UTF-16 offsets of one text."""

    def __init__(self, text: str) -> None:
        self._offsets: list[int] | None = None
        if utf16_len(text) != len(text):
            offsets = [0] * (len(text) + 1)
            total = 0
            for i, ch in enumerate(text):
                offsets[i] = total
                total += 2 if ord(ch) > 0xFFFF else 1
            offsets[-1] = total
            self._offsets = offsets

    def u16(self, i: int) -> int:
        """UTF-16 offset of Python index ``i``."""
        return i if self._offsets is None else self._offsets[i]

    def py(self, u: int) -> int:
        """The largest Python index whose UTF-16 offset is at most ``u``."""
        if self._offsets is None:
            return u
        return bisect_right(self._offsets, u) - 1


def _split(
    text: str,
    index: _Utf16Index,
    limit: int,
    protected: Sequence[_Span] = (),
    spans: Sequence[_Span] = (),
) -> list[_Span]:
    """[start, end) Python index ranges of the parts: each non-blank, at most ``limit`` long.

    Only whitespace between parts is dropped. ``protected`` ranges (code blocks that fit
    in one message) are not cut. ``spans`` are the entities, sorted by start: a part ends
    early rather than hold more than ``MAX_ENTITIES`` of them.
    """
    starts = [a for a, _ in spans]
    ranges: list[_Span] = []
    n = len(text)
    start = _next_start(text, 0)
    while start < n:
        hi = min(index.py(index.u16(start) + limit), n)  # the part is text[start:end <= hi]
        lo = start + 1
        while lo < hi and text[lo - 1].isspace():
            lo += 1  # the part must hold something visible
        budget = _entity_budget(spans, starts, start)
        if budget is not None and budget >= lo:
            hi = min(hi, budget)
        end = n if hi == n else _cut(text, lo, hi, protected)
        piece = text[start:end].rstrip()
        if any(not ch.isspace() and ch not in _STRIPPED_MARKS for ch in piece):
            ranges.append((start, start + len(piece)))
        start = _next_start(text, end)
    return ranges


def _entity_budget(spans: Sequence[_Span], starts: list[int], start: int) -> int | None:
    """Where the entity that a part starting at ``start`` has no room for begins, if any."""
    first = bisect_left(starts, start)
    carried = sum(1 for _, end in spans[:first] if end > start)
    room = MAX_ENTITIES - carried
    if room <= 0 or first + room >= len(starts):
        return None
    return starts[first + room]


def _next_start(text: str, i: int) -> int:
    """Where the next part starts: past the whitespace at ``i``, keeping the indentation
    of its first line (code must keep it)."""
    n = len(text)
    j = i
    while j < n and text[j].isspace():
        j += 1
    newline = text.rfind("\n", i, j)
    return j if newline == -1 or j == n else newline + 1


def _cut(text: str, lo: int, hi: int, protected: Sequence[_Span]) -> int:
    """Where a part ends, somewhere in [lo, hi], when the rest of the text does not fit.

    Prefers a paragraph break, then a line break, then a space, in the second half of the
    window, then anywhere in it; cuts a word only when the window holds no boundary.
    """
    for floor in ((lo + hi) // 2, lo):
        for separator in (_PARAGRAPH, _LINE, _WORD):
            cut = _last_outside(text, separator, floor, hi, protected)
            if cut is not None:
                return cut
    cut = hi
    block = _protected_at(protected, cut)
    if block is not None and block[0] >= lo:
        return block[0]  # a code block that fits starts its own part
    while cut > lo and _joins_previous(text, cut):
        cut -= 1  # don't break a letter from its accent or an emoji sequence
    return cut


def _last_outside(
    text: str, separator: str, lo: int, hi: int, protected: Sequence[_Span]
) -> int | None:
    """The last index in [lo, hi] where ``separator`` starts outside every protected range."""
    end = hi + len(separator)
    while True:
        found = text.rfind(separator, lo, end)
        if found == -1:
            return None
        block = _protected_at(protected, found)
        if block is None:
            return found
        end = block[0]


def _protected_at(protected: Sequence[_Span], i: int) -> _Span | None:
    """The protected range that a cut at ``i`` would fall strictly inside, if any."""
    k = bisect_left(protected, (i,)) - 1  # the last range starting before i
    if k >= 0 and protected[k][1] > i:
        return protected[k]
    return None


def _joins_previous(text: str, i: int) -> bool:
    """Whether ``text[i]`` is drawn as one character with ``text[i - 1]``."""
    ch = text[i]
    return unicodedata.combining(ch) != 0 or ch in _JOINERS or text[i - 1] == "\u200d"


# --- Input -----------------------------------------------------------------------------


def _clean(markdown: str) -> str:
    """Drop what Telegram would not show (``_UNSHOWN``) and make the text valid Unicode.

    A surrogate pair that arrived as two code points (JSON ``\\ud83d\\ude00``) is joined;
    a lone surrogate, which Telegram cannot take, becomes U+FFFD.
    """
    text = markdown.replace("\r\n", "\n").translate(_UNSHOWN)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def _check_limit(limit: int) -> None:
    if limit < 2:  # an astral character takes two units and cannot be cut
        raise ValueError(f"limit must be at least 2, not {limit}")
