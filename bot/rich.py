"""Model answers (Markdown) as Telegram rich messages (Bot API 10.1), built as explicit
``blocks`` of aiogram objects: never the ``markdown``/``html`` fields, so we know each
message's exact size before sending it, and the models' Markdown (CommonMark, GFM tables,
``$`` math) is read by a real parser (``bot.markdown``), not by Telegram's dialect.

What maps to what: headings → ``heading`` (size = level); paragraphs → ``paragraph``
with bold, italic, strikethrough, inline code, links (http(s) only; other links show
their text), inline formulas and footnote marks (superscript numbers, by first
reference); lists → ``list`` (ordered items carry their number, task items a
checkbox); code → ``pre`` with its language; quotes → ``blockquote``; GFM tables →
``table`` (header cells marked, alignment kept, cells aligned to the top; a table wider
than ``MAX_COLUMNS`` is a ``pre`` of aligned columns); display math →
``mathematical_expression``; ``---`` → ``divider``; footnote definitions → a last
section after a divider. Soft line breaks are kept as line breaks (models write single
newlines as such). Raw HTML and anything else stays readable text. Nothing nests deeper
than ``MAX_DEPTH`` (the deeper levels are flattened into the deepest one); no block is
empty.

``split`` cuts an answer into messages within every limit, between top-level blocks
where it can: a table too long for a message goes by rows with its header repeated, a
list by items, code by lines (each piece keeps the language), text by sentences or
words; a heading waits for the next message with what follows it. ``RichStream`` does
the same for an answer as it grows, cheaply; its ``feed(text, final=True)`` is the whole
answer (until then the block being written may still change, and a table row without
its line break is left out).

The modules behind this one: ``rich_core`` (limits, measuring), ``rich_build`` (tokens
to blocks), ``rich_split`` (cutting and packing), ``rich_stream``.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from aiogram.types import (
    InputRichBlockDetails,
    InputRichBlockParagraph,
    InputRichBlockThinking,
    MessageEntity,
    RichTextBold,
    RichTextCode,
    RichTextItalic,
    RichTextSpoiler,
    RichTextStrikethrough,
    RichTextUnderline,
    RichTextUrl,
)
from pydantic import BaseModel

from bot.markdown import parse_tokens
from bot.rich_build import build, safe_url
from bot.rich_core import (
    MAX_BLOCKS,
    MAX_CHARS,
    MAX_COLUMNS,
    MAX_DEPTH,
    Block,
    RichPart,
    clean,
    measure,
    new,
    plain_text,
    utf16_len,
)
from bot.rich_split import (
    Entry,
    Packed,
    Run,
    Size,
    entries_of,
    line_starts,
    notes_entries,
    pack,
    rebuild,
)
from bot.rich_stream import RichStream, check_blocks

__all__ = [
    "MAX_BLOCKS",
    "MAX_CHARS",
    "MAX_COLUMNS",
    "MAX_DEPTH",
    "Block",
    "RichPart",
    "RichStream",
    "details",
    "measure",
    "paragraph",
    "plain_text",
    "split",
    "thinking",
    "to_blocks",
]

ELLIPSIS = "…"
# What a details block of reasoning may use of a message's 500 blocks.
_DETAILS_BLOCKS = MAX_BLOCKS // 4
_ENTITY_WRAPPERS: dict[str, type[BaseModel]] = {
    "bold": RichTextBold,
    "italic": RichTextItalic,
    "underline": RichTextUnderline,
    "strikethrough": RichTextStrikethrough,
    "spoiler": RichTextSpoiler,
    "code": RichTextCode,
    "pre": RichTextCode,
}


def _entries(markdown: str, depth: int = 1) -> list[Entry]:
    text = clean(markdown)
    numbers: dict[str, int] = {}
    tops, notes = build(parse_tokens(text), depth=depth, numbers=numbers)
    starts = line_starts(text)
    entries = entries_of(tops, starts)
    entries.extend(notes_entries([(starts[note.start], note) for note in notes], numbers))
    return entries


def to_blocks(markdown: str) -> list[Block]:
    """The answer's top-level blocks (one parse; footnotes last), not split."""
    return [entry.block for entry in _entries(markdown)]


def split(
    markdown: str,
    *,
    first: Sequence[Block] = (),
    last: Sequence[Block] = (),
    limit: int = MAX_CHARS,
) -> list[RichPart]:
    """The whole answer as messages, each within ``limit`` chars and the other limits.

    ``first`` blocks (a header, a collapsed reasoning block) open the first message,
    ``last`` blocks (a footer) close the last one, or go in a message of their own when
    they don't fit there. An answer with nothing visible is no messages, or one of
    ``first`` and ``last`` when there are any."""
    first_size = check_blocks(first, limit)
    last_size = check_blocks(last, limit)
    entries = _entries(markdown)
    if not any(entry.size[0] for entry in entries):
        entries = []
    packed = pack(entries, (), first=first, first_size=first_size, limit=limit)
    if not entries and first:
        packed = [Packed(list(first), first_size, None)]
    if last:
        tail = packed[-1] if packed else None
        size: Size = (
            (last_size[0] + tail.size[0], last_size[1] + tail.size[1]) if tail else last_size
        )
        if tail is not None and size[0] <= limit and size[1] <= MAX_BLOCKS:
            packed[-1] = Packed([*tail.blocks, *last], size, None)
        else:
            packed.append(Packed(list(last), last_size, None))
    parts: list[RichPart] = []
    source_end = 0
    for index, part in enumerate(packed):
        end: int | None = None
        if index < len(packed) - 1:
            here = len(markdown)
            if part.end is not None:
                entry = entries[part.end[0] if part.end else 0]
                here = entry.source_at(part.end[1:], limit)
            source_end = end = max(source_end, here)
        parts.append(RichPart(tuple(part.blocks), part.size[0], part.size[1], end))
    return parts


