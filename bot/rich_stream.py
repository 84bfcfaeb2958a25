"""A growing answer as rich messages, cheaply: ``RichStream``.

Each ``feed`` gets the whole answer so far. Only its tail is parsed again: the source
from the first top-level block that later text could still change. A block is settled
once the block after it starts on a complete line, or after a blank line that ends it
for good (so that no half-written line, such as ``#`` that may yet become ``#hashtag``,
decides where a block ends; a table's delimiter row and a formula's closing line must
be complete too). Settled blocks keep their aiogram objects and sizes, and only the
tail's blocks are built again. Less than the tail is parsed when it is a table or a
list being written (from its first row or item that may change), an open code fence
(not at all: its lines are taken as they come) or a paragraph that the new text only
lengthens (not at all either).

Messages before the last are final when they are returned: the writer sends them at
once. So a message is only returned before the last when everything in it is settled
(whole settled blocks, or settled units of the block being written: a code block's
complete lines, a table's complete rows, a list's items but the last) and settled text
follows it. The last message is the draft; when the unsettled rest is longer than one
message, the draft shows as much of it as fits.

While streaming, half-written Markdown is what CommonMark makes of it (an unclosed fence
is code so far, an unclosed ``**`` or ``$$`` is text), except that a table row still
being written is left out until its line is complete. ``feed(text, final=True)`` is the
whole answer: everything is settled and every message is returned; the writer ends with
it (a plain feed may still hold back the last block).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiogram.types import (
    InputRichBlockDivider,
    InputRichBlockList,
    InputRichBlockListItem,
    InputRichBlockPreformatted,
    InputRichBlockTable,
    RichBlockTableCell,
)

from bot.markdown import parse_tokens
from bot.rich_build import Footnote, Top, build, join_text
from bot.rich_core import (
    MAX_BLOCKS,
    MAX_CHARS,
    Block,
    RichPart,
    block_size,
    clean,
    measure,
    new,
    text_len,
    utf16_len,
)
from bot.rich_split import (
    Cursor,
    Entry,
    Packed,
    Size,
    entries_of,
    line_starts,
    notes_entries,
    pack,
    rest,
    size_of,
    table_units,
)

__all__ = ["RichStream", "check_blocks"]

_MIN_LIMIT = 64


def check_blocks(blocks: Sequence[Block], limit: int) -> Size:
    """The size of ``first`` or ``last`` blocks, which must fit a message of ``limit``."""
    if limit < _MIN_LIMIT:
        raise ValueError(f"limit must be at least {_MIN_LIMIT}, not {limit}")
    chars, count, _ = measure(blocks)
    if chars > limit or count > MAX_BLOCKS:
        raise ValueError(f"blocks of {chars} chars and {count} blocks do not fit a message")
    return chars, count


def _settled_units(top: Top, partial: bool, limit: int) -> int:
    """How many units (lines, rows, items) of ``top``'s block no later text can change."""
    if len(top.blocks) != 1:
        return 0
    block = top.blocks[0]
    if top.kind == "table_open" and not isinstance(block, InputRichBlockTable):
        return 0  # a table too wide, as text: a longer row widens every line
    if isinstance(block, InputRichBlockPreformatted) and isinstance(block.text, str):
        lines = block.text.count("\n") + 1
        if top.kind == "code_block":  # blank lines may still join it: be careful
            return lines - 1
        return lines - 1 if partial else lines
    if isinstance(block, InputRichBlockTable):
        return table_units(block, limit)
    if isinstance(block, InputRichBlockList):
        return len(block.items) - 1
    return 0


def _starts_settled(before: Top, top: Top, complete: int) -> bool:
    """Whether ``top`` starts where no later text can make it part of the block
    ``before`` it: on a complete line, or after a blank line that ended ``before`` for
    good (a list or indented code could go on after one). A table's delimiter row decides
    whether its first line is a table's, and a ``$$`` block's closing line whether it is
    one: those must be complete too."""
    if top.kind == "table_open":
        return top.start + 1 < complete
    if top.kind == "math_block":
        return top.end <= complete
    return top.start < complete or (before.end < top.start and before.kind in _ENDED)


