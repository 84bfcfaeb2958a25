"""Properties of bot.rich.split: whatever the answer and the limit, every part is within
Telegram's limits, and nothing of the answer is lost, repeated or reordered."""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiogram.types import InputRichBlockPreformatted, InputRichBlockTable
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bot.rich import MAX_CHARS, MAX_COLUMNS, Block, RichPart, paragraph, split, to_blocks
from bot.rich_core import text_len, utf16_len
from tests.hypothesis_profiles import examples
from tests.test_rich import body_words, check_part, dump_row, header_rows, part_words, words

SETTINGS = settings(
    max_examples=examples(80),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Each example a whole table of up to 60 rows, or of 21 to 30 columns, drawn cell by cell
# (a tenth of a second or more apiece): fewer of them, still spanning the column counts
# and limits.
TABLES = settings(SETTINGS, max_examples=examples(25))

LETTERS = "abcdefghijklmnopqrstuvwxyzабвгдеёжзийклмнопрстуфхцчшщэюяé"
WORD = st.one_of(
    st.text(alphabet=LETTERS, min_size=1, max_size=12),
    st.sampled_from(["😀", "👨‍👩‍👧", "🇯🇵", "naïve", "日本語", "x", "O(n)", "100%", "3.14"]),
)


@st.composite
def inline(draw: st.DrawFn, max_words: int = 40) -> str:
    """A line of text with formatting, code, formulas and links (no block syntax)."""
    out: list[str] = []
    for _ in range(draw(st.integers(1, max_words))):
        word = draw(WORD)
        kind = draw(st.integers(0, 12))
        if kind == 0:
            word = f"**{word} {draw(WORD)}**"
        elif kind == 1:
            word = f"*{word}*"
        elif kind == 2:
            word = f"`{word}`"
        elif kind == 3:
            word = f"$x_{{{len(word)}}} + y$"
        elif kind == 4:
            word = f"[{word}](https://example.com/{len(word)})"
        elif kind == 5:
            word = f"~~{word}~~"
        out.append(word)
    return " ".join(out)


@st.composite
def paragraph_block(draw: st.DrawFn) -> str:
    lines = draw(st.lists(inline(), min_size=1, max_size=4))
    return "\n".join(lines)


@st.composite
def heading_block(draw: st.DrawFn) -> str:
    return "#" * draw(st.integers(1, 6)) + " " + draw(inline(max_words=6))


@st.composite
def list_block(draw: st.DrawFn, depth: int = 0) -> str:
    ordered = draw(st.booleans())
    task = draw(st.booleans())
    indent = "   " * depth
    lines: list[str] = []
    for n in range(draw(st.integers(1, 15 if depth == 0 else 4))):
        marker = f"{n + 1}." if ordered else "-"
        box = draw(st.sampled_from(["[ ] ", "[x] "])) if task else ""
        lines.append(f"{indent}{marker} {box}{draw(inline(max_words=15))}")
        if depth < 3 and draw(st.integers(0, 5)) == 0:
            lines.append(draw(list_block(depth + 1)))
    return "\n".join(lines)


@st.composite
def table_block(draw: st.DrawFn, columns: int | None = None, rows: int | None = None) -> str:
    columns = columns or draw(st.one_of(st.integers(1, 6), st.integers(1, MAX_COLUMNS + 4)))
    rows = rows if rows is not None else draw(st.integers(0, 25))

    def row() -> str:
        cells = [
            draw(inline(max_words=3)) if draw(st.integers(0, 6)) else "" for _ in range(columns)
        ]
        return "| " + " | ".join(cells) + " |"

    align = "|" + "|".join(
        draw(st.sampled_from([":--", ":-:", "--:", "---"])) for _ in range(columns)
    )
    return "\n".join([row(), align + "|", *(row() for _ in range(rows))])


@st.composite
def code_block(draw: st.DrawFn) -> str:
    language = draw(st.sampled_from(["", "python", "bash", "c++"]))
    lines = [
        "    " * draw(st.integers(0, 3)) + " ".join(draw(st.lists(WORD, min_size=0, max_size=12)))
        for _ in range(draw(st.integers(1, 40)))
    ]
    return f"```{language}\n" + "\n".join(lines) + "\n```"


@st.composite
def document(draw: st.DrawFn) -> str:
    kinds = st.sampled_from(
        ["paragraph", "paragraph", "heading", "list", "table", "code", "math", "quote", "hr"]
    )
    blocks: list[str] = []
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(kinds)
        if kind == "paragraph":
            blocks.append(draw(paragraph_block()))
        elif kind == "heading":
            blocks.append(draw(heading_block()))
        elif kind == "list":
            blocks.append(draw(list_block()))
        elif kind == "table":
            blocks.append(draw(table_block()))
        elif kind == "code":
            blocks.append(draw(code_block()))
        elif kind == "math":
            blocks.append("$$\n" + "\\frac{a}{b} + " * draw(st.integers(1, 20)) + "c\n$$")
        elif kind == "quote":
            blocks.append("> " + draw(paragraph_block()).replace("\n", "\n> "))
        else:
            blocks.append("---")
    return "\n\n".join(blocks)


LIMITS = st.one_of(st.sampled_from([64, 100, 300, 1000, MAX_CHARS]), st.integers(64, 5000))


@SETTINGS
@given(document(), LIMITS)
def test_every_part_fits_and_nothing_is_lost(markdown: str, limit: int) -> None:
    blocks = to_blocks(markdown)
    parts = split(markdown, limit=limit)
    for part in parts:
        check_part(part, limit)
    check_words(parts, blocks, limit)
    ends = [p.source_end for p in parts[:-1]]
    assert all(end is not None for end in ends)
    assert ends == sorted(ends)
    if parts:
        assert parts[-1].source_end is None


def check_words(parts: list[RichPart], blocks: list[Block], limit: int) -> None:
    """The parts hold the words of ``blocks``, in order, and only repeat table headers.

    A header row too long to leave room for rows in a message is not repeated, one too
    long for a message of its own is cut into paragraphs, and a word longer than a
    message is cut; then only that nothing is lost can be checked."""
    headers = header_rows(blocks)
    longest = max((utf16_len(word) for word in words(blocks)), default=0)
    if longest * 2 <= limit and all(
        utf16_len(plain_text_of_row(row)) * 2 <= limit for row in headers
    ):
        assert part_words(parts, blocks) == body_words(blocks)
        shown = header_rows([b for p in parts for b in p.blocks])
        assert all(row in shown for row in headers)
    else:  # (a word longer than a message is cut: count its characters)
        shown_words = words([b for p in parts for b in p.blocks])
        assert Counter("".join(words(blocks))) <= Counter("".join(shown_words))


def plain_text_of_row(row: list[Any]) -> str:
    return "".join(str(cell.get("text", "")) for cell in row)


@settings(SETTINGS, max_examples=examples(40))
@given(document(), LIMITS, inline(max_words=5), inline(max_words=5))
def test_first_and_last_blocks_open_and_close(
    markdown: str, limit: int, head: str, foot: str
) -> None:
    header, footer = paragraph(head[:30]), paragraph(foot[:30])
    parts = split(markdown, first=[header], last=[footer], limit=limit)
    assert parts[0].blocks[0] == header
    assert parts[-1].blocks[-1] == footer
    for part in parts:
        check_part(part, limit)
    check_words(parts, [header, *to_blocks(markdown), footer], limit)


@TABLES
@given(st.data(), st.integers(64, 2000))
def test_a_long_table_is_split_by_rows_with_its_header(data: st.DataObject, limit: int) -> None:
    columns = data.draw(st.integers(1, MAX_COLUMNS))
    table = data.draw(table_block(columns=columns, rows=data.draw(st.integers(20, 60))))
    markdown = "Intro line.\n\n" + table + "\n\nAfter."
    tables = [b for b in to_blocks(markdown) if isinstance(b, InputRichBlockTable)]
    assume(tables)  # (a table with only empty cells shows nothing)
    header, body = tables[0].cells[0], tables[0].cells[1:]
    parts = split(markdown, limit=limit)
    pieces = [b for p in parts for b in p.blocks if isinstance(b, InputRichBlockTable)]
    for part in parts:
        check_part(part, limit)
    header_size = sum(text_len(c.text) for c in header if c.text is not None)
    if pieces and header_size * 2 <= limit:  # a header that leaves room for rows repeats
        rows = []
        for piece in pieces:
            assert dump_row(piece.cells[0]) == dump_row(header)
            rows.extend(piece.cells[1:])
        # rows too long for a message of their own go as paragraphs: the rest are in order
        remaining = iter(dump_row(r) for r in body)
        assert all(dump_row(r) in remaining for r in rows)
    check_words(parts, to_blocks(markdown), limit)


@TABLES
@given(st.data())
def test_a_table_wider_than_twenty_columns_is_preformatted(data: st.DataObject) -> None:
    columns = data.draw(st.integers(MAX_COLUMNS + 1, MAX_COLUMNS + 10))
    table = data.draw(table_block(columns=columns, rows=data.draw(st.integers(1, 10))))
    blocks = to_blocks(table)
    if words(blocks):
        [block] = blocks
        assert isinstance(block, InputRichBlockPreformatted)
        lines = block.text.split("\n")
        assert set(lines[1]) <= {"-", "+"}
    narrow = data.draw(table_block(columns=MAX_COLUMNS, rows=3))
    assert all(isinstance(b, InputRichBlockTable) for b in to_blocks(narrow))