def paragraph(text: str, entities: Sequence[MessageEntity] = ()) -> InputRichBlockParagraph:
    """A text with Telegram entities (UTF-16 offsets) as one rich paragraph: bold,
    italic, underline, strikethrough, spoiler, code and pre (as code), text links;
    other entities are plain text. Entities that cross are cut to nest. Whitespace
    around the text (a header's trailing newline) is left out."""
    text = clean(text)
    py = _py_index(text)
    spans: list[tuple[int, int, int, BaseModel]] = []
    for n, entity in enumerate(entities):
        wrapper: BaseModel | None = None
        if entity.type == "text_link":
            url = safe_url(entity.url or "")
            if url is not None:
                wrapper = new(RichTextUrl, text="", url=url)
        elif entity.type in _ENTITY_WRAPPERS:
            wrapper = new(_ENTITY_WRAPPERS[entity.type], text="")
        start = py[min(max(entity.offset, 0), len(py) - 1)]
        end = py[min(max(entity.offset + entity.length, 0), len(py) - 1)]
        if wrapper is not None and start < end:
            spans.append((start, -end, n, wrapper))
    spans.sort(key=lambda span: span[:3])
    lo = len(text) - len(text.lstrip())
    hi = len(text.rstrip())
    if lo >= hi:
        return new(InputRichBlockParagraph, text=ELLIPSIS)
    edges = (p for s, e, _, _ in spans for p in (s, -e))
    bounds = sorted({lo, hi, *(min(max(p, lo), hi) for p in edges)})
    runs = [
        Run(
            text[a:b],
            tuple(wrapper for s, e, _, wrapper in spans if s <= a and -e >= b),
        )
        for a, b in pairwise(bounds)
        if a < b
    ]
    return new(InputRichBlockParagraph, text=rebuild(runs))


def _py_index(text: str) -> list[int]:
    """For each UTF-16 offset into ``text`` (and its end), the Python index there (the
    middle of a surrogate pair maps to the character's end)."""
    out: list[int] = []
    for i, ch in enumerate(text):
        out.append(i)
        if ord(ch) > 0xFFFF:
            out.append(i + 1)
    out.append(len(text))
    return out


def details(summary: str, markdown: str, *, max_chars: int = 4_000) -> InputRichBlockDetails:
    """A collapsed block: ``summary`` ("Thought for 12 s") over ``markdown`` (a model's
    reasoning) as blocks. Reasoning longer than ``max_chars`` keeps its end, from a block
    boundary, after a "…"."""
    entries = _entries(markdown, depth=2)
    budget: Size = (max(max_chars, 2), _DETAILS_BLOCKS)
    total = (sum(e.size[0] for e in entries), sum(e.size[1] for e in entries))
    blocks: list[Block]
    if total[0] <= budget[0] and total[1] <= budget[1]:
        blocks = [e.block for e in entries]
    else:
        kept: list[Block] = []
        used: Size = (len(ELLIPSIS), 1)
        for entry in reversed(entries):
            size = (used[0] + entry.size[0], used[1] + entry.size[1])
            if size[0] > budget[0] or size[1] > budget[1]:
                break
            kept.append(entry.block)
            used = size
        kept.reverse()
        if kept:
            blocks = [new(InputRichBlockParagraph, text=ELLIPSIS), *kept]
        else:  # the last block alone is too long: the end of its text
            tail = _tail(plain_text([entries[-1].block]), budget[0] - len(ELLIPSIS))
            blocks = [new(InputRichBlockParagraph, text=ELLIPSIS + tail)]
    if not blocks:
        blocks = [new(InputRichBlockParagraph, text=ELLIPSIS)]
    title = " ".join(clean(summary).split()) or ELLIPSIS
    return new(InputRichBlockDetails, summary=title, blocks=blocks)


def thinking(text: str, *, max_chars: int = 1_000) -> InputRichBlockThinking:
    """The live reasoning for a draft: plain text, its last ``max_chars`` (from the
    start of a line or word, after a "…")."""
    text = clean(text).strip()
    if utf16_len(text) > max_chars:
        text = ELLIPSIS + _tail(text, max(max_chars, 2) - len(ELLIPSIS))
    return new(InputRichBlockThinking, text=text or ELLIPSIS)


def _tail(text: str, room: int) -> str:
    """The end of ``text`` within ``room`` UTF-16 units, from a line's or word's start
    when one is in its first half."""
    text = text.rstrip()
    start = len(text)
    units = 0
    while start > 0:
        add = 2 if ord(text[start - 1]) > 0xFFFF else 1
        if units + add > room:
            break
        units += add
        start -= 1
    if start == 0:
        return text
    half = start + (len(text) - start) // 2
    line = text.find("\n", start - 1, half)
    if line >= 0:
        return text[line + 1 :].lstrip()
    for i in range(start, half):
        if text[i - 1].isspace() and not text[i].isspace():
            return text[i:]
    return text[start:]
