"""Hostile answers for bot.render: linear work, few messages, nothing lost, a free loop.

An answer is whatever a model writes, and a model echoes what a user pastes. Each input
here once cost seconds to minutes on the event loop, or turned into hundreds or thousands
of messages (bot/render.py says how each is bounded now).
"""

from __future__ import annotations

import asyncio
import gc
import math
import threading
import time
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from telegramify_markdown.converter import (
    _LATEX_PROBE_SYMBOLS,
    _SPOILER_RE,
    _contains_latex_symbols,
    _spoiler_replacement,
)
from telegramify_markdown.converter import _escape_latex as library_escape_latex

import bot.render
from bot.render import (
    MAX_ENTITIES,
    MAX_MESSAGE_LENGTH,
    Part,
    _clean,
    _convert,
    _escape_latex,
    _has_latex,
    _spoiler,
    render,
    render_async,
    render_preview,
    render_preview_async,
    utf16_len,
)
from tests.hypothesis_profiles import examples
from tests.test_render import assert_valid, limits, model_output, shown, whole

SECONDS = 1.0  # per render of up to 100k characters: generous, they take 1 to 350 ms


def _table(columns: int, rows: list[str]) -> str:
    return "|" + "a|" * columns + "\n|" + "-|" * columns + "\n" + "".join(rows)


# name -> (markdown, letters: every letter of it must show, in order)
CORPUS: dict[str, tuple[str, bool]] = {
    # A hard cut in a run of combining marks fell back to one character per message.
    "combining marks 3x4096": ("\u0301" * 3 * 4096, True),
    "letter and combining marks": ("a" + "\u0301" * 3 * 4096, True),
    # Every "- " opens a nested list: indentation grew with depth (quadratic output).
    "hi then 1500 nested lists": ("hi\n" + "- " * 1500 + "x", True),
    "1000 nested lists": ("- " * 1000 + "x", True),
    "1000 nested numbered lists": ("1. " * 1000 + "x", True),
    "1000 nested quotes": ("> " * 1000 + "x", True),
    "500 nested lists in quotes": ("- > " * 500 + "x", True),
    "300 indented list levels": ("\n".join("  " * i + "- item" for i in range(300)), True),
    # Tables: 5,000 columns; rows that pulldown-cmark pads with empty cells (up to half
    # a million events); one wide cell that pads every row.
    "table of 5000 columns": (_table(5000, ["|" + "b|" * 5000]), True),
    "table padding 5000 x 2000": (_table(5000, ["|b|\n"] * 2000), True),
    "table with a wide cell": (
        "| " + "w" * 20_000 + " | b |\n|---|---|\n" + "| a | b |\n" * 2000,
        True,
    ),
    "100k-character line": ("x" * 100_000, True),
    "100k characters of words": ("word " * 20_000, True),
    # Entity bombs: parts used to end at every 100th entity.
    "bold x10000": ("**a**" * 10_000, True),
    "bold and space x10000": ("**a** " * 10_000, True),
    "code x10000": ("`x` " * 10_000, False),
    "links x5000": ("[a](https://e.com/) " * 5_000, False),
    "headings x10000": ("# a\n" * 10_000, True),
    "spoilers x10000": ("||a" * 10_000, False),
    "300 nested emphases": ("*" * 300 + "deep" + "*" * 300, True),
    "25000 nested emphases": ("*" * 25_000 + "a" + "*" * 25_000, True),
    "spoiler ends deep in emphasis": (
        "*" * 10_000 + "a" + "</tg-spoiler>" * 3_000 + "*" * 10_000,
        True,
    ),
    # HTML bombs: shown as written.
    "<b> x10000": ("<b>" * 10_000, True),
    "<b>x x10000": ("<b>x" * 10_000, True),
    "unclosed <div> and 10000 lines": ("<div>\n" + "text\n" * 10_000, True),
    "unclosed comment and 100k": ("<!--\n" + "text " * 20_000, True),
    "<tg-spoiler> x4000 unclosed": ("<tg-spoiler>" * 4_000 + "x", True),
    # The library's preprocessing: lazy regular expressions rescanned the rest of a
    # paragraph for every unclosed \[ or \( (quadratic); the spoiler-edge expression
    # backtracked exponentially in ">" markers; each \sqrt or \overline doubles its
    # argument (40 nested ones ran out of memory); every escaped $ or ~ could expose
    # another and cost a parse of the whole answer.
    r"\[ x30000": ("\\[" * 30_000, False),
    r"\( x30000": ("\\(" * 30_000, False),
    "spoiler with 40 quote markers": ("||a\n" + " > " * 40 + "b||", False),
    "nested sqrt in math x300": (("$" + "\\sqrt{" * 40 + "x" + "}" * 40 + "$ ") * 300, False),
    r"nested sqrt in \( x300": (("\\(" + "\\sqrt" * 40 + " x\\) ") * 300, False),
    "nested overline in display math": (
        ("$$" + "\\overline{" * 40 + "x" + "}" * 40 + "$$\n\n") * 100,
        False,
    ),
    "braces 300 deep in math x100": (
        ("$" + "{" * 300 + "x" + "}" * 300 + "\\alpha$ ") * 100,
        False,
    ),
    "$ x25000 then a digit": ("$" * 25_000 + "1", False),
    # Matrices are drawn in rows, padded to their columns, beside the text on their line.
    "tall matrix beside a long line": (
        ("$$" + "w" * 1_500 + "\\begin{pmatrix}" + "1\\\\" * 120 + "\\end{pmatrix}$$\n\n") * 40,
        False,
    ),
    "matrix with a wide cell": (
        ("$$\\begin{pmatrix}" + "w" * 900 + "\\\\" + "1\\\\" * 250 + "\\end{pmatrix}$$\n\n") * 10,
        False,
    ),
    "matrices x100 on a line": (
        ("$$" + "\\begin{pmatrix}a\\\\b\\end{pmatrix}" * 60 + "$$\n\n") * 40,
        False,
    ),
    "nested matrices": (
        ("$$" + "\\begin{pmatrix}" * 60 + "x" + "\\end{pmatrix}" * 60 + "$$ ") * 30,
        False,
    ),
    "math in table cells x3000": (
        "|a|b|\n|-|-|\n" + "| $x^2$ | $$\\begin{pmatrix}a&b\\\\c&d\\end{pmatrix}$$ |\n" * 3_000,
        False,
    ),
    # Each empty heading scanned back over every newline written before it.
    "hard breaks then empty headings": ("a" + "\\\n" * 10_000 + "[]()\n" + "#\n" * 10_000, True),
    # Footnotes: references to one definition, many definitions, definitions in
    # definitions.
    "footnote references x10000": ("[^a]" * 10_000 + "\n\n[^a]: note", False),
    "footnote definitions x10000": ("".join(f"[^{i}]: x[^{i}]\n" for i in range(10_000)), False),
    "nested footnote definitions": ("[^a]: " * 10_000 + "x", False),
    "astral characters x50000": ("😀" * 50_000, True),
    "emoji sequences x10000": ("👨‍👩‍👧" * 10_000, True),
}

