"""Markdown answers as rich message blocks (bot.rich): what maps to what, the limits, and
the corpus of real-looking answers (tests/corpus) rendered within every limit."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from aiogram.types import (
    InputRichBlockBlockQuotation,
    InputRichBlockDetails,
    InputRichBlockDivider,
    InputRichBlockList,
    InputRichBlockMathematicalExpression,
    InputRichBlockParagraph,
    InputRichBlockPreformatted,
    InputRichBlockSectionHeading,
    InputRichBlockTable,
    InputRichBlockThinking,
    InputRichMessage,
    MessageEntity,
    RichTextBold,
    RichTextCode,
    RichTextItalic,
    RichTextMathematicalExpression,
    RichTextSpoiler,
    RichTextStrikethrough,
    RichTextSuperscript,
    RichTextUnderline,
    RichTextUrl,
)

from bot.markdown import parse
from bot.rich import (
    MAX_BLOCKS,
    MAX_CHARS,
    MAX_COLUMNS,
    MAX_DEPTH,
    Block,
    RichPart,
    details,
    measure,
    paragraph,
    plain_text,
    split,
    thinking,
    to_blocks,
)

CORPUS = Path(__file__).parent / "corpus"


# --- Helpers (also used by tests/test_rich_split.py and tests/test_rich_stream.py) ------


def corpus() -> dict[str, str]:
    """The corpus answers by name, and a 50,000-character one made of their pieces."""
    answers = {path.stem: path.read_text(encoding="utf-8") for path in sorted(CORPUS.glob("*.md"))}
    answers["long_answer"] = long_answer(answers)
    return answers


def long_answer(answers: dict[str, str], length: int = 50_000) -> str:
    """An answer of about ``length`` characters: the corpus answers in turn, then a long
    table, a long list and a long code block (so that they are split), in sections."""
    pieces: list[str] = []
    total = 0
    names = sorted(answers)
    i = 0
    while total < length * 0.7:
        name = names[i % len(names)]
        piece = f"## Part {i + 1}: {name}\n\n{answers[name].strip()}\n\n"
        pieces.append(piece)
        total += len(piece)
        i += 1
    rows = "".join(
        f"| {n} | `item_{n}` | $O(n^{n % 4})$ | **{n * 7 % 13}** |\n" for n in range(300)
    )
    pieces.append(
        "## A long table\n\n| # | Name | Cost | Score |\n|---:|---|:-:|---|\n" + rows + "\n"
    )
    items = "".join(
        f"{n + 1}. Step {n + 1}: do *this* then `that` ({n} of 250)\n" for n in range(250)
    )
    pieces.append("## A long list\n\n" + items + "\n")
    code = "".join(
        f"    value_{n} = compute({n}, factor={n % 9})  # line {n}\n" for n in range(400)
    )
    pieces.append("## A long code block\n\n```python\ndef setup():\n" + code + "```\n")
    return "".join(pieces)


def dump(message: InputRichMessage) -> dict[str, Any]:
    return message.model_dump(mode="json", exclude_none=True)


def validate(blocks: Sequence[Block]) -> InputRichMessage:
    """``blocks`` as a message that Telegram's schema accepts, with no empty text."""
    message = InputRichMessage(blocks=list(blocks))
    again = InputRichMessage.model_validate(dump(message))
    assert dump(again) == dump(message)
    for text in _texts(dump(message)):
        assert text.strip(), f"an empty text in {dump(message)}"
    return again