# Blocks that a blank line ends: nothing after one can become part of them.
_ENDED = frozenset({"paragraph_open", "heading_open", "table_open", "math_block", "hr", "fence"})


def _row_chars(row: list[RichBlockTableCell]) -> int:
    return sum(text_len(cell.text) for cell in row if cell.text is not None)


# What a paragraph may be lengthened by, after a space, without changing what came
# before: no line break, and nothing that opens or closes emphasis, code, math, links,
# entities or escapes.
_PLAIN = re.compile(r"[^\n\t*_`~$\\<>&\[\]|]*")
# What may start a block: a line that starts with one of these may yet become one.
_MARKERS = frozenset("-+*#>|=~`:[$\\<_0123456789")


@dataclass
class _Fence:
    """The code block being written at the tail, while its fence is open: its lines are
    taken as they come, without parsing (until a line could close it)."""

    tail: int  # where the fence starts in the text (the tail then)
    body: int  # where its first line of code starts
    closing: re.Pattern[str]  # a line that would close it
    language: str | None
    checked: int  # where the line not yet seen whole starts (no closing line before)


_FENCE = re.compile(r"(`{3,}|~{3,})[^\n]*\n")


@dataclass
class _Tip:
    """The paragraph that the unsettled tail is, when it is one (as last built)."""

    entry: Entry
    numbers: dict[str, int]


@dataclass
class _Growing:
    """The block being written at the tail, when it is a table or a list: its settled
    rows or items, so that only the source from the first unsettled one on is parsed
    again (behind ``head``, the table's header and delimiter lines, for a table)."""

    tail: int  # where the block starts in the text (the tail then)
    top: Top  # as last built, in the tail's lines
    head: str  # the source parsed before the resumed part
    resume: int  # where the resumed part starts in the text
    resume_line: int  # and in the tail's lines
    rows: list[list[RichBlockTableCell]] = field(default_factory=list)  # header and rows
    items: list[InputRichBlockListItem] = field(default_factory=list)
    units: list[int] = field(default_factory=list)  # their lines, in the tail's lines
    number: int = 1  # an ordered list's number of the resumed item
    numbers: dict[str, int] = field(default_factory=dict)  # footnotes numbered so far
    size: Size = (0, 0)  # of a table or list of only the settled rows or items


