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
paragraph, then line, then word boundaries, keeping code blocks whole when they fit
(and the indentation of the line a part starts with), never letting an entity cross a
message boundary, not ending a message with a heading when the next can start with it,
and ending a message early rather than give it more than 100 entities (as long as that
leaves it long enough).

It also mends what the library gets wrong for a reader: math in a table cell stays in
the cell (the library wrote it before the table), roots and fractions read on one line
(``√(b²-4ac)``, ``(-b ± √(b²-4ac))/(2a)``, not combining overlines), a matrix in display
math is drawn in rows and aligned columns, table columns are measured in the columns a
monospace font draws (CJK and emoji take two), an open task shows an empty box (☐, the
library's is checked), and footnotes are numbered (``text¹`` and ``¹ the note``).

Whatever the text, the work is linear in its length, and so are the rendered text and
the number of messages: an answer is a user's paste echoed back as often as a model's
prose. The library's steps that were not (LaTeX and spoiler preprocessing, the re-parse
for literal ``$`` and ``~``, list indentation, table padding, closing a formatting scope)
are replaced or bounded here. pulldown-cmark pads short table rows with empty cells, so
the events taken from it are capped; past that cap, or when the rendered text would
grow out of proportion, the answer is shown as written. A part is at least a quarter of
the limit long unless it is the last, or ends where a code block that fits begins, or
is one of at most two parts that end early to keep their formatting.

``render_async`` renders a long answer in a worker thread. The parser's events are taken
one at a time, so the event loop gets the GIL back between them, and the cyclic garbage
collector waits while a long answer renders (``_GcPause``).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import threading
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from heapq import heapify, heappop, heappush
from itertools import islice
from typing import Any
from urllib.parse import urlsplit

import pyromark
from aiogram.types import MessageEntity
from telegramify_markdown.config import RenderConfig
from telegramify_markdown.converter import (
    _LATEX_PROBE_SYMBOLS,
    _SPOILER_RE,
    STANDARD_OPTIONS,
    EventWalker,
    _escape_at,
    _TextBuffer,
)
from telegramify_markdown.entity import MessageEntity as _LibraryEntity
from telegramify_markdown.latex_escape.const import FRAC_MAP, SUBSCRIPTS, SUPERSCRIPTS
from telegramify_markdown.latex_escape.helper import LatexToUnicodeHelper

__all__ = [
    "EMPTY_PREVIEW",
    "MAX_ENTITIES",
    "MAX_MESSAGE_LENGTH",
    "Part",
    "plain_parts",
    "render",
    "render_async",
    "render_preview",
    "render_preview_async",
    "utf16_len",
]

log = logging.getLogger(__name__)

MAX_MESSAGE_LENGTH = 4096  # UTF-16 code units in one Telegram text message
MAX_ENTITIES = 100  # Telegram ignores formatting past about this many entities
EMPTY_PREVIEW = "…"  # what a preview shows while the answer has no visible text yet

# Up to this many characters an answer renders on the event loop (render_async): hostile
# Markdown costs up to about 7 µs a character, so at most about 7 ms there, and the
# ordinary answer far less, not worth a thread hop. Longer answers render in a worker
# thread, with the cyclic garbage collector paused (_GcPause).
_INLINE_RENDER_CHARS = 1_000

_PARAGRAPH, _LINE, _WORD = "\n\n", "\n", " "
_SUPERSCRIPT_DIGITS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
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

# Splitting: a part other than the last holds at least 1/_MIN_PART_SHARE of the limit
# (counting the whitespace dropped after it), except before a code block that the next
# part holds whole, and in at most _SHORT_PARTS_FOR_ENTITIES parts of an answer that end
# early to keep their formatting under MAX_ENTITIES. Past those, the formatting after a
# part's first MAX_ENTITIES entities is lost (Telegram would ignore it) rather than the
# answer growing to a message per hundred entities: at most four times the messages its
# length needs (ordinary text: about as many as its length needs).
_MIN_PART_SHARE = 4
_SHORT_PARTS_FOR_ENTITIES = 2
# A part does not end with a heading (up to this many in a row) when it can end before
# it, and the next part can hold the heading and the first word after it (this long at
# most) or all of the code block after it.
_HEADINGS_IN_A_ROW, _FIRST_WORD = 3, 64

# Bounds on the rendering work, per character of the answer. pulldown-cmark yields up to
# two events a character for the densest Markdown (nested lists, ``>>>``), more only for
# table rows it pads with empty cells (up to about half a million events).
_EVENTS_PER_CHAR, _EVENTS_SLACK = 3, 10_000
# Rendered text may be this much longer than the answer (list markers, table rules).
_GROWTH_PER_CHAR, _GROWTH_SLACK = 4, 10_000
_MAX_INDENT = 4  # nested list levels that indent further; deeper ones stay at this depth
_POP_SEARCH = 64  # open formatting scopes searched for the one an end closes
# LaTeX is converted to Unicode only in fragments up to this long, nested this deep in
# braces and brackets, and growing at most this much: the library's converter rescans
# nested blocks, and each \overline (the library's \sqrt did too) doubles its argument.
_MAX_LATEX, _MAX_LATEX_DEPTH, _LATEX_GROWTH = 2_000, 16, 2
# Rounds of re-parsing after escaping literal ``$`` and ``~`` (each round can expose more).
_DELIMITER_ROUNDS = 3
# A table is drawn in aligned columns unless that makes it this much longer than its source.
_TABLE_GROWTH, _TABLE_SLACK = 3, 4_096


def _config() -> RenderConfig:
    config = RenderConfig.isolated()
    symbols = config.markdown_symbol
    # Headings are bold (and underlined); no emoji in front of them.
    symbols.heading_level_1 = symbols.heading_level_2 = ""
    symbols.heading_level_3 = symbols.heading_level_4 = ""
    symbols.task_uncompleted = "\N{BALLOT BOX}"  # ☐: the library's is a checked box, ☑
    return config