# Dense formatting ends parts at their 100th entity when that still leaves a quarter of
# the limit: up to four times the messages the length needs (ordinary text: ceil + 2).
DENSE = {
    "autolinks x3000": ("<https://a.b/>" * 3_000, False),
    "matrices x2000 in brackets": (
        "\\[\\begin{pmatrix}a&b\\\\c&d\\end{pmatrix}\\] " * 2_000,
        False,
    ),
}


def parts_bound(units: int, limit: int, dense: bool = False) -> int:
    return math.ceil((4 if dense else 1) * units / limit) + 2


def timed(function: Callable[[], list[Part]]) -> tuple[list[Part], float]:
    """What ``function`` returns, and the CPU time it took this thread: the work's own
    cost, whatever else keeps the cores busy (the other pytest-xdist workers)."""
    start = time.thread_time()
    result = function()
    return result, time.thread_time() - start


def check(markdown: str, letters: bool, dense: bool = False) -> None:
    assert len(markdown) <= 200_000
    parts, seconds = timed(lambda: render(markdown))
    assert seconds < SECONDS
    text = whole(markdown)
    units = utf16_len(text)
    assert units <= 2 * utf16_len(markdown) + 100  # rendering is linear in its output too
    assert len(parts) <= parts_bound(units, MAX_MESSAGE_LENGTH, dense)
    for part in parts:
        assert_valid(part.text, part.entities, MAX_MESSAGE_LENGTH)
    assert shown("".join(p.text for p in parts)) == shown(text)
    if letters:  # and nothing the model wrote went missing on the way to the text
        out = iter(ch for p in parts for ch in p.text if ch.isalpha())
        for tag in ("<tg-spoiler>", "</tg-spoiler>"):  # Telegram's own spoiler markup
            markdown = markdown.replace(tag, "")
        assert all(ch in out for ch in markdown if ch.isalpha())  # `in` consumes `out`


@pytest.mark.parametrize(("markdown", "letters"), CORPUS.values(), ids=CORPUS.keys())
def test_hostile_answer_renders_quickly_into_few_valid_parts(markdown: str, letters: bool) -> None:
    check(markdown, letters)