def _texts(value: Any) -> Iterator[str]:
    """The strings that Telegram would take as texts of blocks, cells and rich texts."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in ("text", "summary", "expression"):
                yield from _flat(inner)
            elif key in ("blocks", "items", "cells"):
                yield from _texts(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _texts(inner)


def _flat(text: Any) -> Iterator[str]:
    """A rich text as one string (its parts may be blank, the whole may not)."""
    parts: list[str] = []

    def walk(t: Any) -> None:
        if isinstance(t, str):
            parts.append(t)
        elif isinstance(t, list):
            for inner in t:
                walk(inner)
        elif isinstance(t, dict):
            walk(t.get("text", t.get("expression", "")))

    walk(text)
    yield "".join(parts)


def check_part(part: RichPart, limit: int = MAX_CHARS) -> None:
    """A part within every limit, its sizes as measure() counts, its message valid."""
    chars, count, depth = measure(part.blocks)
    assert (chars, count) == (part.chars, part.count)
    assert chars <= limit, (chars, limit)
    assert count <= MAX_BLOCKS
    assert depth <= MAX_DEPTH
    assert part.blocks
    assert chars > 0
    validate(part.message().blocks or [])
    for block in part.blocks:
        assert not (isinstance(block, InputRichBlockTable) and len(block.cells[0]) > MAX_COLUMNS)


def words(blocks: Sequence[Block]) -> list[str]:
    return plain_text(blocks).split()


def part_words(parts: Sequence[RichPart], blocks: Sequence[Block]) -> list[str]:
    """The words of all parts, to compare with ``body_words(blocks)`` of the unsplit
    ``blocks``: without the header rows of the tables that have more rows (the pieces of
    a table too long for a message repeat its header)."""
    headers = {str(row) for row in _header_rows(blocks, with_body=True)}
    return words([_without_headers(b, headers) for part in parts for b in part.blocks])


def body_words(blocks: Sequence[Block]) -> list[str]:
    """The words of ``blocks`` without the header rows of their tables that have more
    rows (at any depth)."""
    headers = {str(row) for row in _header_rows(blocks, with_body=True)}
    return words([_without_headers(block, headers) for block in blocks])


def _header_rows(blocks: Sequence[Any], *, with_body: bool) -> Iterator[list[Any]]:
    for block in blocks:
        if isinstance(block, InputRichBlockTable):
            if block.cells[0][0].is_header and (len(block.cells) > 1 or not with_body):
                yield dump_row(block.cells[0])
        elif isinstance(block, InputRichBlockList):
            for item in block.items:
                yield from _header_rows(item.blocks, with_body=with_body)
        elif isinstance(getattr(block, "blocks", None), list):
            yield from _header_rows(block.blocks, with_body=with_body)


def _without_headers(block: Any, headers: set[str]) -> Any:
    if isinstance(block, InputRichBlockTable):
        cells = [r for r in block.cells if not (r[0].is_header and str(dump_row(r)) in headers)]
        return block.model_copy(update={"cells": cells})
    if isinstance(block, InputRichBlockList):
        items = [
            item.model_copy(update={"blocks": [_without_headers(b, headers) for b in item.blocks]})
            for item in block.items
        ]
        return block.model_copy(update={"items": items})
    inner = getattr(block, "blocks", None)
    if isinstance(inner, list):
        return block.model_copy(update={"blocks": [_without_headers(b, headers) for b in inner]})
    return block


def header_rows(blocks: Sequence[Block]) -> list[list[Any]]:
    """The header rows of the tables in ``blocks`` (at any depth), as dumped."""
    return list(_header_rows(blocks, with_body=False))


def dump_row(row: Sequence[Any]) -> list[Any]:
    return [cell.model_dump(mode="json", exclude_none=True) for cell in row]


def one(markdown: str) -> Any:
    """The one block ``markdown`` renders to (validated)."""
    blocks = to_blocks(markdown)
    assert len(blocks) == 1, blocks
    validate(blocks)
    return blocks[0]


def text_of(block: Any) -> Any:
    return block.text


# --- Blocks --------------------------------------------------------------------------


def test_headings_take_their_size_from_the_level() -> None:
    for level in range(1, 7):
        block = one("#" * level + " Title **bold**")
        assert isinstance(block, InputRichBlockSectionHeading)
        assert block.size == level
        assert block.text == ["Title ", RichTextBold(text="bold")]
    assert one("Setext\n===").size == 1
    assert one("Setext\n---").size == 2


def test_a_paragraph_keeps_bold_italic_strikethrough_code_and_links() -> None:
    block = one("a **b** *c* ~~d~~ `e` [f](https://example.com/x?y=1) ***g***")
    assert isinstance(block, InputRichBlockParagraph)
    assert block.text == [
        "a ",
        RichTextBold(text="b"),
        " ",
        RichTextItalic(text="c"),
        " ",
        RichTextStrikethrough(text="d"),
        " ",
        RichTextCode(text="e"),
        " ",
        RichTextUrl(text="f", url="https://example.com/x?y=1"),
        " ",
        RichTextItalic(text=RichTextBold(text="g")),
    ]


def test_formatting_nests() -> None:
    block = one("**bold *and italic* [link `code`](https://a.example)**")
    assert block.text == RichTextBold(
        text=[
            "bold ",
            RichTextItalic(text="and italic"),
            " ",
            RichTextUrl(text=["link ", RichTextCode(text="code")], url="https://a.example"),
        ]
    )


@pytest.mark.parametrize(
    ("markdown", "text"),
    [
        ("[docs](/docs/intro)", "docs"),
        ("[file](./data.csv)", "file"),
        ("[x](javascript:alert(1))", "[x](javascript:alert(1))"),
        ("[mail](mailto:a@b.example)", "mail"),
        ("[local](http://localhost/)", "local"),
    ],
)
def test_unsafe_or_relative_links_are_plain_text(markdown: str, text: str) -> None:
    assert one(markdown).text == text


def test_autolinks_and_images_are_links() -> None:
    assert one("<https://example.com>").text == RichTextUrl(
        text="https://example.com", url="https://example.com"
    )
    assert one("![a chart](https://example.com/c.png)").text == RichTextUrl(
        text="a chart", url="https://example.com/c.png"
    )
    assert one("![a chart](chart.png)").text == "a chart"


def test_single_newlines_are_line_breaks() -> None:
    assert one("one\ntwo  \nthree\\\nfour").text == "one\ntwo\nthree\nfour"


def test_html_is_text() -> None:
    assert one("<b>bold?</b> <script>alert(1)</script> &amp; &copy;").text == (
        "<b>bold?</b> <script>alert(1)</script> & ©"
    )
    block = one("<div>\n<p>hi</p>\n</div>")
    assert block.text == "<div>\n<p>hi</p>\n</div>"


def test_bullet_and_numbered_lists() -> None:
    block = one("- one **b**\n- two")
    assert isinstance(block, InputRichBlockList)
    assert [item.blocks for item in block.items] == [
        [InputRichBlockParagraph(text=["one ", RichTextBold(text="b")])],
        [InputRichBlockParagraph(text="two")],
    ]
    assert all(item.value is None and item.has_checkbox is None for item in block.items)
    numbered = one("3. three\n4. four\n9. five")
    assert [(item.value, item.type) for item in numbered.items] == [(3, "1"), (4, "1"), (5, "1")]


def test_nested_lists_nest() -> None:
    block = one("- a\n  - b\n    1. c\n- d")
    inner = block.items[0].blocks[1]
    assert isinstance(inner, InputRichBlockList)
    assert inner.items[0].blocks[0] == InputRichBlockParagraph(text="b")
    deepest = inner.items[0].blocks[1]
    assert deepest.items[0].value == 1
    assert measure([block])[2] == 4  # list, its item's list, that item's list, a paragraph


def test_task_lists_have_checkboxes() -> None:
    block = one("- [ ] todo `x`\n- [x] done\n- [X] also done\n- plain\n- [y] not a task")
    items = block.items
    assert [(i.has_checkbox, bool(i.is_checked)) for i in items] == [
        (True, False),
        (True, True),
        (True, True),
        (None, False),
        (None, False),
    ]
    assert items[0].blocks == [InputRichBlockParagraph(text=["todo ", RichTextCode(text="x")])]
    assert items[4].blocks == [InputRichBlockParagraph(text="[y] not a task")]
    numbered = one("1. [x] first\n2. [ ] second")
    assert [(i.value, i.has_checkbox) for i in numbered.items] == [(1, True), (2, True)]


def test_a_code_block_keeps_its_language_and_indentation() -> None:
    block = one("```python\n    indented = True\nprint(indented)\n```")
    assert isinstance(block, InputRichBlockPreformatted)
    assert block.language == "python"
    assert block.text == "    indented = True\nprint(indented)"
    blocks = to_blocks("Text\n\n        deeper\n    code\n")
    assert blocks[1] == InputRichBlockPreformatted(text="    deeper\ncode")
    assert one("~~~\nno language\n~~~").language is None
    assert one("```c++ {.numberLines}\nint x;\n```").language == "c++"


def test_an_unclosed_fence_is_code_to_the_end() -> None:
    assert one("```js\nlet a = 1;\n**not bold**").text == "let a = 1;\n**not bold**"


def test_quotes_hold_blocks() -> None:
    block = one("> quoted **text**\n>\n> - item\n> > inner")
    assert isinstance(block, InputRichBlockBlockQuotation)
    assert [type(b) for b in block.blocks] == [
        InputRichBlockParagraph,
        InputRichBlockList,
        InputRichBlockBlockQuotation,
    ]


def test_tables_keep_headers_alignment_and_formatting() -> None:
    block = one(
        "| Left | Center | Right | None |\n"
        "|:-----|:------:|------:|------|\n"
        "| **b** | `c\\|d` | [l](https://l.example) |  |\n"
    )
    assert isinstance(block, InputRichBlockTable)
    header, row = block.cells
    assert [c.text for c in header] == ["Left", "Center", "Right", "None"]
    assert all(c.is_header for c in header)
    assert not any(c.is_header for c in row)
    assert [c.align for c in header] == ["left", "center", "right", "left"]
    assert {c.valign for c in header + row} == {"top"}
    assert row[0].text == RichTextBold(text="b")
    assert row[1].text == RichTextCode(text="c|d")
    assert row[2].text == RichTextUrl(text="l", url="https://l.example")
    assert row[3].text is None  # an empty cell: no (empty) text
    assert measure([block]) == (len("LeftCenterRightNonebc|dl"), 3, 1)


def test_formulas_in_table_cells() -> None:
    block = one(
        "| Algorithm | Best | Worst | Stable |\n"
        "|---|---|---|---|\n"
        "| Bubble sort | $O(n)$ | $O(n^2)$ | Yes |\n"
        "| Abs | $\\|x\\|$ | $O(n \\log n)$ | No |\n"
    )
    bubble, absolute = block.cells[1:]
    assert [c.text for c in bubble] == [
        "Bubble sort",
        RichTextMathematicalExpression(expression="O(n)"),
        RichTextMathematicalExpression(expression="O(n^2)"),
        "Yes",
    ]
    assert absolute[1].text == RichTextMathematicalExpression(expression="|x|")
    assert absolute[2].text == RichTextMathematicalExpression(expression="O(n \\log n)")


def test_a_table_wider_than_telegram_takes_is_aligned_text() -> None:
    columns = MAX_COLUMNS + 4
    header = "| " + " | ".join(f"c{i}" for i in range(columns)) + " |\n"
    rule = "|" + "---|" * columns + "\n"
    row = "| " + " | ".join(str(i * 100) for i in range(columns)) + " |\n"
    block = one(header + rule + row)
    assert isinstance(block, InputRichBlockPreformatted)
    lines = block.text.split("\n")
    assert len(lines) == 3
    assert lines[0].split(" | ")[:3] == ["c0", "c1 ", "c2 "]
    assert lines[2].split(" | ")[:3] == ["0 ", "100", "200"]
    assert len({line.index("|") for line in (lines[0], lines[2])}) == 1


def test_display_and_inline_math() -> None:
    for markdown in ("$$\nx^2 + 1\n$$", "$$x^2 + 1$$", "\\[\nx^2 + 1\n\\]", "\\[x^2 + 1\\]"):
        assert one(markdown) == InputRichBlockMathematicalExpression(expression="x^2 + 1")
    assert one("a $x_1$ b \\(y^2\\) c").text == [
        "a ",
        RichTextMathematicalExpression(expression="x_1"),
        " b ",
        RichTextMathematicalExpression(expression="y^2"),
        " c",
    ]
    blocks = to_blocks("Solve:\n$$\nx = 1\n$$\nThen more.")  # no blank lines around
    assert [type(b) for b in blocks] == [
        InputRichBlockParagraph,
        InputRichBlockMathematicalExpression,
        InputRichBlockParagraph,
    ]


@pytest.mark.parametrize(
    "markdown",
    [
        "It costs $5 and $10 per month.",
        "Between $20–$30, or $5/$10.",
        "US$5.99 or 5$ each",
        "I have $ 5 and $ 6",
        "Escaped \\$x\\$ stays.",
    ],
)
def test_prices_stay_text(markdown: str) -> None:
    text = one(markdown).text
    assert isinstance(text, str)
    assert "$" in text


def test_an_open_double_dollar_is_text() -> None:
    block = one("$$\nx = \\frac{1}{2}")
    assert isinstance(block, InputRichBlockParagraph)
    assert block.text == "$$\nx = \\frac{1}{2}"


def test_a_divider() -> None:
    assert to_blocks("a\n\n---\n\nb")[1] == InputRichBlockDivider()


def test_footnotes_are_marks_and_a_last_section() -> None:
    blocks = to_blocks(
        "Water[^w] boils[^b][^w].\n\n[^b]: At sea level.\n\nMore text.\n\n[^w]: H2O, *liquid*."
    )
    validate(blocks)
    first, more, divider, note_b, note_w = blocks
    assert first.text == [
        "Water",
        RichTextSuperscript(text="1"),
        " boils",
        RichTextSuperscript(text="2,1"),
        ".",
    ]
    assert more.text == "More text."
    assert divider == InputRichBlockDivider()
    assert note_b.text == [RichTextSuperscript(text="2"), " At sea level."]
    assert note_w.text == [
        RichTextSuperscript(text="1"),
        " H2O, ",
        RichTextItalic(text="liquid"),
        ".",
    ]


def test_nothing_empty_is_made() -> None:
    for markdown in ("#", "```\n```", "- ", "$$ $$", "> ", "| |\n|-|\n| |", "**", "   ", ""):
        blocks = to_blocks(markdown)
        assert measure(blocks)[0] > 0 or not blocks, (markdown, blocks)
        if blocks:
            validate(blocks)
        else:
            assert split(markdown) == []
    assert to_blocks("** **") == [InputRichBlockDivider()]  # CommonMark's thematic break
    assert split("** **\n\n***") == []


def test_deep_nesting_is_flattened_not_refused() -> None:
    markdown = "".join("  " * i + f"- level{i}\n" for i in range(25)) + "\n" + ">" * 30 + " q"
    blocks = to_blocks(markdown)
    validate(blocks)
    assert measure(blocks)[2] == MAX_DEPTH
    # the levels past the deepest are paragraphs at its depth, with their bullet
    assert [w for w in words(blocks) if w != "•"] == [f"level{i}" for i in range(25)] + ["q"]
    assert words(blocks).count("•") == 25 - (MAX_DEPTH - 1)


def test_nesting_deeper_than_the_parser_goes_is_not_lost() -> None:
    markdown = "".join("  " * i + f"- level{i}\n" for i in range(70)) + "\nafter"
    blocks = to_blocks(markdown)
    validate(blocks)
    text = plain_text(blocks)
    assert all(f"level{i}" in text for i in range(70))
    assert text.endswith("after")


def test_utf16_lengths() -> None:
    assert measure(to_blocks("Привет 👋🏽")) == (len("Привет ") + 4, 1, 1)
    assert measure(to_blocks("$\\alpha$ é")) == (len("\\alpha é"), 1, 1)


def test_measure_counts_blocks_items_and_rows() -> None:
    blocks = to_blocks("# h\n\n- a\n- b\n  > c\n\n| x |\n|---|\n| y |\n| z |")
    # heading; list + 2 items + 2 paragraphs + a quote + its paragraph; table + 3 rows
    assert measure(blocks) == (len("habcxyz"), 1 + 7 + 4, 3)
    assert measure([]) == (0, 0, 0)


def test_plain_text_flattens_everything() -> None:
    blocks = to_blocks("# T\n\n- a **b**\n\n| h1 | h2 |\n|---|---|\n| $x$ | y |\n\n$$z$$")
    assert plain_text(blocks) == "T\na b\nh1\nh2\nx\ny\nz"


def test_parse_gives_a_tree() -> None:
    tree = parse("# a\n\n- [x] b\n\n$$c$$")
    assert [node.type for node in tree.children] == ["heading", "bullet_list", "math_block"]
    item = tree.children[1].children[0]
    assert item.meta["checked"] is True


# --- Headers, footers, reasoning -------------------------------------------------------


def test_a_header_with_entities() -> None:
    block = paragraph("GPT-4o\n", [MessageEntity(type="bold", offset=0, length=6)])
    assert block == InputRichBlockParagraph(text=RichTextBold(text="GPT-4o"))
    validate([block])


def test_entities_nest_and_cross() -> None:
    text = "ab😀cd ef gh"
    entities = [
        MessageEntity(type="bold", offset=0, length=5),  # ab😀c (the emoji is 2 units)
        MessageEntity(type="italic", offset=4, length=4),  # cd e
        MessageEntity(type="text_link", offset=7, length=2, url="https://x.example"),
        MessageEntity(type="underline", offset=10, length=2),
        MessageEntity(type="spoiler", offset=10, length=1),
        MessageEntity(type="pre", offset=0, length=1),
        MessageEntity(type="hashtag", offset=7, length=2),
    ]
    block = paragraph(text, entities)
    validate([block])
    assert block.text == [
        RichTextBold(
            text=[RichTextCode(text="a"), "b😀", RichTextItalic(text="c")],
        ),
        RichTextItalic(text=["d ", RichTextUrl(text="e", url="https://x.example")]),
        RichTextUrl(text="f", url="https://x.example"),
        " ",
        RichTextUnderline(text=[RichTextSpoiler(text="g"), "h"]),
    ]


def test_details_keep_the_end_of_long_reasoning() -> None:
    short = details("Thought for 3 s", "First I **check**.\n\n- a\n- b")
    assert short.summary == "Thought for 3 s"
    assert not short.is_open
    assert [type(b) for b in short.blocks] == [InputRichBlockParagraph, InputRichBlockList]
    validate([short])
    reasoning = "\n\n".join(f"Paragraph {i} " + "word " * 30 for i in range(40))
    long = details("Thought for 12 s", reasoning, max_chars=1000)
    validate([long])
    assert isinstance(long, InputRichBlockDetails)
    assert long.blocks[0] == InputRichBlockParagraph(text="…")
    assert plain_text(long.blocks[1:2]).startswith("Paragraph ")
    assert plain_text(long.blocks).endswith("Paragraph 39 " + "word " * 29 + "word")
    assert measure([long])[0] <= 1000 + len("Thought for 12 s")
    huge = details("t", "x " * 5000, max_chars=100)
    validate([huge])
    assert plain_text(huge.blocks).startswith("…x x")
    assert measure(huge.blocks)[0] <= 100


def test_details_hold_nested_reasoning_within_the_depth() -> None:
    reasoning = "".join("  " * i + f"- step{i}\n" for i in range(20))
    block = details("Thought", reasoning)
    validate([block])
    assert measure([block])[2] == MAX_DEPTH
    assert [w for w in words(block.blocks) if w != "•"] == [f"step{i}" for i in range(20)]


def test_thinking_shows_the_end() -> None:
    assert thinking("Let me think.") == InputRichBlockThinking(text="Let me think.")
    assert thinking("   ") == InputRichBlockThinking(text="…")
    text = " ".join(f"w{i}" for i in range(1000))
    block = thinking(text, max_chars=100)
    assert block.text.startswith("…w")
    assert block.text.endswith("w999")
    assert len(block.text) <= 100
    assert text.endswith(block.text[1:])
    lines = "\n".join(f"line number {i}" for i in range(100))
    assert thinking(lines, max_chars=60).text.startswith("…line number ")


# --- Messages ----------------------------------------------------------------------------


def test_split_puts_first_and_last_around_the_answer() -> None:
    header = paragraph("Model\n", [MessageEntity(type="bold", offset=0, length=5)])
    footer = paragraph("footer")
    [part] = split("Hello **world**", first=[header], last=[footer])
    assert part.blocks == (header, to_blocks("Hello **world**")[0], footer)
    assert part.source_end is None
    check_part(part)
    assert split("") == []
    assert split("   \n\n---\n") == []
    assert [p.blocks for p in split("", first=[header], last=[footer])] == [(header, footer)]
    parts = split("word " * 60, last=[paragraph("f " * 30)], limit=300)
    assert parts[-1].blocks == (paragraph("f " * 30),)
    assert parts[-2].source_end == len("word " * 60)


def test_split_refuses_first_blocks_that_cannot_fit() -> None:
    with pytest.raises(ValueError, match="limit"):
        split("a", limit=10)
    with pytest.raises(ValueError, match="fit"):
        split("a", first=[paragraph("x" * 200)], limit=100)


def test_a_heading_goes_with_what_follows_it() -> None:
    markdown = "intro " * 150 + "\n\n## Next\n\n" + "body " * 100
    parts = split(markdown, limit=1000)
    assert [type(b) for b in parts[1].blocks][:2] == [
        InputRichBlockSectionHeading,
        InputRichBlockParagraph,
    ]
    assert markdown[parts[0].source_end or 0 :].startswith("## Next")


def test_source_end_is_where_the_next_part_starts() -> None:
    sections = [f"## Section {i}\n\n" + f"text{i} " * 100 for i in range(6)]
    markdown = "\n\n".join(sections)
    parts = split(markdown, limit=1200)
    assert len(parts) == 6
    for part, section in zip(parts[1:], sections[1:], strict=True):
        assert part.blocks[0].text == section.split("\n")[0][3:]
    for before, part in pairwise(parts):
        assert before.source_end is not None
        title = part.blocks[0].text
        assert markdown[before.source_end :].startswith(f"## {title}")
    assert parts[-1].source_end is None


# --- The corpus ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(corpus()))
@pytest.mark.parametrize("limit", [MAX_CHARS, 2000, 300])
def test_the_corpus_renders_within_the_limits(name: str, limit: int) -> None:
    markdown = corpus()[name]
    blocks = to_blocks(markdown)
    assert measure(blocks)[2] <= MAX_DEPTH
    parts = split(markdown, limit=limit)
    assert parts
    for part in parts:
        check_part(part, limit)
    assert part_words(parts, blocks) == body_words(blocks)
    shown = header_rows([b for p in parts for b in p.blocks])
    assert all(row in shown for row in header_rows(blocks))
    ends = [p.source_end for p in parts[:-1]]
    assert ends == sorted(ends)
    assert all(end is not None and 0 < end <= len(markdown) for end in ends)


def test_the_long_answer_is_long_and_split() -> None:
    markdown = corpus()["long_answer"]
    assert len(markdown) >= 50_000
    parts = split(markdown)
    assert len(parts) >= 2
    tables = [b for p in parts for b in p.blocks if isinstance(b, InputRichBlockTable)]
    long_table = [t for t in tables if t.cells[0][0].text == "#"]
    assert sum(len(t.cells) - 1 for t in long_table) == 300


def test_the_corpus_has_what_it_should() -> None:
    answers = corpus()
    text = "".join(answers.values())
    assert "$O(n^2)$" in answers["sorting_complexity"]
    assert "`ps aux \\| grep python`" in answers["table_code_pipes"]
    assert "\\sqrt" in answers["quadratic_formula"] and "pmatrix" in answers["quadratic_formula"]
    assert "[^sun]" in answers["footnotes"]
    assert any("\u0400" <= ch <= "\u04ff" for ch in answers["russian"])
    assert "👨‍👩‍👧‍👦" in answers["emoji"]
    assert "costs $5" in answers["prices_and_formulas"]
    assert "- [ ]" in text and "- [x]" in text
    deepest = max(
        len(line) - len(line.lstrip()) for line in answers["nested_lists_deep"].split("\n")
    )
    assert deepest >= 8 * 2