_CONFIG = _config()
# The library's options, and footnotes: ``[^1]`` where a definition ``[^1]: ...`` exists.
_OPTIONS = STANDARD_OPTIONS | pyromark.Options.ENABLE_FOOTNOTES

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
    (Telegram would ignore the rest of the formatting), up to two times an answer.
    """
    _check_limit(limit)
    if len(markdown) <= _INLINE_RENDER_CHARS:
        return _render(markdown, limit)
    with _GC_PAUSE:
        return _render(markdown, limit)


def _render(markdown: str, limit: int) -> list[Part]:
    text, entities, headings = _convert_with_headings(_clean(markdown))
    index = _Utf16Index(text)
    spans = [(index.py(e.offset), index.py(e.offset + e.length)) for e in entities]
    protected = [
        span
        for span, e in zip(spans, entities, strict=True)
        if e.type == "pre" and e.length <= limit
    ]
    ranges = _split(text, index, limit, protected, spans, headings)
    bounds = [(index.u16(a), index.u16(b)) for a, b in ranges]
    return [
        Part(text[a:b], part_entities)
        for (a, b), part_entities in zip(ranges, _entities_by_part(entities, bounds), strict=True)
    ]


def render_preview(markdown: str, limit: int = MAX_MESSAGE_LENGTH) -> Part:
    """One valid message for a draft or edit of a partial answer: its last part.

    While the answer has no visible text yet (say, only an opening code fence), the part
    is ``EMPTY_PREVIEW``.
    """
    parts = render(markdown, limit)
    return parts[-1] if parts else Part(EMPTY_PREVIEW, [])


async def render_async(markdown: str, limit: int = MAX_MESSAGE_LENGTH) -> list[Part]:
    """``render``, in a worker thread when the answer is long enough to hold up the
    event loop (``_INLINE_RENDER_CHARS``)."""
    _check_limit(limit)
    if len(markdown) <= _INLINE_RENDER_CHARS:
        return render(markdown, limit)
    return await asyncio.to_thread(render, markdown, limit)


async def render_preview_async(markdown: str, limit: int = MAX_MESSAGE_LENGTH) -> Part:
    """``render_preview``, in a worker thread when the answer is long (see ``render_async``)."""
    _check_limit(limit)
    if len(markdown) <= _INLINE_RENDER_CHARS:
        return render_preview(markdown, limit)
    return await asyncio.to_thread(render_preview, markdown, limit)


def plain_parts(markdown: str, limit: int = MAX_MESSAGE_LENGTH) -> list[str]:
    """The fallback when Telegram refuses the formatting: the answer as the model wrote it.

    No parsing is involved, so nothing can fail and nothing is lost (link URLs included);
    the text is split like ``render`` splits, and only what Telegram would not show
    (control characters and the like) is dropped.
    """
    _check_limit(limit)
    text = _clean(markdown)
    return [text[a:b] for a, b in _split(text, _Utf16Index(text), limit)]


class _GcPause:
    """Keeps the cyclic garbage collector off while long answers render: a context
    manager, for any number of threads at once.

    Rendering allocates an object or more per Markdown event and keeps many of them
    (entities, spans) to the end: enough, in a long answer, to set off full collections,
    and a full collection walks every object of the process with the GIL held (about
    200 ms with aiogram loaded), stalling the event loop however the render is threaded.
    What a render allocates is freed by reference counting. The collector is back on
    when the last render ends, if it was on when the first began.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._renders = 0
        self._was_enabled = False

    def __enter__(self) -> None:
        with self._lock:
            if not self._renders:
                self._was_enabled = gc.isenabled()
                gc.disable()
            self._renders += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._renders -= 1
            if not self._renders and self._was_enabled:
                gc.enable()


_GC_PAUSE = _GcPause()


# --- Markdown to text and entities --------------------------------------------------


class _TooCostly(Exception):
    """Rendering this text would take work or output out of proportion to its length."""


def _convert(markdown: str) -> tuple[str, list[_Entity]]:
    text, entities, _ = _convert_with_headings(markdown)
    return text, entities


def _convert_with_headings(markdown: str) -> tuple[str, list[_Entity], list[_Span]]:
    """The text, its entities, and where its headings are (Python indices)."""
    try:
        source, events, converted = _parse(markdown)
        walker = _Walker(
            _CONFIG, source, _GROWTH_PER_CHAR * len(markdown) + _GROWTH_SLACK, converted
        )
        text, entities, _ = walker.walk(events)
    except _TooCostly as exc:
        log.info("Markdown too costly to render (%s), showing the text as written", exc)
        return markdown, [], []
    except Exception:  # a parser bug must not cost the user the answer
        log.warning("Markdown rendering failed, showing the text as written", exc_info=True)
        return markdown, [], []
    return text, _clean_entities(entities), walker.headings


def _parse(markdown: str) -> tuple[str, Iterator[tuple[Any, Any]], frozenset[str]]:
    """The library's ``_parse``: the text as preprocessed, and its events (lazily); and
    the math that LaTeX preprocessing wrote, converted already.

    LaTeX and spoiler preprocessing are the library's, done in linear time here, and the
    re-parse that escapes ``$`` and ``~`` delimiters to read as text (``$10.49 (~$11.20)``
    is two prices) stops after ``_DELIMITER_ROUNDS`` rounds.
    """
    converted: set[str] = set()
    text = _preprocess_spoilers(_escape_latex(markdown, converted))
    for _ in range(_DELIMITER_ROUNDS):
        offsets = _literal_delimiters(text)
        if not offsets:
            break
        text = _escape_at(text, offsets)
    return text, _events(text), frozenset(converted)


def _events(text: str) -> Iterator[tuple[Any, Any]]:
    """pyromark's events with their source ranges, ``_TooCostly`` past the cap.

    They are taken one at a time: held all at once they cost the garbage collector more
    than the parse, and pyromark keeps the GIL for as long as a single call lasts.
    """
    events = pyromark.events_with_range(text, options=_OPTIONS)
    yield from islice(events, _EVENTS_PER_CHAR * len(text) + _EVENTS_SLACK)
    if next(events, None) is not None:
        raise _TooCostly(f"over {_EVENTS_PER_CHAR} Markdown events a character")


_STRIKETHROUGH_START = {"Start": "Strikethrough"}


