"""Cutting rich blocks into messages that fit Telegram's limits.

Positions inside an answer are cursors: tuples of indices, outermost first. At the top
level ``(i, *sub)`` is top-level block ``i`` from position ``sub`` inside it; inside a
block the first index counts its units (a list's items, a table's body rows, a code
block's lines, the blocks of a quote or details; a text block's position is a character
offset), the rest go further in. ``()`` is a block's start. Cursors never end in a 0, so
equal positions are equal tuples, and an earlier position is a smaller tuple: a stream
compares where a part ends with how much of the answer can no longer change.

``cut(block, cursor, room, full, fresh)`` takes from ``cursor`` on what fits ``room``
(chars, count): the pieces, their size and the cursor of the rest (None: no rest).
``full`` is the room a piece of this block would have in an empty message; ``fresh``
says the message is empty, so something must be taken however little fits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiogram.types import (
    InputRichBlockDivider,
    InputRichBlockList,
    InputRichBlockListItem,
    InputRichBlockMathematicalExpression,
    InputRichBlockParagraph,
    InputRichBlockPreformatted,
    InputRichBlockSectionHeading,
    InputRichBlockTable,
    RichBlockTableCell,
    RichTextMathematicalExpression,
)

from bot.rich_build import Footnote, Top, footnote_section, join_text
from bot.rich_core import MAX_BLOCKS, Block, block_size, new, text_len, utf16_len

__all__ = [
    "INFINITE",
    "Cursor",
    "Entry",
    "Packed",
    "Run",
    "Size",
    "cut",
    "entries_of",
    "line_starts",
    "notes_entries",
    "pack",
    "rebuild",
    "rest",
    "size_of",
    "table_units",
]

Size = tuple[int, int]  # (chars, count)
Cursor = tuple[int, ...]
INFINITE: Size = (1 << 62, 1 << 62)
_ZERO: Size = (0, 0)
_SENTENCE_END = re.compile(r"[.!?…:;](?=\s)|\n")
_Pieces = tuple[list[Block], Size, Cursor | None]


def _norm(cursor: Cursor) -> Cursor:
    end = len(cursor)
    while end and cursor[end - 1] == 0:
        end -= 1
    return cursor[:end]


def _at(cursor: Cursor) -> tuple[int, Cursor]:
    return (cursor[0], cursor[1:]) if cursor else (0, ())


def _fits(size: Size, room: Size) -> bool:
    return size[0] <= room[0] and size[1] <= room[1]


def _less(room: Size, size: Size) -> Size:
    return room[0] - size[0], room[1] - size[1]


def _plus(a: Size, b: Size) -> Size:
    return a[0] + b[0], a[1] + b[1]


def size_of(block: Block) -> Size:
    chars, count, _ = block_size(block)
    return chars, count


def rest(block: Block, cursor: Cursor, full: Size) -> tuple[list[Block], Size]:
    """What is left of ``block`` from ``cursor`` on, and its size (``full`` as for
    ``cut``: how a block is cut may depend on the room of a message)."""
    if not cursor:
        return [block], size_of(block)
    out: list[Block] = []
    size = _ZERO
    at: Cursor | None = cursor
    while at is not None:  # (a table row too long for a message ends a piece early)
        pieces, psize, after = cut(block, at, INFINITE, full, True)
        out.extend(pieces)
        size = _plus(size, psize)
        if after == at:
            break
        at = after
    return out, size


def rest_blocks(blocks: Sequence[Block], cursor: Cursor, full: Size) -> tuple[list[Block], Size]:
    """What is left of a sequence of blocks from ``cursor`` on, and its size."""
    i, sub = _at(cursor)
    out: list[Block] = []
    size = _ZERO
    for index in range(i, len(blocks)):
        pieces, psize = rest(blocks[index], sub if index == i else (), full)
        out.extend(pieces)
        size = _plus(size, psize)
    return out, size


def cut_blocks(
    blocks: Sequence[Block], cursor: Cursor, room: Size, full: Size, fresh: bool
) -> _Pieces:
    """``cut`` for a sequence of blocks (the blocks of a list item, quote or details)."""
    i, sub = _at(cursor)
    head: list[Block] = []
    used = _ZERO
    while i < len(blocks):
        whole, size = rest(blocks[i], sub, full)
        left = _less(room, used)
        if _fits(size, left):
            head.extend(whole)
            used = _plus(used, size)
            i, sub = i + 1, ()
            continue
        now_fresh = fresh and not head
        if not now_fresh and _fits(size, full):
            return head, used, _norm((i, *sub))
        pieces, psize, nxt = cut(blocks[i], sub, left, full, now_fresh)
        head.extend(pieces)
        used = _plus(used, psize)
        if nxt is None:
            i, sub = i + 1, ()
            continue
        if nxt == sub and not pieces:
            return head, used, _norm((i, *sub))
        return head, used, _norm((i, *nxt))
    return head, used, None


def cut(block: Block, cursor: Cursor, room: Size, full: Size, fresh: bool) -> _Pieces:
    """The pieces of ``block`` from ``cursor`` that fit ``room`` (see the module)."""
    if isinstance(block, InputRichBlockTable):
        return _cut_table(block, cursor, room, full, fresh)
    if isinstance(block, InputRichBlockList):
        return _cut_list(block, cursor, room, full, fresh)
    if isinstance(block, InputRichBlockPreformatted):
        return _cut_pre(block, cursor, room, fresh)
    if isinstance(block, InputRichBlockMathematicalExpression):
        if not cursor and _fits((utf16_len(block.expression), 1), room):
            return [block], (utf16_len(block.expression), 1), None
        pre = new(InputRichBlockPreformatted, text=block.expression, language="latex")
        return _cut_pre(pre, cursor, room, fresh)
    inner = getattr(block, "blocks", None)
    if isinstance(inner, list):
        return _cut_container(block, inner, cursor, room, full, fresh)
    if getattr(block, "text", None) is not None:
        return _cut_text(block, cursor, room, full, fresh)
    size = size_of(block)
    if cursor:
        return [], _ZERO, None
    if not fresh and not _fits(size, room):
        return [], _ZERO, ()
    return [block], size, None  # a block that cannot be cut goes whole


def _cut_container(
    block: Block, inner: list[Block], cursor: Cursor, room: Size, full: Size, fresh: bool
) -> _Pieces:
    own = size_of(block)  # (the container's own: its count and a summary's or credit's chars)
    for child in inner:
        own = _less(own, size_of(child))
    head, used, nxt = cut_blocks(inner, cursor, _less(room, own), _less(full, own), fresh)
    if not head:
        return [], _ZERO, _norm(cursor) if nxt is not None else None
    return [block.model_copy(update={"blocks": head})], _plus(used, own), nxt


def _cut_list(
    block: InputRichBlockList, cursor: Cursor, room: Size, full: Size, fresh: bool
) -> _Pieces:
    items = block.items
    k, sub = _at(cursor)
    out: list[InputRichBlockListItem] = []
    used: Size = (0, 1)  # the list itself
    item_full = _less(full, (0, 2))  # the room of one item's blocks in an empty message
    nxt: Cursor | None = None
    while k < len(items):
        item = items[k]
        if sub:
            blocks, bsize = rest_blocks(item.blocks, sub, item_full)
        else:
            blocks, bsize = item.blocks, _ZERO
            for child in blocks:
                bsize = _plus(bsize, size_of(child))
        size = _plus(bsize, (0, 1))
        left = _less(room, used)
        if _fits(size, left):
            out.append(_item(item, blocks, bool(sub)))
            used = _plus(used, size)
            k, sub = k + 1, ()
            continue
        now_fresh = fresh and not out
        if not now_fresh and _fits(bsize, item_full):
            nxt = _norm((k, *sub))
            break
        head, hsize, inner = cut_blocks(item.blocks, sub, _less(left, (0, 1)), item_full, now_fresh)
        if head:
            out.append(_item(item, head, bool(sub)))
            used = _plus(used, _plus(hsize, (0, 1)))
        nxt = _norm((k, *inner)) if inner is not None else _norm((k + 1,))
        if k + 1 >= len(items) and inner is None:
            nxt = None
        break
    if not out:
        return [], _ZERO, nxt
    return [block.model_copy(update={"items": out})], used, nxt


def _item(
    item: InputRichBlockListItem, blocks: list[Block], continued: bool
) -> InputRichBlockListItem:
    if not continued and blocks is item.blocks:
        return item
    update: dict[str, Any] = {"blocks": blocks}
    if continued:  # the rest of an item: its checkbox was shown with its start
        update.update(has_checkbox=None, is_checked=None)
    return item.model_copy(update=update)


def _row_size(row: list[RichBlockTableCell]) -> Size:
    return sum(text_len(cell.text) for cell in row if cell.text is not None), 1


def _table_layout(
    block: InputRichBlockTable, full: Size
) -> tuple[list[list[RichBlockTableCell]], list[list[RichBlockTableCell]], Size]:
    """The header row repeated in each piece (if any), the rows cut, and the size of a
    piece without rows."""
    cells = block.cells
    own: Size = (text_len(block.caption) if block.caption is not None else 0, 1)
    if len(cells) < 2 or not cells[0] or not cells[0][0].is_header:
        return [], cells, own
    over = _plus(own, _row_size(cells[0]))
    # A header that leaves little room for rows is not repeated: it is a row too.
    if over[0] * 2 > full[0]:
        return [], cells, own
    return cells[:1], cells[1:], over


def table_units(block: InputRichBlockTable, limit: int) -> int:
    """How many rows of a top-level table are cut apart (its header repeated aside)."""
    return len(_table_layout(block, (limit, MAX_BLOCKS))[1])


def _cut_table(
    block: InputRichBlockTable, cursor: Cursor, room: Size, full: Size, fresh: bool
) -> _Pieces:
    header, body, over = _table_layout(block, full)
    k, sub = _at(cursor)
    rows: list[list[RichBlockTableCell]] = []
    used = over
    while k < len(body):
        row = body[k]
        if not sub:
            size = _row_size(row)
            if _fits(_plus(used, size), room):
                rows.append(row)
                used = _plus(used, size)
                k += 1
                continue
            if rows:
                break
            if not fresh:
                return [], _ZERO, _norm((k,))
        # A row too big for a message of its own: its cells as paragraphs (after the
        # header, if it has not been shown).
        paragraphs: list[Block] = [
            new(InputRichBlockParagraph, text=cell.text) for cell in row if cell.text is not None
        ]
        head: list[Block] = []
        used = _ZERO
        if header and k == 0 and not sub:
            head, used = [block.model_copy(update={"cells": header})], over
        pieces, psize, inner = cut_blocks(
            paragraphs, sub, _less(room, used), _less(full, used), fresh
        )
        head.extend(pieces)
        used = _plus(used, psize)
        if inner is not None:
            return head, used, _norm((k, *inner))
        k += 1
        return head, used, _norm((k,)) if k < len(body) else None
    nxt = _norm((k,)) if k < len(body) else None
    if not rows:
        return [], _ZERO, nxt
    return [block.model_copy(update={"cells": header + rows})], used, nxt


def _cut_pre(block: InputRichBlockPreformatted, cursor: Cursor, room: Size, fresh: bool) -> _Pieces:
    text = block.text if isinstance(block.text, str) else _plain(block.text)
    lines = text.split("\n")
    k, sub = _at(cursor)
    offset = sub[0] if sub else 0
    if k or offset:  # a continuation starts at a line that shows something
        while offset == 0 and k < len(lines) and not lines[k].strip():
            k += 1
    if k >= len(lines):
        return [], _ZERO, None
    here = _norm((k, offset))
    if room[1] < 1 and not fresh:
        return [], _ZERO, here
    taken: list[str] = []
    chars = 0
    nxt: Cursor | None = None
    while k < len(lines):
        line = lines[k][offset:]
        add = utf16_len(line) + (1 if taken else 0)
        if chars + add <= room[0]:
            taken.append(line)
            chars += add
            k, offset = k + 1, 0
            continue
        if taken:
            nxt = _norm((k,))
            break
        if not fresh:
            return [], _ZERO, here
        end = _fit_index(line, room[0], prefer_space=True)  # a line too long for a message
        taken.append(line[:end])
        chars += utf16_len(line[:end])
        nxt = _norm((k, offset + end))
        break
    while taken and not taken[-1].strip():
        chars -= utf16_len(taken.pop()) + (1 if taken else 0)
    if not taken:
        return [], _ZERO, nxt
    return [block.model_copy(update={"text": "\n".join(taken)})], (chars, 1), nxt


def _fit_index(s: str, room: int, *, prefer_space: bool) -> int:
    """The longest prefix of ``s`` within ``room`` UTF-16 units (at least one character),
    ended at a space when one is in its second half."""
    units = 0
    end = 0
    for ch in s:
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > room:
            break
        end += 1
    end = max(end, 1)
    if prefer_space and end < len(s):
        space = s.rfind(" ", 0, end)
        if space > end // 2:
            return space + 1
    return end


# --- Text blocks ---------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """A stretch of a rich text under one chain of wrappers (outermost first); a formula
    is a run of its own that is never cut."""

    text: str
    wrappers: tuple[Any, ...]
    atom: Any = None


def _runs(text: Any, wrappers: tuple[Any, ...], out: list[Run]) -> None:
    if isinstance(text, str):
        if text:
            out.append(Run(text, wrappers))
    elif isinstance(text, list):
        for part in text:
            _runs(part, wrappers, out)
    elif isinstance(text, RichTextMathematicalExpression):
        out.append(Run(text.expression, wrappers, text))
    elif getattr(text, "text", None) is not None:
        _runs(text.text, (*wrappers, text), out)
    elif text is not None:
        out.append(Run("", wrappers, text))


def rebuild(runs: Sequence[Run], depth: int = 0) -> Any:
    """Rich text from runs: runs under the same wrapper go back into one copy of it."""
    parts: list[Any] = []
    i = 0
    while i < len(runs):
        run = runs[i]
        if len(run.wrappers) <= depth:
            parts.append(run.atom if run.atom is not None else run.text)
            i += 1
            continue
        wrapper = run.wrappers[depth]
        j = i + 1
        while (
            j < len(runs) and len(runs[j].wrappers) > depth and runs[j].wrappers[depth] is wrapper
        ):
            j += 1
        inner = rebuild(runs[i:j], depth + 1)
        if inner is not None:
            parts.append(wrapper.model_copy(update={"text": inner}))
        i = j
    return join_text(parts)


def _plain(text: Any) -> str:
    runs: list[Run] = []
    _runs(text, (), runs)
    return "".join(r.text for r in runs)


def _slice(runs: Sequence[Run], start: int, end: int) -> list[Run]:
    """The runs covering characters [start, end) of their joined text (formulas whole)."""
    out: list[Run] = []
    pos = 0
    for run in runs:
        a, b = pos, pos + len(run.text)
        pos = b
        if (b <= start or a >= end) and not (a == b and start <= a < end):
            continue
        if run.atom is not None or (a >= start and b <= end):
            out.append(run)
        else:
            out.append(Run(run.text[max(start, a) - a : min(end, b) - a], run.wrappers))
    return out


def _cut_text(block: Block, cursor: Cursor, room: Size, full: Size, fresh: bool) -> _Pieces:
    runs: list[Run] = []
    _runs(getattr(block, "text", None), (), runs)
    # A formula longer than a message could hold is cut as text.
    runs = [
        Run(r.text, r.wrappers) if r.atom is not None and utf16_len(r.text) > full[0] else r
        for r in runs
    ]
    flat = "".join(r.text for r in runs)
    start = cursor[0] if cursor else 0
    while start < len(flat) and flat[start].isspace():
        start += 1
    if start >= len(flat):
        return [], _ZERO, None
    if room[1] < 1 and not fresh:
        return [], _ZERO, _norm((start,))
    atoms: list[tuple[int, int]] = []  # the [start, end) of formulas, never cut
    pos = 0
    for run in runs:
        if run.atom is not None:
            atoms.append((pos, pos + len(run.text)))
        pos += len(run.text)
    if utf16_len(flat[start:]) <= room[0]:
        end = len(flat)
    else:
        limit = start + _fit_index(flat[start:], room[0], prefer_space=False)
        if limit == start + 1 and utf16_len(flat[start]) > room[0] and not fresh:
            return [], _ZERO, _norm((start,))
        end = _break(flat, start, limit, atoms)
        if end <= start:
            if not fresh:
                return [], _ZERO, _norm((start,))
            end = _hard_break(start, limit, atoms)
    piece_end = end
    while piece_end > start and flat[piece_end - 1].isspace():
        piece_end -= 1
    text = rebuild(_slice(runs, start, piece_end))
    nxt = end
    while nxt < len(flat) and flat[nxt].isspace():
        nxt += 1
    after = None if nxt >= len(flat) else _norm((nxt,))
    if text is None:
        return [], _ZERO, after
    piece = block.model_copy(update={"text": text})
    return [piece], (text_len(text), 1), after


def _break(flat: str, start: int, limit: int, atoms: Sequence[tuple[int, int]]) -> int:
    """Where to end a piece of ``flat[start:]`` that must end by ``limit``: after a
    sentence in the second half of it, else at a space; never inside a formula. Returns
    ``start`` when there is no such place."""

    def inside(i: int) -> bool:
        return any(a < i < b for a, b in atoms)

    half = start + (limit - start) // 2
    best = -1
    for match in _SENTENCE_END.finditer(flat, half, limit):
        i = match.end()
        if not inside(i):
            best = i
    if best > start:
        return best
    i = limit
    while i > start:
        if (flat[i - 1].isspace() or (i < len(flat) and flat[i].isspace())) and not inside(i):
            return i
        i -= 1
    return start


def _hard_break(start: int, limit: int, atoms: Sequence[tuple[int, int]]) -> int:
    """``limit``, or the start of a formula it falls in (its end if that is ``start``)."""
    for a, b in atoms:
        if a < limit < b:
            return a if a > start else b
    return limit


# --- Messages ------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A top-level block of an answer, its size, and where its source starts; ``units``:
    where the source of each of its units starts (a list's items, a table's body rows, a
    code block's lines), when known."""

    block: Block
    size: Size
    start: int
    units: tuple[int, ...] = ()

    def source_at(self, cursor: Cursor, limit: int) -> int:
        """Where the source of the block from ``cursor`` on starts: the unit's line, or
        the block's start when the cursor is inside text."""
        k, _ = _at(cursor)
        block = self.block
        if isinstance(block, InputRichBlockTable) and table_units(block, limit) == len(block.cells):
            k -= 1  # a header that is not repeated is a row like the others: row 0
        if cursor and 0 <= k < len(self.units):
            return self.units[k]
        return self.start