class RichStream:
    """Renders a growing answer for drafts/edits, cheaply: keeps the blocks of the
    settled prefix and re-parses only the tail (see the module)."""

    def __init__(self, *, first: Sequence[Block] = (), limit: int = MAX_CHARS) -> None:
        self._first = tuple(first)
        self._first_size = check_blocks(self._first, limit)
        self._limit = limit
        self._reset()

    def _reset(self) -> None:
        self._raw = ""  # the answer as fed
        self._text = ""  # the same, cleaned (one character for one)
        self._settled: list[Entry] = []
        self._sums: list[Size] = [(0, 0)]  # the sizes of the settled entries, summed
        self._notes: list[tuple[int, Footnote]] = []  # settled footnote definitions
        self._tail = 0  # where the unsettled tail starts in the text
        self._references: dict[str, Any] = {}
        self._numbers: dict[str, int] = {}  # footnotes numbered in the settled part
        self._frozen: list[RichPart] = []
        self._cursor: Cursor = ()  # where the message after the frozen ones starts
        self._growing: _Growing | None = None
        self._tip: _Tip | None = None
        self._fence: _Fence | None = None
        self._notes_cache: tuple[Any, list[Entry]] | None = None

    def feed(self, markdown: str, *, final: bool = False) -> list[RichPart]:
        """All messages of the answer so far (``markdown`` extends the previous one); the
        last is the draft, the others are final. ``final``: the answer is complete."""
        if not markdown.startswith(self._raw):
            self._reset()
        added = clean(markdown[len(self._raw) :])
        self._text += added
        self._raw = markdown
        tip, self._tip = self._tip, None
        if tip is not None and not final:
            appended = self._appended(tip, added)
            if appended is not None:
                return appended
        tail = self._text[self._tail :]
        complete = tail.count("\n")  # lines of the tail that are complete
        partial = not final and bool(tail) and not tail.endswith("\n")
        env: dict[str, Any] = {"references": dict(self._references)}
        partial_line = complete if partial else None
        numbers = dict(self._numbers)
        fence, self._fence = self._fence, None
        parsed = self._fenced(fence, tail, numbers) if fence is not None else None
        if parsed is None:
            parsed = self._grown(tail, env, partial, numbers)
        if parsed is None:
            tokens = parse_tokens(tail, env)
            tops, notes = build(tokens, partial_line=partial_line, numbers=numbers)
        else:
            tops, notes, numbers = parsed
        starts = line_starts(tail)
        if final:
            settled = len(tops)
        else:
            settled = 0
            while settled + 1 < len(tops) and _starts_settled(
                tops[settled], tops[settled + 1], complete
            ):
                settled += 1
        edge = tops[settled].start if settled < len(tops) else len(starts) if final else 0
        base = self._tail
        settled_notes = [(base + starts[n.start], n) for n in notes if n.start < edge]
        open_notes = [(base + starts[n.start], n) for n in notes if n.start >= edge]
        settled_entries = entries_of(tops[:settled], starts, base)
        open_entries = entries_of(tops[settled:], starts, base)
        frontier: Cursor | None = None
        if final:
            entries = [*self._settled, *settled_entries]
            notes_all = [*self._notes, *settled_notes, *open_notes]
        else:
            if settled < len(tops):  # the footnotes numbered before the tail are settled
                self._numbers = dict(list(numbers.items())[: tops[settled].numbered])
            if tops:
                defined = set(env.get("references", {})) - set(self._references)
                self._commit(tail, settled_entries, settled_notes, starts[edge], bool(defined))
            self._grow(tops, settled, starts, numbers)
            entries = list(self._settled)
            notes_all = [*self._notes, *open_notes]
            rest = tops[settled:]
            if (
                len(rest) == 1
                and rest[0].kind == "paragraph_open"
                and len(open_entries) == 1
                and not open_notes
            ):
                self._tip = _Tip(open_entries[0], numbers)
            if len(rest) == 1 and rest[0].kind == "fence":
                self._fence = self._open_fence(rest[0])
            frontier = (len(entries),)
            if settled < len(tops):
                units = _settled_units(tops[settled], partial, self._limit)
                if units > 0:
                    frontier = (len(entries), units)
        entries.extend(open_entries)
        entries.extend(self._notes_entries(notes_all, numbers))
        return self._parts(entries, frontier)

    def _notes_entries(
        self, notes: list[tuple[int, Footnote]], numbers: dict[str, int]
    ) -> list[Entry]:
        """The footnote section; while all its notes are settled ones (which are only
        ever added to), it is built again only when they or the numbers change."""
        if not notes:
            return []
        if len(notes) != len(self._notes):  # (notes are the settled ones, then others)
            return notes_entries(notes, numbers)
        key = (len(notes), tuple(numbers.items()))
        if self._notes_cache is None or self._notes_cache[0] != key:
            self._notes_cache = (key, notes_entries(notes, numbers))
        return self._notes_cache[1]

    def _appended(self, tip: _Tip, added: str) -> list[RichPart] | None:
        """The parts when the tail is one paragraph that ``added`` only lengthens: text
        after a space, on a line under way that no block marker starts, with nothing
        Markdown could make anything of (``_PLAIN``, ``_MARKERS``). Then nothing before
        it can change, and it is not parsed again."""
        if not added:
            return self._tip_parts(tip)
        before = self._text[: -len(added)]
        line = before[before.rfind("\n") + 1 :].lstrip()  # the line being written
        if (
            not _PLAIN.fullmatch(added)
            or not (before.endswith(" ") or added[0] == " ")
            or not line
            or line[0] in _MARKERS
        ):
            return None
        spaces = before[len(before.rstrip(" ")) :]
        extra = (spaces + added).rstrip()
        if not extra.strip():
            return self._tip_parts(tip)
        block = tip.entry.block
        text = getattr(block, "text", "")
        joined = join_text([*(text if isinstance(text, list) else [text]), extra])
        longer = block.model_copy(update={"text": joined})
        size = (tip.entry.size[0] + utf16_len(extra), tip.entry.size[1])
        return self._tip_parts(_Tip(Entry(longer, size, tip.entry.start), tip.numbers))

    def _tip_parts(self, tip: _Tip) -> list[RichPart]:
        self._tip = tip
        entries = [*self._settled, tip.entry, *self._notes_entries(self._notes, tip.numbers)]
        return self._parts(entries, (len(self._settled),))

    def _open_fence(self, top: Top) -> _Fence | None:
        """The code block the tail now is, if its fence is open (see ``_Fence``)."""
        text, tail = self._text, self._tail
        opening = _FENCE.match(text, tail)
        block = top.blocks[0] if len(top.blocks) == 1 else None
        # an empty fence has no block yet, nor so its language: taken once it has one
        if opening is None or not isinstance(block, InputRichBlockPreformatted):
            return None
        marker = opening.group(1)
        closing = re.compile(rf"^ {{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$", re.M)
        if closing.search(text, opening.end()):
            return None
        return _Fence(tail, opening.end(), closing, block.language, text.rfind("\n") + 1)

    def _fenced(
        self, fence: _Fence, tail: str, numbers: dict[str, int]
    ) -> tuple[list[Top], list[Footnote], dict[str, int]] | None:
        """The tail's one block when it is still the open code block ``fence``."""
        text = self._text
        if fence.tail != self._tail or fence.closing.search(text, fence.checked):
            return None
        last = text[text.rfind("\n") + 1 :]
        if last and not last.strip():  # (markdown-it leaves out such a last line)
            return None
        code = text[fence.body :]
        lines = tail.count("\n") + (not tail.endswith("\n"))
        blocks: list[Block] = []
        if code.strip():
            code = code[:-1] if code.endswith("\n") else code
            fields: dict[str, Any] = {"text": code}
            if fence.language:
                fields["language"] = fence.language
            blocks.append(new(InputRichBlockPreformatted, **fields))
        top = Top(blocks, 0, lines, "fence", numbered=len(self._numbers))
        top.size = (utf16_len(code), 1) if blocks else None
        return [top], [], numbers

    def _grown(
        self, tail: str, env: dict[str, Any], partial: bool, numbers: dict[str, int]
    ) -> tuple[list[Top], list[Footnote], dict[str, int]] | None:
        """The tail's blocks, parsing only the growing table's or list's unsettled rows or
        items (None when the tail does not start with one)."""
        growing = self._growing
        if growing is None or growing.tail != self._tail:
            return None
        source = growing.head + self._text[growing.resume :]
        numbers = dict(growing.numbers)
        tokens = parse_tokens(source, env)
        lines = source.count("\n")
        tops, notes = build(tokens, partial_line=lines if partial else None, numbers=numbers)
        if not tops or tops[0].start != 0 or len(tops[0].blocks) != 1:
            return None
        top, block = tops[0], tops[0].blocks[0]
        old = growing.top
        shift = growing.resume_line - growing.head.count("\n")
        if isinstance(block, InputRichBlockTable) and old.kind == top.kind == "table_open":
            rows = [*growing.rows, *block.cells[1:]]
            merged: Block = block.model_copy(update={"cells": rows})
            added = sum(_row_chars(row) for row in block.cells[1:])
            size = (growing.size[0] + added, growing.size[1] + len(block.cells) - 1)
        elif (
            isinstance(block, InputRichBlockList)
            and (top.kind, top.markup) == (old.kind, old.markup)
            and not (top.units and top.units[0] != 0)
        ):
            items = block.items
            if top.kind == "ordered_list_open":
                start = growing.number - top.first_number
                items = [i.model_copy(update={"value": (i.value or 0) + start}) for i in items]
            merged = block.model_copy(update={"items": [*growing.items, *items]})
            added_chars, added_count, _ = block_size(block)
            size = (growing.size[0] + added_chars, growing.size[1] + added_count - 1)
        else:
            return None
        first = Top(
            [merged],
            0,
            top.end + shift,
            old.kind,
            old.markup,
            old.first_number,
            [*growing.units, *(line + shift for line in top.units)],
            old.numbered,
            size,
        )
        rest = [
            Top(
                t.blocks,
                t.start + shift,
                t.end + shift,
                t.kind,
                t.markup,
                t.first_number,
                [line + shift for line in t.units],
                t.numbered,
            )
            for t in tops[1:]
        ]
        for note in notes:
            note.start += shift
        return [first, *rest], notes, numbers

    def _grow(
        self, tops: list[Top], settled: int, starts: list[int], numbers: dict[str, int]
    ) -> None:
        """Remember the table or list that the tail now starts with (see ``_Growing``);
        ``tops`` and ``starts`` are in the old tail's lines, ``self._tail`` is the new."""
        self._growing = None
        if settled >= len(tops) or len(tops[settled].blocks) != 1:
            return
        top, block = tops[settled], tops[settled].blocks[0]
        first = top.start  # the line the new tail starts at
        units = [line - first for line in top.units]
        counted = tops[settled + 1].numbered if settled + 1 < len(tops) else len(numbers)
        known = dict(list(numbers.items())[:counted])
        offset = starts[first]  # where the new tail starts in the old one
        size = top.size if top.size is not None else size_of(block)
        if isinstance(block, InputRichBlockTable) and units and len(block.cells) > 1:
            line = units[-1] + 1  # the line after the last complete row
            if first + line >= len(starts):
                return
            head = self._text[self._tail : self._tail + starts[first + 2] - offset]
            self._growing = _Growing(
                self._tail,
                top,
                head,
                self._tail + starts[first + line] - offset,
                line,
                rows=list(block.cells),
                units=units,
                numbers=known,
                size=size,
            )
        elif isinstance(block, InputRichBlockList) and len(units) == len(block.items) > 1:
            last = block.items[-1]
            last_chars, last_count, _ = block_size(block.model_copy(update={"items": [last]}))
            self._growing = _Growing(
                self._tail,
                top,
                "",
                self._tail + starts[first + units[-1]] - offset,
                units[-1],
                items=list(block.items[:-1]),
                units=units[:-1],
                number=last.value or 1,
                numbers=known,
                size=(size[0] - last_chars, size[1] - last_count + 1),
            )

    def _commit(
        self,
        tail: str,
        entries: list[Entry],
        notes: list[tuple[int, Footnote]],
        edge: int,
        defined: bool,
    ) -> None:
        """Keep what became settled; the tail now starts ``edge`` into the old one."""
        self._settled.extend(entries)
        self._sum(entries)
        self._notes.extend(notes)
        if defined and edge and tail[:edge].find("]:") >= 0:
            # Link reference definitions in what became settled: keep them for the tail.
            # (A link before its definition was built as text: build it again.)
            settled_env: dict[str, Any] = {}
            text = self._text[: self._tail + edge]
            tops, _ = build(parse_tokens(text, settled_env))
            known = settled_env.get("references", {})
            if set(known) - set(self._references):
                self._references = dict(known)
                rebuilt = entries_of(tops, line_starts(text))
                if len(rebuilt) == len(self._settled):
                    self._settled = rebuilt
                    del self._sums[1:]
                    self._sum(rebuilt)
        self._tail += edge

    def _sum(self, entries: list[Entry]) -> None:
        chars, count = self._sums[-1]
        for entry in entries:
            chars, count = chars + entry.size[0], count + entry.size[1]
            self._sums.append((chars, count))

    def _parts(self, entries: list[Entry], frontier: Cursor | None) -> list[RichPart]:
        first = () if self._frozen else self._first
        first_size = self._first_size if first else (0, 0)
        start = self._cursor[0] if self._cursor else 0
        # The settled entries' sizes are summed as they settle: when the rest fits one
        # message (the usual case), it is that message, without packing.
        chars = first_size[0] + self._sums[-1][0] - self._sums[start][0]
        count = first_size[1] + self._sums[-1][1] - self._sums[start][1]
        for entry in entries[len(self._sums) - 1 :]:
            chars, count = chars + entry.size[0], count + entry.size[1]
        packed: list[Packed]
        if len(self._cursor) > 1 or chars > self._limit or count > MAX_BLOCKS:
            packed = pack(
                entries,
                self._cursor,
                first=first,
                first_size=first_size,
                limit=self._limit,
                stop=frontier,
                continuing=bool(self._frozen),
            )
        else:
            rest = entries[start:]
            if self._frozen:  # a message does not start with a divider
                while rest and isinstance(rest[0].block, InputRichBlockDivider):
                    chars, count = chars - rest[0].size[0], count - rest[0].size[1]
                    rest = rest[1:]
            blocks = [*first, *(entry.block for entry in rest)]
            packed = [Packed(blocks, (chars, count), None)] if blocks else []
        if not any(entry.size[0] for entry in entries[start:]):
            packed = [Packed(list(first), first_size, None)] if first else []
        # The parts that can be final: everything in them is settled, and settled text
        # follows them (what is not settled may yet vanish: a half-written closing fence
        # shows as code until it closes; a part must not be left last once sent).
        final = 0
        while final < len(packed) - 1:
            end = packed[final].end
            if end is None or (frontier is not None and end > frontier):
                break
            final += 1
        while final and frontier is not None:
            end = packed[final - 1].end
            if end is not None and _shows_between(entries, end, frontier, self._limit):
                break
            final -= 1
        out = list(self._frozen)
        for part in packed[:final]:
            assert part.end is not None
            entry = entries[part.end[0] if part.end else 0]
            source_end = entry.source_at(part.end[1:], self._limit)
            if out and out[-1].source_end is not None:
                source_end = max(source_end, out[-1].source_end)
            done = RichPart(tuple(part.blocks), part.size[0], part.size[1], source_end)
            out.append(done)
            if frontier is not None:  # (a final feed changes nothing)
                self._frozen.append(done)
                self._cursor = part.end
        if final < len(packed):
            draft = packed[final]
            out.append(RichPart(tuple(draft.blocks), draft.size[0], draft.size[1], None))
        return out


def _shows_between(entries: list[Entry], start: Cursor, end: Cursor, limit: int) -> bool:
    """Whether anything visible lies between the cursors ``start`` and ``end``."""
    full = (limit, MAX_BLOCKS)
    i, sub = (start[0], start[1:]) if start else (0, ())
    last, units = (end[0], end[1:]) if end else (0, ())
    while i < last:
        chars = entries[i].size[0] if not sub else rest(entries[i].block, sub, full)[1][0]
        if chars:
            return True
        i, sub = i + 1, ()
    if i == last and units and i < len(entries):
        block = entries[i].block
        before = rest(block, sub, full)[1][0] if sub else entries[i].size[0]
        return before > rest(block, units, full)[1][0]
    return False