def _literal_delimiters(text: str) -> list[int]:
    """The library's ``_literal_delimiters``: UTF-8 offsets of the ``$`` and ``~``
    delimiters to read as text, a single ``~`` (approximately) and math that a digit
    follows (a price)."""
    if "$" not in text and "~" not in text:
        return []
    source = text.encode("utf-8")
    offsets: list[int] = []
    for payload, source_range in _events(text):
        if payload == _STRIKETHROUGH_START:
            start, end = source_range["start"], source_range["end"]
            if source[start + 1 : start + 2] != b"~":
                offsets += (start, end - 1)
        elif isinstance(payload, dict) and "InlineMath" in payload:
            start, end = source_range["start"], source_range["end"]
            if source[end : end + 1].isdigit():
                offsets += (start, end - 1)
    return offsets


def _preprocess_spoilers(text: str) -> str:
    """The library's ``_preprocess_spoilers``: ``||spoiler||`` becomes
    ``<tg-spoiler>spoiler</tg-spoiler>`` outside code."""
    if "||" not in text:
        return text
    data = text.encode("utf-8")
    pieces: list[str] = []
    cursor = 0
    for payload, source_range in _events(text):
        if not isinstance(payload, dict):
            continue
        start = payload.get("Start")
        if (isinstance(start, dict) and "CodeBlock" in start) or "Code" in payload:
            code_start, code_end = source_range["start"], source_range["end"]
            pieces.append(_SPOILER_RE.sub(_spoiler, data[cursor:code_start].decode("utf-8")))
            pieces.append(data[code_start:code_end].decode("utf-8"))
            cursor = code_end
    pieces.append(_SPOILER_RE.sub(_spoiler, data[cursor:].decode("utf-8")))
    return "".join(pieces)


_BREAK_CHARS = "\r\n \t>"


def _spoiler(match: re.Match[str]) -> str:
    """The library's ``_spoiler_replacement``: the tags go inside the line breaks (and
    their blockquote markers) at the spoiler's edges, so that an open tag never stands
    on a line of its own (an HTML block, which would swallow it).

    The library finds the edges with a regular expression that backtracks exponentially
    in the ``>`` markers of a spoiler that does not end in line breaks; the same edges
    are found here in one pass: the leading ones greedily, the trailing ones as the
    shortest tail that starts with a line break and holds only breaks, blanks and ``>``.
    """
    body = match.group(1)
    lead = _leading_breaks(body)
    tail = max(len(body.rstrip(_BREAK_CHARS)), lead)
    breaks = [i for i in (body.find("\n", tail), body.find("\r", tail)) if i != -1]
    tail = min(breaks, default=len(body))
    if tail == lead:
        return match.group(0)
    return f"{body[:lead]}<tg-spoiler>{body[lead:tail]}</tg-spoiler>{body[tail:]}"


def _leading_breaks(text: str) -> int:
    """The length of ``((?:[ \\t]*(?:\\r\\n?|\\n)(?:[ \\t]*>[ \\t]?)*)*)`` matched greedily
    at the start of ``text``: line breaks, the blanks before them, and the blockquote
    markers after them."""
    n = len(text)
    end = i = 0
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if text.startswith("\r\n", i):
            i += 2
        elif i < n and text[i] in "\r\n":
            i += 1
        else:
            return end
        end = i
        while True:  # blockquote markers: blanks, ">", at most one blank
            j = i
            while j < n and text[j] in " \t":
                j += 1
            if j == n or text[j] != ">":
                break
            i = j + 1
            if i < n and text[i] in " \t":
                i += 1
            end = i
        i = end


# -- LaTeX -------------------------------------------------------------------------------

# The library tests for LaTeX by looking for each of its ~500 symbols in the text; every
# symbol holds one of its one-character symbols, so one pass over the text does
# (test_render_hostile checks that this still holds for the installed library).
_LATEX_CHARS = frozenset(s for s in _LATEX_PROBE_SYMBOLS if len(s) == 1)


def _has_latex(content: str) -> bool:
    """The library's ``_contains_latex_symbols``."""
    return len(content) >= 5 and not _LATEX_CHARS.isdisjoint(content)


def _escape_latex(text: str, converted: set[str] | None = None) -> str:
    """The library's ``_escape_latex``: ``\\[...\\]`` and ``\\(...\\)`` that hold LaTeX
    become ``$$...$$`` and ``$...$`` math, converted to Unicode, within a paragraph.
    ``converted`` collects the math written, which is not to be converted again.

    The library's lazy regular expressions rescan the paragraph for every opening that
    has no closing after it (quadratic); here each opening is matched with ``find``.
    """
    if "\\[" not in text and "\\(" not in text:
        return text
    done = set[str]() if converted is None else converted
    return "\n\n".join(
        _latex_math(_latex_math(paragraph, "\\[", "\\]", done), "\\(", "\\)", done)
        for paragraph in text.split("\n\n")
    )


def _latex_math(text: str, opening: str, closing: str, converted: set[str]) -> str:
    pieces: list[str] = []
    done = 0
    while (start := text.find(opening, done)) != -1:
        end = text.find(closing, start + 2)
        if end == -1:
            break
        content = text[start + 2 : end]
        if _has_latex(content):
            if opening == "\\[":
                math = _display_unicode(content)
                pieces += (text[done:start], "$$", math, "$$")
            else:
                math = _inline_unicode(content)
                pieces += (text[done:start], "$", math, "$")
            converted.add(math)
        else:
            pieces.append(text[done : end + 2])
        done = end + 2
    pieces.append(text[done:])
    return "".join(pieces)


# What math (``$...$``, ``$$...$$``) needs to hold for converting it to change more than
# its spaces: a command, a group, a subscript or superscript.
_TEX_CHARS = frozenset("\\{^_")


def _is_tex(math: str) -> bool:
    return not _TEX_CHARS.isdisjoint(math)


def _inline_unicode(latex: str) -> str:
    """Inline math as one line of Unicode (a matrix as ``(a, b; c, d)``)."""
    return _to_unicode(latex).strip().strip("\n")


def _display_unicode(latex: str) -> str:
    """Display math as lines of Unicode: a matrix as rows in aligned columns, with what
    stands on its line beside its middle row."""
    return _dedent(_to_unicode(latex, display=True))