@dataclass(frozen=True)
class Packed:
    """One message's blocks, size, and the cursor where the next one starts."""

    blocks: list[Block]
    size: Size
    end: Cursor | None


def pack(
    entries: Sequence[Entry],
    cursor: Cursor,
    *,
    first: Sequence[Block] = (),
    first_size: Size = _ZERO,
    limit: int,
    stop: Cursor | None = None,
    continuing: bool = False,
) -> list[Packed]:
    """Messages of ``entries`` from ``cursor`` on, the first opened by ``first``.

    A block that fits a message of its own is not cut (it waits for the next message),
    a heading is not left at the end of a message, and a message does not start with a
    divider (nor does the first one when ``continuing`` an answer already sent in part).
    ``stop``: no message starts past it (the rest would not be shown anyway)."""
    full: Size = (limit, MAX_BLOCKS)
    out: list[Packed] = []
    blocks: list[Block] = list(first)
    used = first_size
    i, sub = _at(cursor)
    while i < len(entries):
        content: list[tuple[Block, int]] = []  # and its entry when the block is whole
        while i < len(entries):
            entry = entries[i]
            whole, size = ([entry.block], entry.size) if not sub else rest(entry.block, sub, full)
            if (
                not sub
                and not content
                and (out or continuing)
                and isinstance(entry.block, InputRichBlockDivider)
            ):
                i += 1
                continue
            left = _less(full, used)
            if _fits(size, left):
                content.extend((b, -1 if sub else i) for b in whole)
                used = _plus(used, size)
                i, sub = i + 1, ()
                continue
            fresh = not blocks and not content
            if not fresh and _fits(size, full):
                break
            pieces, psize, nxt = cut(entry.block, sub, left, full, fresh)
            content.extend((b, -1) for b in pieces)
            used = _plus(used, psize)
            if nxt is None or (fresh and not pieces and nxt == sub):  # (the latter: never)
                i, sub = i + 1, ()
                continue
            sub = nxt
            break
        end: Cursor | None = _norm((i, *sub)) if i < len(entries) else None
        # A heading waits for the next message with what follows it.
        while end is not None and len(content) > 1:
            block, index = content[-1]
            if index < 0 or not isinstance(block, InputRichBlockSectionHeading):
                break
            content.pop()
            used = _less(used, entries[index].size)
            end, i, sub = _norm((index,)), index, ()
        if not used[0] and not blocks:  # only dividers: they divide nothing here
            content = []
        blocks.extend(b for b, _ in content)
        if blocks:
            out.append(Packed(blocks, used, end))
        if end is None or (stop is not None and end > stop):
            break
        blocks, used = [], _ZERO
    return out


