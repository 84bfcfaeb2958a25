"""bot.rich.RichStream: a growing answer as rich messages. Whatever the cut, every part
is valid and within the limits, parts before the last never change once returned, and
the whole answer ends as split() makes it."""

from __future__ import annotations

import pytest
from aiogram.types import (
    InputRichBlockMathematicalExpression,
    InputRichBlockParagraph,
    InputRichBlockPreformatted,
    InputRichBlockSectionHeading,
    InputRichBlockTable,
    RichTextBold,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.rich import (
    MAX_BLOCKS,
    MAX_CHARS,
    MAX_DEPTH,
    RichPart,
    RichStream,
    measure,
    paragraph,
    split,
    to_blocks,
)
from tests.hypothesis_profiles import examples
from tests.test_rich import body_words, check_part, corpus, part_words, validate
from tests.test_rich_split import check_words, document

STEP = 97
# The 50,000-character answer is cut every 293 characters: 170 cuts, each at least once
# in every kind of block it holds (its first 12,000 characters are cut every 31 in
# test_parts_before_the_last_are_final_as_a_long_answer_grows).
LONG_STEP = 293


def feed_all(stream: RichStream, prefixes: list[str], limit: int) -> list[RichPart]:
    """Feed ``prefixes`` in order, checking every result; returns the last one.

    A part or block returned again is the same object: it is checked once (kept, so
    that its id is not reused)."""
    previous: list[RichPart] = []
    seen: dict[int, object] = {}
    for prefix in prefixes:
        parts = stream.feed(prefix)
        for part in parts:
            if id(part) in seen:
                continue
            seen[id(part)] = part
            chars, count, depth = measure(part.blocks)
            assert (chars, count) == (part.chars, part.count)
            assert 0 < chars <= limit and count <= MAX_BLOCKS and depth <= MAX_DEPTH
            fresh = [b for b in part.blocks if id(b) not in seen]
            seen.update((id(b), b) for b in fresh)
            if fresh:
                validate(fresh)
        assert_extends(previous, parts)
        for part in parts[:-1]:
            assert part.source_end is not None
            assert 0 <= part.source_end <= len(prefix)
        if parts:
            assert parts[-1].source_end is None
        previous = parts
    return previous


def assert_extends(previous: list[RichPart], parts: list[RichPart]) -> None:
    """Parts before the last, once returned, come back unchanged."""
    frozen = previous[:-1]
    assert len(parts) >= len(frozen)
    for old, new in zip(frozen, parts, strict=False):
        assert old is new or old == new


def prefixes(markdown: str, step: int = STEP) -> list[str]:
    return [markdown[:end] for end in range(0, len(markdown), step)] + [markdown]


@pytest.mark.parametrize("name", sorted(corpus()))
@pytest.mark.parametrize("limit", [MAX_CHARS, 1500])
def test_the_corpus_streams(name: str, limit: int) -> None:
    markdown = corpus()[name]
    stream = RichStream(limit=limit)
    last = feed_all(stream, prefixes(markdown, LONG_STEP if name == "long_answer" else STEP), limit)
    blocks = to_blocks(markdown)
    expected = body_words(blocks)
    assert part_words(last, blocks) == expected
    final = stream.feed(markdown, final=True)
    assert_extends(last, final)
    for part in final:
        check_part(part, limit)
    assert part_words(final, blocks) == expected
    assert part_words(split(markdown, limit=limit), blocks) == expected


GROWING = {
    "table": "Intro.\n\n| # | Name | Cost |\n|---|:-:|--:|\n"
    + "".join(f"| {i} | **item {i}** [^{i % 3}] | $O(n^{i % 4})$ |\n" for i in range(40))
    + "\nAfter the table.\n\n[^0]: zero\n[^1]: one\n",
    "ordered list": "Steps:\n\n"
    + "".join(f"{i + 3}. step *{i}* `x`\n   more of {i}\n" for i in range(40))
    + "\n- [ ] a task\n- [x] done\n",
    "loose list": "".join(f"- item {i}\n\n  second paragraph {i}\n\n" for i in range(25)),
    "nested list": "".join(f"* top {i}\n  1. inner {i}\n  2. inner\n" for i in range(25)),
    "list then other bullet": "- a\n- b\n- c\n+ other list\n+ more\n",
    "code": "Code:\n\n````python\n"
    + "".join(f"def f{i}(x):\n    return x * {i}  # `{i}` ```\n\n" for i in range(30))
    + "~~~\n  ```\n````\n\nAfter.\n\n```\nagain\n``",
    "prose": "A **bold** start, an _underscored_ word and **a closer.** after it.\n"
    + "- a line that may be a list item\n1. or a numbered one\n# or a heading\n"
    + "Then some text that goes on and on, and a formula $x^2$ and a price of $5 or so,\n"
    + "then `code` and [a link](https://example.com) and &amp; and more words. " * 3
    + "\n\nA new paragraph: _it_ was *fine* and \\escaped\\ and 1986. A year.\n",
}


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(document(), st.lists(st.integers(0, 1 << 20), min_size=1, max_size=40))
def test_the_stream_renders_every_prefix_as_a_fresh_parse(markdown: str, points: list[int]) -> None:
    """However the stream got there (settled blocks kept, a growing table or list or
    paragraph built on), its message is the one a fresh stream makes of the text."""
    stream = RichStream()
    for end in sorted({p % (len(markdown) + 1) for p in points}):
        parts = stream.feed(markdown[:end])
        fresh = RichStream().feed(markdown[:end])
        if len(parts) == len(fresh) == 1:
            assert parts == fresh, markdown[:end]


@pytest.mark.parametrize("name", sorted(GROWING))
def test_a_growing_table_or_list_renders_as_if_parsed_whole(name: str) -> None:
    """The stream parses only the unsettled rows or items of the table or list being
    written: at every step its message is the one a fresh stream makes of that text."""
    markdown = GROWING[name]
    stream = RichStream()
    for end in range(1, len(markdown) + 1, 3):
        parts = stream.feed(markdown[:end])
        assert parts == RichStream().feed(markdown[:end]), markdown[:end]
        assert len(parts) <= 1
        for part in parts:
            check_part(part)
    assert stream.feed(markdown, final=True) == split(markdown)


@pytest.mark.parametrize(
    "chunks",
    [
        ["Some *open text", " and more*", " then _x", " y_ end", " and `co", " de` ok"],
        ["A price $5", " and $6", " or $x", "^2$ then", " [a", "](https://a.example) b"],
        ["Para text\n-", " ", "item here", " and more"],
        ["Para text\n1.", " ", "first", " item"],
        ["Para text\n  ", "- item", " two"],
        ["Para text\n", "  ", "> quoted", " text"],
        ["An &amp", " x;", " and &copy", ";", " end \\", "* not", " emphasis*"],
        ["Cost: ", "12", ". Then", " 1986. was", " a year", " --- or", " so"],
        ["Title line ", " \n", "=", "==", " more"],
    ],
)
def test_a_growing_paragraph_renders_as_if_parsed_whole(chunks: list[str]) -> None:
    """Text that only lengthens the paragraph being written is not parsed again; text
    that could change anything before it, or start a block, is."""
    stream = RichStream()
    text = ""
    for chunk in chunks:
        text += chunk
        assert stream.feed(text) == RichStream().feed(text), text


def test_an_unclosed_fence_is_code_so_far() -> None:
    [part] = RichStream().feed("Code:\n\n```python\ndef f():\n    return 1")
    assert part.blocks == (
        InputRichBlockParagraph(text="Code:"),
        InputRichBlockPreformatted(text="def f():\n    return 1", language="python"),
    )
    [part] = RichStream().feed("Code:\n\n```pyth")
    assert part.blocks == (InputRichBlockParagraph(text="Code:"),)


def test_half_a_table_shows_its_complete_rows() -> None:
    stream = RichStream()
    table = "| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4"
    [part] = stream.feed(table)
    [block] = part.blocks
    assert isinstance(block, InputRichBlockTable)
    assert [[c.text for c in row] for row in block.cells] == [["a", "b"], ["1", "2"]]
    [part] = stream.feed(table + " |\n")
    assert [[c.text for c in row] for row in part.blocks[0].cells][-1] == ["3", "4"]
    [part] = RichStream().feed(table, final=True)  # the whole answer: the row is complete
    assert len(part.blocks[0].cells) == 3


def test_an_open_double_dollar_is_text() -> None:
    stream = RichStream()
    [part] = stream.feed("Formula:\n\n$$\nx^2 +")
    assert not any(isinstance(b, InputRichBlockMathematicalExpression) for b in part.blocks)
    assert part.blocks[-1] == InputRichBlockParagraph(text="$$\nx^2 +")
    [part] = stream.feed("Formula:\n\n$$\nx^2 + 1\n$$\n")
    assert part.blocks[-1] == InputRichBlockMathematicalExpression(expression="x^2 + 1")


def test_an_unclosed_bold_is_text_until_closed() -> None:
    stream = RichStream()
    assert stream.feed("This is **bold")[0].blocks == (
        InputRichBlockParagraph(text="This is **bold"),
    )
    assert stream.feed("This is **bold**")[0].blocks == (
        InputRichBlockParagraph(text=["This is ", RichTextBold(text="bold")]),
    )


def test_a_half_written_line_does_not_settle_the_block_before() -> None:
    stream = RichStream()
    [part] = stream.feed("para\n#")  # "#": an empty heading, for now
    assert part.blocks == (InputRichBlockParagraph(text="para"),)
    [part] = stream.feed("para\n#hashtag and more")
    assert part.blocks == (InputRichBlockParagraph(text="para\n#hashtag and more"),)
    [part] = stream.feed("para\n#hashtag and more\n\n# Title\n\nbody")
    assert part.blocks[1] == InputRichBlockSectionHeading(text="Title", size=1)


def test_a_table_after_a_paragraph_settles_only_when_its_delimiter_row_does() -> None:
    stream = RichStream(limit=100)
    text = "word " * 15 + "\n| a | b |\n|-"
    feed_all(stream, [text, text + "-|--|\n| 1 | 2 |\n", text + "x"], 100)


def test_a_formula_after_a_paragraph_settles_only_when_it_is_closed() -> None:
    text = "word " * 30 + "\n$$\nx^2\n$$"
    feed_all(RichStream(limit=100), [text, text + "x + 1", text + "x + 1\n\nmore\n"], 100)
    [part] = RichStream().feed(text + "x")  # "$$x": not a closing line, all one paragraph
    [block] = part.blocks
    assert isinstance(block, InputRichBlockParagraph)


def test_a_part_is_not_final_while_only_what_may_vanish_follows_it() -> None:
    """A half-written closing fence shows as a line of code, then closes: had the part
    before it been final, it would be left last once sent."""
    code = "```\n" + "".join(f"line {i} " * 5 + "\n" for i in range(2))  # 71 characters
    stream = RichStream(limit=71)
    [draft] = feed_all(stream, [code + "``"], 71)  # the lines, and "``" for the next part
    assert [p.blocks for p in feed_all(stream, [code + "```\n"], 71)] == [draft.blocks]
    more = code + "```\n\n#"  # an empty heading, for now: nothing visible follows
    assert len(feed_all(stream, [more, more + "# Title\n"], 71)) == 1
    # The heading is settled once a line follows it (or the answer is complete).
    assert len(feed_all(stream, [more + "# Title\n\nText.\n"], 71)) == 2
    assert len(RichStream(limit=71).feed(more + "# Title\n", final=True)) == 2


def test_first_blocks_open_the_first_part_only() -> None:
    header = paragraph("Model")
    stream = RichStream(first=[header], limit=200)
    assert [p.blocks for p in stream.feed("")] == [(header,)]
    parts = feed_all(stream, prefixes("\n\n".join(["word " * 20] * 10), 13), 200)
    assert len(parts) > 3
    assert parts[0].blocks[0] == header
    assert all(header not in p.blocks for p in parts[1:])
    assert RichStream().feed("") == []


def test_a_new_answer_starts_over() -> None:
    stream = RichStream(limit=100)
    first = stream.feed("\n\n".join(["alpha " * 10] * 6) + "\n\n")
    assert len(first) > 1
    again = stream.feed("beta")
    assert [p.blocks for p in again] == [(InputRichBlockParagraph(text="beta"),)]


def test_a_paragraph_longer_than_a_message_shows_what_fits_until_it_ends() -> None:
    stream = RichStream(limit=200)
    text = "word " * 100  # one paragraph still being written: nothing of it is final
    [draft] = stream.feed(text)
    check_part(draft, 200)
    more = text + "end.\n\nNext paragraph.\n\nLast one."  # (settled once a line follows)
    parts = stream.feed(more)
    assert len(parts) >= 3
    for part in parts:
        check_part(part, 200)
    expected = [*text.split(), "end.", "Next", "paragraph.", "Last", "one."]
    assert part_words(parts, to_blocks(more)) == expected


@pytest.mark.parametrize("limit", [300, 2000])
def test_parts_before_the_last_are_final_as_a_long_answer_grows(limit: int) -> None:
    markdown = corpus()["long_answer"][:12_000]
    stream = RichStream(limit=limit)
    last = feed_all(stream, prefixes(markdown, 31), limit)
    assert len(last) > 3
    ends = [p.source_end for p in last[:-1]]
    assert ends == sorted(ends)
    final = stream.feed(markdown, final=True)
    assert part_words(final, to_blocks(markdown)) == body_words(to_blocks(markdown))


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    document(),
    st.integers(64, 3000),
    st.lists(st.integers(0, 1 << 20), max_size=40),
    st.integers(0, 1 << 20),
)
def test_any_document_streams_in_any_steps(
    markdown: str, limit: int, points: list[int], run: int
) -> None:
    """Cuts at random points, and a run of 30 cuts one character apart somewhere."""
    ends = {p % (len(markdown) + 1) for p in points}
    start = run % (len(markdown) + 1)
    ends.update(range(start, min(start + 30, len(markdown))))
    stream = RichStream(limit=limit)
    last = feed_all(stream, [markdown[:end] for end in sorted(ends)] + [markdown], limit)
    final = stream.feed(markdown, final=True)
    assert_extends(last, final)
    for part in final:
        check_part(part, limit)
    check_words(final, to_blocks(markdown), limit)
