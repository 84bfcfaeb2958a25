"""Markdown tokens (``bot.markdown``) to rich message blocks.

``build`` walks the token stream once and returns the top-level blocks with the source
lines each came from, and the footnote definitions apart (they are shown at the end).
It never makes an empty block (Telegram refuses empty text) and never nests deeper than
``MAX_DEPTH``: a list or quote that would is flattened into the level above it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiogram.types import (
    InputRichBlockBlockQuotation,
    InputRichBlockDivider,
    InputRichBlockList,
    InputRichBlockListItem,
    InputRichBlockMathematicalExpression,
    InputRichBlockParagraph,
    InputRichBlockPreformatted,
    InputRichBlockSectionHeading,
    InputRichBlockTable,
    RichBlockTableCell,
    RichTextBold,
    RichTextCode,
    RichTextItalic,
    RichTextMathematicalExpression,
    RichTextStrikethrough,
    RichTextSuperscript,
    RichTextUrl,
)

from bot import render
from bot.rich_core import MAX_COLUMNS, MAX_DEPTH, Block, RichText, new, text_plain

if TYPE_CHECKING:  # markdown-it is imported by the first parse (bot.markdown)
    from markdown_it.token import Token

__all__ = [
    "Footnote",
    "Top",
    "build",
    "footnote_section",
    "join_text",
    "safe_url",
    "text_table",
]

_ALIGNS = {"text-align:left": "left", "text-align:center": "center", "text-align:right": "right"}
_WRAPPERS: dict[str, type[Any]] = {
    "strong_open": RichTextBold,
    "em_open": RichTextItalic,
    "s_open": RichTextStrikethrough,
}


@dataclass
class Top:
    """One top-level block of the source: what it renders to (possibly nothing) and the
    source lines [start, end) it came from."""

    blocks: list[Block]
    start: int
    end: int
    kind: str  # the opening token's type: "paragraph_open", "fence", "table_open", ...
    markup: str = ""  # a list's marker ("-", "*", "+"; "." or ")" when ordered)
    first_number: int = 1  # an ordered list's start
    # The first source line of each of a list's items or a table's body rows (as built).
    units: list[int] = field(default_factory=list)
    numbered: int = 0  # footnote labels numbered before this block was built
    size: tuple[int, int] | None = None  # (chars, count) of its one block, when known


@dataclass
class Footnote:
    label: str
    start: int  # its first source line
    blocks: list[Block] = field(default_factory=list)


def safe_url(url: str) -> str | None:
    """``url`` if Telegram takes it for a link (as for text messages, and at most 2,048
    characters long)."""
    return render.safe_url(url) if len(url) <= 2048 else None


def join_text(parts: list[Any]) -> RichText | None:
    """One rich text of ``parts``: adjacent strings merged, empty strings dropped; a
    single element stands alone; None when nothing is left."""
    out: list[Any] = []
    for part in parts:
        if isinstance(part, str):
            if not part:
                continue
            if out and isinstance(out[-1], str):
                out[-1] += part
                continue
        out.append(part)
    if not out:
        return None
    return out[0] if len(out) == 1 else out


def _visible(text: RichText | None) -> bool:
    """Whether a text shows anything: not only whitespace."""
    if text is None:
        return False
    if isinstance(text, RichTextMathematicalExpression):
        return True
    if isinstance(text, list):
        return any(_visible(t) for t in text)
    return bool(text_plain(text).strip())


def _inline(token: Token, numbers: dict[str, int]) -> RichText | None:
    """An ``inline`` token's children as rich text. Footnote marks are numbered by first
    reference: ``numbers`` maps the labels seen so far to theirs, and takes new ones."""
    stack: list[list[Any]] = [[]]
    opened: list[Token] = []
    for t in token.children or ():
        kind = t.type
        out = stack[-1]
        if kind == "text":
            out.append(t.content)
        elif kind in ("softbreak", "hardbreak"):
            out.append("\n")
        elif kind == "code_inline":
            if t.content:
                out.append(new(RichTextCode, text=t.content))
        elif kind in ("math_inline", "math_inline_double"):
            expression = t.content.strip()
            if expression:
                out.append(new(RichTextMathematicalExpression, expression=expression))
            else:
                out.append(t.markup + t.content + t.markup)
        elif kind == "footnote_ref":
            label = str(t.meta.get("label", ""))
            mark = str(numbers.setdefault(label, len(numbers) + 1))
            if out and isinstance(out[-1], RichTextSuperscript):  # [^1][^2]: "1,2"
                mark = f"{text_plain(out.pop().text)},{mark}"
            out.append(new(RichTextSuperscript, text=mark))
        elif kind == "image":
            alt = t.content or ""
            url = safe_url(str(t.attrs.get("src", "")))
            if url is not None:
                out.append(new(RichTextUrl, text=alt or url, url=url))
            elif alt:
                out.append(alt)
        elif t.nesting == 1:
            stack.append([])
            opened.append(t)
        elif t.nesting == -1 and opened:
            opener = opened.pop()
            inner = join_text(stack.pop())
            _close(stack[-1], opener, inner)
        else:
            out.append(t.content)
    while opened:  # markdown-it balances its tokens; this is only a safety net
        inner = join_text(stack.pop())
        _close(stack[-1], opened.pop(), inner)
    return join_text(stack[0])


def _close(out: list[Any], opener: Token, inner: RichText | None) -> None:
    wrapper = _WRAPPERS.get(opener.type)
    if opener.type == "link_open":
        url = safe_url(str(opener.attrs.get("href", "")))
        if url is not None:
            out.append(new(RichTextUrl, text=inner if inner is not None else url, url=url))
            return
    if inner is None:
        return
    if wrapper is not None and _visible(inner):
        out.append(new(wrapper, text=inner))
    else:
        out.append(inner)


def _paragraph(text: RichText | None) -> list[Block]:
    return [new(InputRichBlockParagraph, text=text)] if _visible(text) else []


class _Builder:
    def __init__(
        self,
        tokens: Sequence[Token],
        depth: int,
        partial_line: int | None,
        numbers: dict[str, int],
    ) -> None:
        self.tokens = tokens
        self.depth = depth
        self.partial_line = partial_line
        self.numbers = numbers
        self.footnotes: list[Footnote] = []
        self.units: list[int] = []  # of the top-level block being built

    def inline(self, token: Token) -> RichText | None:
        return _inline(token, self.numbers)

    def blocks(self, i: int, depth: int) -> tuple[list[Block], int]:
        """Blocks from token ``i`` up to the closing token of the enclosing container
        (or the end); returns them and the index of that closing token."""
        out: list[Block] = []
        tokens = self.tokens
        while i < len(tokens) and tokens[i].nesting != -1:
            produced, i = self.block(i, depth)
            out.extend(produced)
        return out, i

    def block(self, i: int, depth: int) -> tuple[list[Block], int]:
        """The blocks of the block starting at token ``i``, and the index after it."""
        tok = self.tokens[i]
        kind = tok.type
        if kind == "paragraph_open":
            return _paragraph(self.inline(self.tokens[i + 1])), i + 3
        if kind == "heading_open":
            text = self.inline(self.tokens[i + 1])
            size = int(tok.tag[1:]) if tok.tag[1:].isdigit() else 1
            blocks: list[Block] = []
            if _visible(text):
                blocks.append(new(InputRichBlockSectionHeading, text=text, size=size))
            return blocks, i + 3
        if kind in ("fence", "code_block"):
            return _pre(
                tok.content, render.safe_language(tok.info) if kind == "fence" else None
            ), i + 1
        if kind == "math_block":
            expression = tok.content.strip()
            if not expression:
                return [], i + 1
            return [new(InputRichBlockMathematicalExpression, expression=expression)], i + 1
        if kind == "hr":
            return [new(InputRichBlockDivider)], i + 1
        if kind == "blockquote_open":
            # At the deepest level its blocks could not go deeper: they stay at this one.
            inner, j = self.blocks(i + 1, depth if depth >= MAX_DEPTH else depth + 1)
            if depth >= MAX_DEPTH:
                return inner, j + 1
            if not inner:
                return [], j + 1
            return [new(InputRichBlockBlockQuotation, blocks=inner)], j + 1
        if kind in ("bullet_list_open", "ordered_list_open"):
            return self.list_block(i, depth)
        if kind == "table_open":
            return self.table_block(i, depth)
        if kind == "footnote_reference_open":
            inner, j = self.blocks(i + 1, self.depth)
            start = tok.map[0] if tok.map else 0
            self.footnotes.append(Footnote(str(tok.meta.get("label", "")), start, inner))
            return [], j + 1
        if kind == "inline":
            return _paragraph(self.inline(tok)), i + 1
        if tok.nesting == 1:  # a container we don't know: its blocks, in place
            inner, j = self.blocks(i + 1, depth)
            return inner, j + 1
        return _paragraph(tok.content), i + 1

    def list_block(self, i: int, depth: int) -> tuple[list[Block], int]:
        tokens = self.tokens
        ordered = tokens[i].type == "ordered_list_open"
        start = tokens[i].attrs.get("start", 1) if ordered else 1
        number = int(start) if isinstance(start, int | str) and str(start).isdigit() else 1
        flat = depth >= MAX_DEPTH  # items' blocks could not go deeper: flatten them here
        items: list[InputRichBlockListItem] = []
        flattened: list[Block] = []
        j = i + 1
        while j < len(tokens) and tokens[j].type == "list_item_open":
            checked = tokens[j].meta.get("checked")
            where = tokens[j].map
            line = where[0] if where else 0
            inner, j = self.blocks(j + 1, depth if flat else depth + 1)
            j += 1  # list_item_close
            value = number
            number += 1
            if not inner:
                continue
            if flat:
                if checked is not None:
                    marker = "☑ " if checked else "☐ "
                else:
                    marker = f"{value}. " if ordered else "• "
                flattened.extend(_marked(inner, marker))
                continue
            fields: dict[str, Any] = {"blocks": inner}
            if ordered:
                fields.update(value=value, type="1")
            if checked is not None:
                fields["has_checkbox"] = True
                if checked:
                    fields["is_checked"] = True
            items.append(new(InputRichBlockListItem, **fields))
            if depth == self.depth:
                self.units.append(line)
        end = j + 1  # the list's closing token
        if flat:
            return flattened, end
        if not items:
            return [], end
        return [new(InputRichBlockList, items=items)], end

    def table_block(self, i: int, depth: int) -> tuple[list[Block], int]:
        tokens = self.tokens
        rows: list[list[RichBlockTableCell]] = []
        plain: list[list[str]] = []
        header = True
        j = i + 1
        row: list[RichBlockTableCell] = []
        texts: list[str] = []
        row_line: int | None = None
        while j < len(tokens) and tokens[j].type != "table_close":
            tok = tokens[j]
            kind = tok.type
            if kind == "tr_open":
                row, texts = [], []
                row_line = tok.map[0] if tok.map else None
            elif kind == "tr_close":
                if not (
                    not header and row_line is not None and row_line == self.partial_line
                ):  # a last row still being written is left out
                    rows.append(row)
                    plain.append(texts)
                    if not header and depth == self.depth and row_line is not None:
                        self.units.append(row_line)
            elif kind == "tbody_open":
                header = False
            elif kind in ("th_open", "td_open"):
                text = self.inline(tokens[j + 1])
                style = str(tok.attrs.get("style", ""))
                fields: dict[str, Any] = {"align": _ALIGNS.get(style, "left"), "valign": "top"}
                if _visible(text):
                    fields["text"] = text
                if header:
                    fields["is_header"] = True
                row.append(new(RichBlockTableCell, **fields))
                texts.append(text_plain(text) if text is not None else "")
                j += 2  # inline, th/td_close
            j += 1
        end = j + 1
        if not any(any(t.strip() for t in r) for r in plain):
            return [], end
        if len(rows[0]) > MAX_COLUMNS:
            return _pre(text_table(plain), None), end
        return [new(InputRichBlockTable, cells=rows, is_bordered=True)], end


def _pre(content: str, language: str | None) -> list[Block]:
    if content.endswith("\n"):
        content = content[:-1]
    if not content.strip():
        return []
    fields: dict[str, Any] = {"text": content}
    if language:
        fields["language"] = language
    return [new(InputRichBlockPreformatted, **fields)]


def _marked(blocks: list[Block], marker: str) -> list[Block]:
    """``blocks`` of a flattened list item, the first paragraph starting with ``marker``."""
    first = blocks[0]
    if isinstance(first, InputRichBlockParagraph):
        text = join_text([marker, *(first.text if isinstance(first.text, list) else [first.text])])
        return [new(InputRichBlockParagraph, text=text), *blocks[1:]]
    return [new(InputRichBlockParagraph, text=marker.strip()), *blocks]


def text_table(rows: list[list[str]]) -> str:
    """Rows of cell texts as aligned columns of plain text (for tables too wide)."""
    rows = [[" ".join(cell.split()) for cell in row] for row in rows]
    columns = max(len(row) for row in rows)
    widths = [0] * columns
    for row in rows:
        for c, cell in enumerate(row):
            widths[c] = max(widths[c], len(cell))
    lines = []
    for r, row in enumerate(rows):
        cells = [cell.ljust(widths[c]) for c, cell in enumerate(row)]
        lines.append(" | ".join(cells).rstrip())
        if r == 0:
            lines.append("-+-".join("-" * w for w in widths[: len(row)]))
    return "\n".join(lines)


def build(
    tokens: Sequence[Token],
    *,
    depth: int = 1,
    partial_line: int | None = None,
    numbers: dict[str, int] | None = None,
) -> tuple[list[Top], list[Footnote]]:
    """The top-level blocks of ``tokens`` (placed at ``depth``) and the footnote
    definitions. ``partial_line`` is the index of a last line still being written: a
    table row on it is left out. ``numbers``: footnote labels already numbered (by first
    reference); the new ones are added."""
    builder = _Builder(tokens, depth, partial_line, {} if numbers is None else numbers)
    tops: list[Top] = []
    i = 0
    last_end = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.nesting == -1:  # unbalanced (never from markdown-it): skip it
            i += 1
            continue
        builder.units = []
        numbered = len(builder.numbers)
        blocks, j = builder.block(i, depth)
        start, end = (tok.map[0], tok.map[1]) if tok.map else (last_end, last_end)
        last_end = end
        if tok.type != "footnote_reference_open":
            top = Top(blocks, start, end, tok.type, tok.markup, numbered=numbered)
            if builder.units:
                top.units = builder.units
                start_number = tok.attrs.get("start", 1)
                top.first_number = int(start_number) if str(start_number).isdigit() else 1
            tops.append(top)
        i = j
    return tops, builder.footnotes


def footnote_section(
    footnotes: Sequence[Footnote], numbers: dict[str, int] | None = None
) -> list[Block]:
    """The footnote definitions as the answer's last blocks: a divider, then each
    definition's blocks, the first marked in superscript with its number (``numbers``;
    its label when it has none)."""
    numbers = numbers or {}
    out: list[Block] = []
    seen: set[str] = set()
    for note in footnotes:
        if note.label in seen:
            continue
        seen.add(note.label)
        mark = new(RichTextSuperscript, text=str(numbers.get(note.label, note.label or "*")))
        blocks = note.blocks
        if blocks and isinstance(blocks[0], InputRichBlockParagraph):
            first = blocks[0].text
            text = join_text([mark, " ", *(first if isinstance(first, list) else [first])])
            out.append(new(InputRichBlockParagraph, text=text))
            out.extend(blocks[1:])
        else:
            out.append(new(InputRichBlockParagraph, text=mark))
            out.extend(blocks)
    if out:
        out.insert(0, new(InputRichBlockDivider))
    return out