def line_starts(text: str) -> list[int]:
    """The index in ``text`` where each of its lines starts."""
    starts = [0]
    find = text.find
    i = find("\n")
    while i >= 0:
        starts.append(i + 1)
        i = find("\n", i + 1)
    return starts


def entries_of(tops: Sequence[Top], starts: Sequence[int], offset: int = 0) -> list[Entry]:
    """The blocks of ``tops`` as entries; ``starts[line] + offset`` is where a line of
    their source starts in the answer."""
    out: list[Entry] = []
    last = len(starts) - 1
    for top in tops:
        start = offset + starts[min(top.start, last)]
        units: tuple[int, ...] = ()
        if len(top.blocks) == 1:
            lines: Sequence[int] = top.units
            if top.kind in ("fence", "code_block"):
                first = top.start + (top.kind == "fence")
                lines = range(first, top.end)
            units = tuple(offset + starts[min(line, last)] for line in lines)
        if top.size is not None and len(top.blocks) == 1:
            out.append(Entry(top.blocks[0], top.size, start, units))
            continue
        out.extend(Entry(block, size_of(block), start, units) for block in top.blocks)
    return out


def notes_entries(
    notes: Sequence[tuple[int, Footnote]], numbers: dict[str, int] | None = None
) -> list[Entry]:
    """The footnote section as entries; ``notes`` pairs each definition with where its
    source starts; ``numbers`` are the footnotes' numbers."""
    blocks = footnote_section([note for _, note in notes], numbers)
    if not blocks:
        return []
    start = min(start for start, _ in notes)
    return [Entry(block, size_of(block), start) for block in blocks]