def _dedent(text: str) -> str:
    """``text`` without blank lines at its ends, trailing blanks, or the indentation that
    all its lines share."""
    lines = [line.rstrip() for line in text.strip("\n").rstrip().split("\n")]
    indent = min((len(line) - len(line.lstrip(" ")) for line in lines if line), default=0)
    return "\n".join(line[indent:] for line in lines)


class _BoundedLatex(LatexToUnicodeHelper):
    """The library's LaTeX converter, stopping (``_TooCostly``) when a command's result
    outgrows ``budget`` characters: ``\\sqrt{\\sqrt{...}}`` nests without end.

    Roots and fractions are written to be read on a line, ``√(b²-4ac)`` and ``(a+b)/(2a)``,
    not with combining overlines (the library's ``√b̅²̅-̅4̅a̅c̅``). In display math a matrix
    becomes rows in aligned columns between tall brackets; the converter returns it as
    one placeholder character (``_MATRIX_MARKS``) that ``layout`` replaces by its rows,
    with the text on the placeholder's line beside the middle one. Inline, and when that
    would outgrow the budget, a matrix is one line: ``(a, b; c, d)``.
    """

    def __init__(self, budget: int, display: bool = False) -> None:
        self._budget = budget
        self._room = budget  # for the rows of the matrices drawn
        self._display = display
        # Each matrix as one line, as drawn rows, and its cells when it has no brackets
        # of its own (to draw it between those around it, as \\left( ... \\right) are).
        self._matrices: list[tuple[str, list[str], list[list[str]] | None]] = []

    def handle_command(self, command: str, latex: str, index: int) -> tuple[str, int]:
        result: str
        if command == "\\sqrt":
            root: str
            radicand: str
            root, index = self.parse_optional(latex, index)  # type: ignore[no-untyped-call]
            radicand, index = self.parse_block(latex, index)  # type: ignore[no-untyped-call]
            result = _root(root.strip(), radicand.strip())
        else:
            result, index = super().handle_command(command, latex, index)  # type: ignore[no-untyped-call]
        if len(result) > self._budget:
            raise _TooCostly("LaTeX grows too much")
        return result, index

    @staticmethod
    def make_fraction(numerator: str, denominator: str) -> str:
        n, d = numerator.strip(), denominator.strip()
        if not n and not d:
            return ""
        vulgar: str | None = FRAC_MAP.get((n, d))
        if vulgar:
            return vulgar
        if not (_is_word(n) or _is_grouped(n)):
            n = f"({n})"
        if d and not (_is_atom(d) or _is_grouped(d)):
            d = f"({d})"
        return f"{n}/{d}"

    def _render_matrix(self, content: str, left: str, right: str, compact: bool = False) -> str:
        rows = [
            [self._cell(cell) for cell in row.split("&")]
            for row in content.split("\\\\")
            if row.strip()
        ]
        line = "; ".join(", ".join(row) for row in rows)
        line = f"{left}{line}{right}"
        if not rows or not self._display or compact or len(self._matrices) >= len(_MATRIX_MARKS):
            return line
        drawn = _draw_matrix(rows, left, right)
        size = sum(map(len, drawn)) + len(drawn)
        if size > self._room:
            return line
        self._room -= size
        self._matrices.append((line, drawn, None if left or right else rows))
        return _MATRIX_MARKS[len(self._matrices) - 1]

    def _cell(self, latex: str) -> str:
        cell: str = self.parse(latex.strip())  # type: ignore[no-untyped-call]
        if self._matrices and not _MATRIX_MARK_SET.isdisjoint(cell):
            cell = self.flat(cell)  # a matrix in a matrix: one line
        return " ".join(cell.split())

    def flat(self, text: str) -> str:
        """``text`` with its matrices on one line each."""
        return text.translate({ord(_MATRIX_MARKS[i]): m[0] for i, m in enumerate(self._matrices)})

    def _boxes(self, line: str) -> list[list[str]]:
        """The line's text and matrices, in turn: the text as one row, a matrix as its
        rows, within the brackets that stand around it if it has none of its own."""
        boxes: list[list[str]] = []
        piece_start = 0
        for i, ch in enumerate(line):
            if ch not in _MATRIX_MARK_SET:
                continue
            _, drawn, cells = self._matrices[ord(ch) - ord(_MATRIX_MARKS[0])]
            before = line[piece_start:i].rstrip(" ")
            after = len(line) - len(line[i + 1 :].lstrip(" "))  # where the text after starts
            if cells and before and after < len(line):
                closer = _CLOSERS.get(before[-1])
                if closer and line[after] == closer:  # (  matrix  ): as tall as it is
                    drawn = _draw_matrix(cells, before[-1], closer)
                    boxes += ([before[:-1]], drawn)
                    piece_start = after + 1
                    continue
            boxes += ([line[piece_start:i]], drawn)
            piece_start = i + 1
        boxes.append([line[piece_start:]])
        return boxes

    def layout(self, text: str) -> str:
        """``text`` with each matrix drawn as its rows: the other text on its line stands
        beside the middle row (``A = ⎛1  0⎞`` above ``    ⎝0  1⎠``). A line that would
        outgrow the budget keeps its matrices on one line."""
        if not self._matrices:
            return text
        lines: list[str] = []
        for line in text.split("\n"):
            if _MATRIX_MARK_SET.isdisjoint(line):
                lines.append(line)
                continue
            boxes = self._boxes(line)
            height = max(map(len, boxes))
            widths = [max(map(_width, box)) for box in boxes]
            size = height * (sum(widths) + 1)
            if size > self._room:
                lines.append(self.flat(line))
                continue
            self._room -= size
            middle = (height - 1) // 2
            rows: list[list[str]] = [[] for _ in range(height)]
            for box, width in zip(boxes, widths, strict=True):
                top = min(max(middle - (len(box) - 1) // 2, 0), height - len(box))
                for r, row in enumerate(rows):
                    piece = box[r - top] if top <= r < top + len(box) else ""
                    row.append(piece + " " * (width - _width(piece)))
            lines += ("".join(row).rstrip() for row in rows)
        return "\n".join(lines)


# Placeholders for the matrices of display math (private-use characters): math that
# holds any of them keeps its matrices on one line.
_MATRIX_MARKS = "".join(map(chr, range(0xE100, 0xE200)))
_MATRIX_MARK_SET = frozenset(_MATRIX_MARKS)
_CLOSERS = {"(": ")", "[": "]", "{": "}", "|": "|", "‖": "‖"}
# Brackets taller than a line, by the matrix's left bracket: top, middle, bottom and
# filling pieces of the left side, then of the right.
_TALL_BRACKETS = {
    "(": ("⎛", "⎜", "⎝", "⎜", "⎞", "⎟", "⎠", "⎟"),
    "[": ("⎡", "⎢", "⎣", "⎢", "⎤", "⎥", "⎦", "⎥"),
    "{": ("⎧", "⎨", "⎩", "⎪", "⎫", "⎬", "⎭", "⎪"),
}


def _draw_matrix(rows: list[list[str]], left: str, right: str) -> list[str]:
    """The rows of a matrix, its columns centred (as LaTeX does, rounding to the right, so
    that ``-1`` and ``1`` end together) two spaces apart, between brackets as tall as the
    matrix."""
    columns = max(map(len, rows))
    widths = [0] * columns
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], _width(cell))
    drawn: list[str] = []
    for row in rows:
        cells = []
        for i, width in enumerate(widths):
            cell = row[i] if i < len(row) else ""
            space = width - _width(cell)
            cells.append(" " * (space - space // 2) + cell + " " * (space // 2))
        drawn.append("  ".join(cells))
    pieces = _TALL_BRACKETS.get(left)
    if pieces is None or len(drawn) == 1:  # none, | and ‖ stack; one row needs no tall ones
        return [f"{left}{row}{right}" for row in drawn]
    top, middle, bottom, fill, right_top, right_middle, right_bottom, right_fill = pieces
    last = len(drawn) - 1
    sides = [(fill, right_fill)] * len(drawn)
    if left == "{" and last > 1:  # a brace points at its middle row
        sides[len(drawn) // 2] = (middle, right_middle)
    sides[0], sides[last] = (top, right_top), (bottom, right_bottom)
    return [f"{lt}{row}{rt}" for (lt, rt), row in zip(sides, drawn, strict=True)]


_ROOTS = {"": "√", "2": "√", "3": "∛", "4": "∜"}
_SCRIPTS = frozenset(SUPERSCRIPTS.values()) | frozenset(SUBSCRIPTS.values())


def _root(index: str, radicand: str) -> str:
    """``√x``, ``√2``, ``√(b²-4ac)``, ``∛(x+1)``."""
    radix = _ROOTS.get(index)
    if not radicand:
        return radix or "√"
    if radix is None:
        superscript = LatexToUnicodeHelper.try_make_superscript(index)  # type: ignore[no-untyped-call]
        radix = (superscript or f"({index})") + "√"
    if len(radicand) == 1 or radicand.isdigit() or _is_grouped(radicand):
        return radix + radicand
    return f"{radix}({radicand})"


def _is_word(text: str) -> bool:
    """Letters and digits only (``2a``, ``x²``): a numerator that needs no brackets."""
    return all(ch.isalnum() or ch == "_" or unicodedata.combining(ch) for ch in text)


def _is_atom(text: str) -> bool:
    """A number, or one symbol with its subscripts and superscripts (``x²``, ``a₁``):
    a denominator that needs no brackets."""
    if text.replace(".", "", 1).isdigit():
        return True
    return len(text) >= 1 and all(ch in _SCRIPTS or ch.isdigit() for ch in text[1:])


def _is_grouped(text: str) -> bool:
    """Whether ``text`` is in brackets that close at its end: ``(a+b)``, not ``(a)(b)``."""
    if len(text) < 2 or text[0] != "(" or text[-1] != ")":
        return False
    depth = 0
    for i, ch in enumerate(text):
        depth += 1 if ch == "(" else -1 if ch == ")" else 0
        if depth == 0:
            return i == len(text) - 1
    return False


def _width(text: str) -> int:
    """Columns ``text`` takes in a monospace font: wide (East Asian, most emoji) characters
    take two, combining marks and zero-width characters none."""
    if text.isascii():
        return len(text)
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or ch in _ZERO_WIDTH:
            continue
        width += 2 if unicodedata.east_asian_width(ch) in "WF" else 1
    return width


_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufe0e\ufe0f")


def _to_unicode(latex: str, display: bool = False) -> str:
    """LaTeX to Unicode by the library's converter (``_BoundedLatex``), or ``latex``
    itself when converting would cost too much (or fails, as the library's ``convert``
    does). In display math (``display``) a matrix is drawn in rows."""
    if len(latex) > _MAX_LATEX or _brace_depth(latex) > _MAX_LATEX_DEPTH:
        return latex
    display = display and "\\begin" in latex and _MATRIX_MARK_SET.isdisjoint(latex)
    converter = _BoundedLatex(_LATEX_GROWTH * len(latex) + 64, display)
    try:
        converted: str = converter.parse(latex)  # type: ignore[no-untyped-call]
        return converter.layout(converted)
    except (_TooCostly, RecursionError):
        return latex
    except Exception:
        log.debug("LaTeX conversion failed: %r", latex[:100], exc_info=True)
        return latex


def _brace_depth(text: str) -> int:
    """How deep ``{}`` and ``[]`` (``\\sqrt[n]``) nest in ``text``, or at most as many
    as it opens."""
    opened = text.count("{") + text.count("[")
    if opened <= _MAX_LATEX_DEPTH:
        return opened
    depth = deepest = 0
    for ch in text:
        if ch in "{[":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "}]":
            depth = max(depth - 1, 0)
    return deepest


# -- The walker --------------------------------------------------------------------------


class _Buffer(_TextBuffer):
    """The library's text buffer, counting the newlines at its end as it is written
    rather than scanning back for them (which made runs of empty blocks quadratic), and
    stopping the render (``_TooCostly``) past ``max_length`` characters."""

    __slots__ = ("_max_length", "_newlines", "_newlines_before")

    def __init__(self, max_length: int) -> None:
        super().__init__()
        self._max_length = max_length
        self._newlines = 0
        self._newlines_before = 0  # before the last write; -1 when unknown

    def write(self, text: str) -> None:
        super().write(text)
        if self.py_offset > self._max_length:
            raise _TooCostly("the rendered text grows out of proportion")
        self._newlines_before = self._newlines
        if text:
            body = text.rstrip("\n")
            self._newlines = len(text) - len(body) + (0 if body else self._newlines)

    def trailing_newline_count(self) -> int:
        return self._newlines

    def pop_last(self) -> str:
        part = super().pop_last()
        if part:
            before = self._newlines_before
            self._newlines = before if before >= 0 else super().trailing_newline_count()
            self._newlines_before = -1
        return part


class _Walker(EventWalker):
    """telegramify-markdown's event walker, except that raw HTML is kept as text, and
    that its output and its work stay in proportion to the text.

    The library drops HTML blocks and inline tags; a model that writes ``<script>`` or
    ``<br>`` means them as text, so they are shown as written. Nested list items indent
    only ``_MAX_INDENT`` levels deep, and an item that opens with a nested item (``- - x``)
    shares its line; a table that padding would blow up loses its alignment.

    Math goes into the table cell it stands in; footnote references become superscript
    numbers and their definitions ``¹ text`` where they stand; ``headings`` records where
    each heading is, for the splitter to keep it with what follows.
    """

    def __init__(
        self,
        config: RenderConfig,
        source: str,
        max_output: int,
        converted_math: frozenset[str] = frozenset(),
    ) -> None:
        super().__init__(config, source)
        self._converted_math = converted_math  # math the LaTeX preprocessing wrote
        self._buf = _Buffer(max_output)
        self._html: list[str] | None = None
        self._table_source = 0  # UTF-8 length of the table being read
        self._bare_item_end = -1  # where the last list marker ends
        self._footnotes: dict[str, int] = {}  # label -> number, in the order first seen
        self._footnote_end = -1  # where the last footnote reference ends
        self._footnote_paragraph = False  # a definition's first paragraph follows its number
        self.headings: list[_Span] = []  # [start, end) of each heading in the text
        self._heading_start = -1

    def walk(self, events: Iterable[Any]) -> tuple[str, list[Any], list[Any]]:
        """The library's ``walk``, taking the events as they come."""
        handle = self._handle_event
        for event in events:
            handle(event)
        return super().walk(())

    def _handle_event(self, event: Any) -> None:
        payload, source_range = event if isinstance(event, tuple) else (event, None)
        if isinstance(payload, dict):
            start = payload.get("Start")
            if start == "HtmlBlock":
                self._start_html_block(source_range)
                return
            if payload.get("End") == "HtmlBlock":
                self._end_html_block()
                return
            if "Html" in payload and self._html is not None:
                self._html.append(payload["Html"])
                return
            if isinstance(start, dict) and "Table" in start and source_range:
                self._table_source = source_range["end"] - source_range["start"]
            if self._footnote_paragraph and start != "Paragraph":
                self._footnote_paragraph = False
            if "FootnoteReference" in payload:
                self._on_footnote_reference(payload["FootnoteReference"])
                return
            if isinstance(start, dict) and "FootnoteDefinition" in start:
                self._on_footnote_definition(start["FootnoteDefinition"], source_range)
                return
        super()._handle_event(event)

    def _footnote_number(self, label: str) -> str:
        number = self._footnotes.setdefault(label, len(self._footnotes) + 1)
        return str(number).translate(_SUPERSCRIPT_DIGITS)

    def _on_footnote_reference(self, label: str) -> None:
        """A superscript number (``¹``), the footnotes numbered as first referenced;
        adjacent references are kept apart by a comma (``¹,²``)."""
        comma = "," if self._buf.py_offset == self._footnote_end else ""
        self._on_text(comma + self._footnote_number(label))
        self._footnote_end = self._buf.py_offset

    def _on_footnote_definition(self, label: str, source_range: dict[str, int] | None) -> None:
        """A footnote shows where it is defined (models put them at the end), as its
        number and then its text: ``¹ text``."""
        self._ensure_block_spacing(self._source_start(source_range))
        self._on_text(self._footnote_number(label) + " ")
        self._footnote_paragraph = True

    def _on_start_paragraph(self, source_start: int | None = None) -> None:
        if self._footnote_paragraph:  # on the line of its footnote's number
            self._footnote_paragraph = False
            return
        super()._on_start_paragraph(source_start)

    def _on_start_heading(
        self, heading_data: dict[str, Any], source_start: int | None = None
    ) -> None:
        super()._on_start_heading(heading_data, source_start)
        self._heading_start = self._buf.py_offset

    def _on_end_heading(self) -> None:
        if 0 <= self._heading_start < self._buf.py_offset:
            self.headings.append((self._heading_start, self._buf.py_offset))
        self._heading_start = -1
        super()._on_end_heading()

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

    def _on_start_item(self) -> None:
        """The library's bullet or number, indented at most ``_MAX_INDENT`` levels, and on
        the line of the enclosing item's marker when that item holds nothing else yet."""
        symbols = self._config.markdown_symbol
        if self._buf.py_offset and self._buf.py_offset == self._bare_item_end:
            indent = ""  # "- - x": the enclosing item holds nothing but its marker yet
        else:
            indent = "  " * min(len(self._list_stack) - 1, _MAX_INDENT)
            if self._buf.py_offset and not self._buf.trailing_newline_count():
                self._buf.write("\n")
        self._item_indent = indent
        number = self._list_stack[-1] if self._list_stack else None
        if number is None:
            self._buf.write(f"{indent}{symbols.unordered_list_item} ")
        else:
            self._buf.write(f"{indent}{number}{symbols.ordered_list_suffix} ")
            self._list_stack[-1] = number + 1
        self._bare_item_end = self._buf.py_offset

    def _pop_entity(self, entity_type: str) -> None:
        """Close the innermost open scope of this type among the top ``_POP_SEARCH``: the
        library searches the whole stack, which unclosed ``<tg-spoiler>`` tags grow."""
        stack = self._entity_stack
        for i in range(len(stack) - 1, max(len(stack) - _POP_SEARCH, 0) - 1, -1):
            if stack[i].entity_type == entity_type:
                self._finalize_entity(stack.pop(i))
                return

    def _format_table(self, rows: list[list[str]]) -> str:
        """The library's aligned columns, measured in the columns a monospace font gives
        each character (``_width``: a CJK character or an emoji takes two), unless padding
        every cell to its column's width would make the table far longer than its source
        (one wide cell, rows padded with empty cells): then the cells as they are,
        without empty ones at row ends."""
        if not rows:
            return ""
        sizes = [[_width(cell) for cell in row] for row in rows]
        widths = [0] * max(map(len, rows))
        for row_sizes in sizes:
            for i, size in enumerate(row_sizes):
                widths[i] = max(widths[i], size)
        drawn = len(rows) * (sum(widths) + 3 * len(widths))
        if drawn > _TABLE_GROWTH * self._table_source + _TABLE_SLACK:
            return "\n".join(" | ".join(_without_empty_tail(row)) for row in rows)
        lines = []
        for row, row_sizes in zip(rows, sizes, strict=True):
            cells = [
                row[i] + " " * (width - row_sizes[i]) if i < len(row) else " " * width
                for i, width in enumerate(widths)
            ]
            lines.append(" | ".join(cells).rstrip())
            if len(lines) == 1 and len(rows) > 1:  # the rule under the header
                lines.append("-+-".join("-" * width for width in widths))
        return "\n".join(lines)

    def _on_inline_math(self, math: str) -> None:
        """The library's, with the bounded LaTeX conversion (``_inline_unicode``), and in
        a table cell when it stands in one (the library wrote it before the table)."""
        converted = self._math(math, display=False)
        if self._in_table_cell:
            self._cell_parts.append(converted)
        else:
            self._write_entity("code", converted)

    def _on_display_math(self, math: str, source_range: dict[str, int] | None = None) -> None:
        """The library's, with the bounded LaTeX conversion (``_display_unicode``: a matrix
        in rows), and on one line in a table cell."""
        if self._in_table_cell:
            self._cell_parts.append(" ".join(self._math(math, display=False).split()))
            return
        converted = self._math(math, display=True)
        self._ensure_block_spacing(self._source_start(source_range))
        self._write_entity("pre", converted)
        self._mark_block_end()

    def _math(self, math: str, display: bool) -> str:
        if math in self._converted_math:  # \(...\) or \[...\], converted already
            return math
        if not _is_tex(math):
            return _dedent(math) if display else math
        return _display_unicode(math) if display else _inline_unicode(math)

    def _write_entity(self, kind: str, text: str) -> None:
        start = self._buf.utf16_offset
        self._buf.write(text)
        length = self._buf.utf16_offset - start
        if length > 0:
            self._entities.append(_LibraryEntity(type=kind, offset=start, length=length))


def _without_empty_tail(row: list[str]) -> list[str]:
    end = len(row)
    while end and not row[end - 1]:
        end -= 1
    return row[:end]


@dataclass(frozen=True, slots=True)
class _Entity:
    """A library entity after clean-up: offsets in UTF-16 units of the whole text."""

    type: str
    offset: int
    length: int
    url: str | None = None
    language: str | None = None


def _clean_entities(entities: list[Any]) -> list[_Entity]:
    """Keep what Telegram accepts, sorted outer-first and properly nested."""
    kept: list[_Entity] = []
    for e in entities:
        url = language = None
        if e.type == "custom_emoji":  # a bot may not send custom emoji
            continue
        if e.type == "text_link":
            url = safe_url(e.url or "")
            if url is None:
                continue
        if e.type == "pre":
            language = safe_language(e.language or "")
        kept.append(_Entity(e.type, e.offset, e.length, url, language))
    return _without_nested_quotes(_nested(kept))


def _nested(entities: list[_Entity]) -> list[_Entity]:
    """Sort outer-first and split every entity that crosses another, so that any two are
    nested or apart: Telegram refuses crossing entities. (The library's ``||spoiler||``
    is inline HTML, not a node of the Markdown tree, so it can cross emphasis.)

    At most as many pieces are added as there were entities; past that, the rest of an
    entity that crosses its container is dropped.
    """
    heap = [(e.offset, -e.length, i, e) for i, e in enumerate(entities)]
    heapify(heap)
    spare = len(entities)
    result: list[_Entity] = []
    ends: list[int] = []  # ends of the entities that contain the current one, innermost last
    while heap:
        offset, _, i, e = heappop(heap)
        while ends and ends[-1] <= offset:
            ends.pop()
        end = offset + e.length
        if ends and ends[-1] < end:  # crosses its container: the rest comes later
            cut = ends[-1]
            if spare:
                spare -= 1
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


def safe_url(url: str) -> str | None:
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


def safe_language(info: str) -> str | None:
    """The first word of a code fence's info string, if it looks like a language name."""
    words = info.split()
    if not words:
        return None
    word = words[0]
    return word if len(word) <= 32 and set(word.lower()) <= _LANGUAGE_CHARS else None


def _entities_by_part(
    entities: list[_Entity], bounds: list[tuple[int, int]]
) -> list[list[MessageEntity]]:
    """For each part's [start, end) in UTF-16 units, in order: the entities clipped to it
    and re-based to its start, the first ``MAX_ENTITIES`` of them (outer-first).

    Splitting keeps a part under ``MAX_ENTITIES`` where it can; the cap here is the guard
    where it cannot (more than that many entities overlapping one cut, or a part that
    may not end early). One sweep: the entities around a part's start are a chain of
    nested ones, kept on a stack.
    """
    result: list[list[MessageEntity]] = []
    around: list[_Entity] = []  # entities that contain the sweep's position, outermost first
    k = 0
    for start, end in bounds:
        while k < len(entities) and entities[k].offset < start:
            e = entities[k]
            while around and around[-1].offset + around[-1].length <= e.offset:
                around.pop()
            around.append(e)
            k += 1
        while around and around[-1].offset + around[-1].length <= start:
            around.pop()
        chosen = around[:MAX_ENTITIES]
        j = k
        while j < len(entities) and entities[j].offset < end and len(chosen) < MAX_ENTITIES:
            chosen.append(entities[j])
            j += 1
        result.append(
            [
                MessageEntity(
                    type=e.type,
                    offset=max(e.offset, start) - start,
                    length=min(e.offset + e.length, end) - max(e.offset, start),
                    url=e.url,
                    language=e.language,
                )
                for e in chosen
            ]
        )
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

    def py_after(self, u: int) -> int:
        """The smallest Python index whose UTF-16 offset is at least ``u``."""
        i = self.py(u)
        return i if self.u16(i) >= u else i + 1


def _split(
    text: str,
    index: _Utf16Index,
    limit: int,
    protected: Sequence[_Span] = (),
    spans: Sequence[_Span] = (),
    headings: Sequence[_Span] = (),
) -> list[_Span]:
    """[start, end) Python index ranges of the parts: each non-blank, at most ``limit`` long.

    Only whitespace between parts is dropped. ``protected`` ranges (code blocks that fit
    in one message) are not cut. ``spans`` are the entities, sorted outer-first and
    nested: a part ends early rather than hold more than ``MAX_ENTITIES`` of them.
    ``headings`` (where they are, in order) move to the next part rather than end one
    (``_before_headings``).

    A part other than the last holds at least a quarter of the limit (counting the
    whitespace dropped after it), unless it ends where a code block that fits begins (the
    next part then holds the block whole, three quarters of the limit or more), or it is
    one of the ``_SHORT_PARTS_FOR_ENTITIES`` parts of an answer that may end earlier to
    keep their entities. Past those, a part that would need to be shorter holds more
    than ``MAX_ENTITIES``, and the last ones are dropped.
    """
    minimum = max(1, limit // _MIN_PART_SHARE)
    ranges: list[_Span] = []
    n = len(text)
    around: list[int] = []  # ends of the spans that contain the part's start, outermost first
    first = 0  # spans[first:] start at or after the part's start
    short = _SHORT_PARTS_FOR_ENTITIES
    start = _next_start(text, 0)
    while start < n:
        at = index.u16(start)
        hi = min(index.py(at + limit), n)  # the part is text[start:end <= hi]
        lo = start + 1
        while lo < hi and text[lo - 1].isspace():
            lo += 1  # the part must hold something visible
        floor = min(max(lo, index.py_after(at + minimum)), hi)  # and be long enough
        while first < len(spans) and spans[first][0] < start:
            while around and around[-1] <= spans[first][0]:
                around.pop()
            around.append(spans[first][1])
            first += 1
        while around and around[-1] <= start:
            around.pop()
        room = MAX_ENTITIES - len(around)
        if room > 0 and first + room < len(spans):  # the part has no room for them all
            budget = spans[first + room][0]  # where the first entity without room starts
            if floor <= budget < hi:
                hi = budget
            elif lo <= budget < floor and short:  # a short part, a few times an answer
                hi, floor, short = budget, lo, short - 1
        end = n if hi == n else _cut(text, lo, floor, hi, protected)
        if headings and end < n:
            end = _before_headings(text, index, limit, end, floor, headings, protected)
        piece = text[start:end].rstrip()
        if any(not ch.isspace() and ch not in _STRIPPED_MARKS for ch in piece):
            ranges.append((start, start + len(piece)))
        start = _next_start(text, end, min(floor, end))
    return ranges


def _before_headings(
    text: str,
    index: _Utf16Index,
    limit: int,
    end: int,
    floor: int,
    headings: Sequence[_Span],
    protected: Sequence[_Span],
) -> int:
    """Where a part that would end at ``end`` with a heading (or up to
    ``_HEADINGS_IN_A_ROW`` in a row) ends instead: before it, so that the heading starts
    the next part with what follows it, when this part stays long enough (``floor``)
    and the next one holds the heading and the start of what follows (the first word;
    all of a code block that fits)."""
    n = len(text)
    k = bisect_left(headings, (end,)) - 1  # the last heading that starts before the cut
    moved = end
    for _ in range(_HEADINGS_IN_A_ROW):
        if k < 0:
            break
        start, stop = headings[k]
        if stop > moved or start < floor or (stop < moved and not text[stop:moved].isspace()):
            break
        moved, k = start, k - 1
    if moved == end:
        return end
    follow = end
    while follow < n and text[follow].isspace():
        follow += 1
    block = _protected_at(protected, follow + 1)
    if block is not None and block[0] == follow:
        reach = block[1]
    else:
        reach = follow
        while reach < n and reach - follow < _FIRST_WORD and not text[reach].isspace():
            reach += 1
    return moved if index.u16(reach) - index.u16(moved) <= limit else end


def _next_start(text: str, i: int, earliest: int = 0) -> int:
    """Where the next part starts: past the whitespace at ``i``, keeping the indentation
    of its first line (code must keep it; Telegram keeps spaces at the start of a
    ``pre``) when that line starts at ``earliest`` or later (the part before must not
    end too early), as a cut in the indentation can leave it."""
    n = len(text)
    j = i
    while j < n and text[j].isspace():
        j += 1
    if j == n:
        return j
    newline = text.rfind("\n", i, j)
    if newline != -1:
        return newline + 1
    k = i
    while k > earliest and text[k - 1] in " \t":
        k -= 1
    return k if k == 0 or text[k - 1] == "\n" else j


def _cut(text: str, lo: int, floor: int, hi: int, protected: Sequence[_Span]) -> int:
    """Where a part ends, somewhere in [floor, hi], when the rest of the text does not fit.

    Prefers a paragraph break, then a line break, then a space, in the second half of the
    window, then anywhere past ``floor``; cuts a word only when there is no such boundary,
    and then not between a letter and its accent (or inside an emoji sequence) unless the
    whole window is one such cluster. A code block that fits starts its own part even
    when that leaves this part short (but holding something visible: past ``lo``).
    """
    for start in (max((lo + hi) // 2, floor), floor):
        for separator in (_PARAGRAPH, _LINE, _WORD):
            cut = _last_outside(text, separator, start, hi, protected)
            if cut is not None:
                return cut
    block = _protected_at(protected, hi)
    if block is not None and block[0] >= lo:
        return block[0]
    cut = hi
    while cut > floor and _joins_previous(text, cut):
        cut -= 1  # don't break a letter from its accent or an emoji sequence
    if _joins_previous(text, cut):
        return hi  # a window of combining marks: cut between them, and keep going
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