@pytest.mark.parametrize(("markdown", "letters"), DENSE.values(), ids=DENSE.keys())
def test_dense_formatting_costs_at_most_four_times_the_messages(
    markdown: str, letters: bool
) -> None:
    check(markdown, letters, dense=True)
    assert all(len(p.entities) == MAX_ENTITIES for p in render(markdown)[:-1])


@pytest.mark.parametrize(
    ("make", "sizes"),
    [
        (lambda n: "\u0301" * n, (20_000, 80_000)),
        (lambda n: "- " * (n // 2) + "x", (20_000, 80_000)),
        (lambda n: "**a**" * (n // 5), (20_000, 80_000)),
        (lambda n: "\\[" * (n // 2), (20_000, 80_000)),
    ],
    ids=["combining", "nested lists", "bold", "latex openers"],
)
def test_four_times_the_text_takes_about_four_times_as_long(
    make: Callable[[int], str], sizes: tuple[int, int]
) -> None:
    """Linear, with room for a noisy machine: quadratic work would take 16 times as long."""
    small, large = (make(n) for n in sizes)
    t_small = min(timed(lambda: render(small))[1] for _ in range(3))
    t_large = min(timed(lambda: render(large))[1] for _ in range(3))
    assert t_large < 10 * t_small + 0.1


def test_nested_lists_share_a_line_and_stop_indenting() -> None:
    assert render("- - - x")[0].text == "⦁ ⦁ ⦁ x"
    assert render("1. 1. x")[0].text == "1. 1. x"
    deep = "\n".join("  " * i + f"- level {i}" for i in range(8))
    lines = render(deep)[0].text.split("\n")
    assert [len(line) - len(line.lstrip()) for line in lines] == [0, 2, 4, 6, 8, 8, 8, 8]


def test_a_padded_table_too_big_to_draw_is_shown_as_written() -> None:
    markdown = _table(5000, ["|b|\n"] * 2000)
    assert _convert(_clean(markdown)) == (markdown, [])


def test_a_table_that_padding_would_blow_up_loses_its_alignment() -> None:
    markdown = "| " + "w" * 5000 + " | b |\n|---|---|\n" + "| a | b |\n" * 100
    part = render(markdown)[-1]
    assert part.text.endswith("a | b\na | b")


# --- Splitting -----------------------------------------------------------------------


def consumed(text: str, parts: list[Part]) -> list[int]:
    """UTF-16 units of the text from each part's start to the next one's (the last: to
    its end): what each part used up of the answer, whitespace dropped after it included."""
    starts = []
    position = 0
    for part in parts:
        position = text.index(part.text, position)
        starts.append(position)
        position += len(part.text)
    ends = [*starts[1:], starts[-1] + len(parts[-1].text)] if parts else []
    return [utf16_len(text[a:b]) for a, b in zip(starts, ends, strict=True)]


def short_parts(text: str, parts: list[Part], limit: int) -> list[int]:
    """Indices of the parts shorter than a quarter of the limit but for the last and for
    those that end where a code block starts the next part."""
    minimum = max(1, limit // 4)
    lengths = consumed(text, parts)
    return [
        i
        for i in range(len(parts) - 1)
        if lengths[i] < minimum
        and not any(e.type == "pre" and e.offset == 0 for e in parts[i + 1].entities)
    ]


@settings(max_examples=examples(300), deadline=None)
@given(markdown=model_output, limit=limits)
def test_no_part_but_the_last_is_short(markdown: str, limit: int) -> None:
    """A part holds at least a quarter of the limit, unless it is the last, or a code
    block that fits starts the next part, or it is one of two that end early to keep
    their entities; so an answer takes at most about four times the messages its
    length needs."""
    parts = render(markdown, limit)
    text = whole(markdown)
    assert len(short_parts(text, parts, limit)) <= 2
    assert len(parts) <= utf16_len(text) // max(1, limit // 4) + 3
    plain = [Part(p, []) for p in bot.render.plain_parts(markdown, limit)]
    assert short_parts(_clean(markdown), plain, limit) == []


@pytest.mark.parametrize(
    ("markdown", "limit", "lengths"),
    [
        ("a " + "x" * 5000, 4096, [4096, 906]),  # not "a", then the word cut anyway
        ("one two " + "z" * 300, 100, [100, 100, 100, 8]),
        ("\u0301" * 10_000, 4096, [4096, 4096, 1808]),
        ("a" + "\u0301" * 9_999, 4096, [4096, 4096, 1808]),
        ("é" * 3, 2, [2, 1]),  # é is two code points: a cut between them
    ],
)
def test_hard_cuts_leave_no_short_part(markdown: str, limit: int, lengths: list[int]) -> None:
    parts = render(markdown, limit)
    assert [utf16_len(p.text) for p in parts] == lengths
    assert "".join(p.text for p in parts).replace(" ", "") == markdown.replace(" ", "")


def test_a_short_part_before_a_code_block_keeps_the_block_whole() -> None:
    code = "\n".join(f"value_{i} = {i}" for i in range(269))
    assert 4000 < len(code) <= 4096
    parts = render(f"Here it is, as promised:\n\n```python\n{code}\n```")
    assert [p.text for p in parts] == ["Here it is, as promised:", code]


def test_only_two_parts_end_early_for_their_entities() -> None:
    """Past those two, a part keeps its first 100 entities and drops the rest."""
    parts = render("**a** " * 10_000)
    assert [utf16_len(p.text) for p in parts] == [199, 199, 4095, 4095, 4095, 4095, 3215]
    assert {len(p.entities) for p in parts} == {MAX_ENTITIES}


# --- The library's preprocessing, redone in linear time -------------------------------------


def test_every_latex_symbol_holds_a_one_character_symbol() -> None:
    """What makes ``_has_latex`` the library's test, done in one pass."""
    singles = {s for s in _LATEX_PROBE_SYMBOLS if len(s) == 1}
    assert all(singles & set(symbol) for symbol in _LATEX_PROBE_SYMBOLS)


@settings(max_examples=examples(300), deadline=None)
@given(content=st.text(alphabet="\\ab{}-=<$~∈ ", max_size=12))
def test_latex_probe_is_the_librarys(content: str) -> None:
    assert _has_latex(content) == _contains_latex_symbols(content)


latexish = st.lists(
    st.sampled_from(["\\[", "\\]", "\\(", "\\)", "\n\n", "x", "\\alpha", "=", " ", "{", "}"]),
    max_size=20,
).map("".join)


@settings(max_examples=examples(300), deadline=None)
@given(text=latexish)
def test_latex_escape_is_the_librarys(text: str) -> None:
    """The same math found and converted (roots, fractions and matrices, left out here,
    are written to be read on a line: test_render_found)."""
    assert _escape_latex(text) == library_escape_latex(text)


@settings(max_examples=examples(500), deadline=None)
@given(body=st.text(alphabet=["\n", "\r", " ", "\t", ">", "a", "|"], min_size=1, max_size=12))
def test_spoiler_edges_are_the_librarys(body: str) -> None:
    """Short bodies only: the library's expression takes exponential time in ``>``."""
    for match in _SPOILER_RE.finditer(f"||{body}||"):
        assert _spoiler(match) == _spoiler_replacement(match)


# --- Off the event loop ----------------------------------------------------------------


async def longest_stall(work: Callable[[], Awaitable[object]]) -> float:
    """The longest the event loop went without running a ticker while ``work`` ran, in
    CPU time of this process: what its own threads did meanwhile (a render holding the
    GIL counts), not the time the whole process waited for a core that others kept busy
    (the other pytest-xdist workers)."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.process_time()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.process_time()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.02)
    try:
        await work()
    finally:
        done.set()
        await ticker
    return max(gaps)


@pytest.mark.parametrize(
    "markdown",
    [
        "**a** " * 20_000,
        "- " * 50_000 + "x",
        "> " * 50_000 + "x",
        "# a\n" * 25_000,
        "\u0301" * 100_000,
    ],
    ids=["bold", "nested lists", "nested quotes", "headings", "combining marks"],
)
async def test_a_long_render_leaves_the_event_loop_free(markdown: str) -> None:
    stall = await longest_stall(lambda: render_async(markdown))
    assert stall < 0.2
    assert await render_async(markdown) == render(markdown)
    assert await render_preview_async(markdown) == render_preview(markdown)


async def test_a_short_render_stays_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []
    real = bot.render._render

    def spy(markdown: str, limit: int) -> list[Part]:
        threads.append(threading.current_thread())
        return real(markdown, limit)

    monkeypatch.setattr(bot.render, "_render", spy)
    await render_async("**short**")
    await render_async("word " * 2_000)
    assert threads[0] is threading.current_thread()
    assert threads[1] is not threading.current_thread()
    with pytest.raises(ValueError, match="at least 2"):
        await render_async("x", limit=1)


def test_the_garbage_collector_is_back_after_long_renders() -> None:
    markdown = "**a** " * 2_000
    assert gc.isenabled()
    threads = [threading.Thread(target=render, args=(markdown,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert gc.isenabled()
    gc.disable()
    try:
        render(markdown)
        assert not gc.isenabled()
    finally:
        gc.enable()
