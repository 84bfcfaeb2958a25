"""Markdown from models to Telegram messages: bot.render."""

from __future__ import annotations

import unicodedata
from collections import Counter

import pytest
from aiogram.types import MessageEntity
from hypothesis import given, settings
from hypothesis import strategies as st

import bot.render
from bot.render import (
    EMPTY_PREVIEW,
    MAX_ENTITIES,
    Part,
    _clean,
    _convert,
    _Entity,
    plain_parts,
    render,
    render_preview,
    utf16_len,
)
from tests.doubles.telegram_validation import validate_text
from tests.hypothesis_profiles import examples


def covered(text: str, entity: MessageEntity | _Entity) -> str:
    """The text an entity formats (its offsets count UTF-16 units)."""
    units = text.encode("utf-16-le")
    return units[2 * entity.offset : 2 * (entity.offset + entity.length)].decode("utf-16-le")


def only(markdown: str) -> Part:
    parts = render(markdown)
    assert len(parts) == 1
    return parts[0]


def formatted(part: Part, kind: str) -> list[str]:
    return [covered(part.text, e) for e in part.entities if e.type == kind]


def assert_valid(text: str, entities: list[MessageEntity], limit: int) -> None:
    """What Telegram checks, and what we promise on top of it."""
    dicts = [e.model_dump(exclude_none=True) for e in entities]
    assert validate_text(text, dicts) is None
    assert text.strip()
    assert utf16_len(text) <= limit
    assert len(entities) <= MAX_ENTITIES
    for e in entities:
        assert e.length > 0 and e.offset >= 0
        assert e.offset + e.length <= utf16_len(text)
        covered(text, e)  # raises if an entity edge splits a surrogate pair


TELEGRAM_DROPS = frozenset("\u030a\u0333\u033f\u202a\u202b\u202c\u202d\u202e")


def shown(text: str) -> str:
    """The characters of ``text`` that Telegram shows, apart from whitespace."""
    return "".join(
        ch
        for ch in text
        if not ch.isspace() and ch not in TELEGRAM_DROPS and unicodedata.category(ch) != "Cc"
    )


def whole(markdown: str) -> str:
    """The answer's text before it is split."""
    return _convert(_clean(markdown))[0]


# --- Formatting -------------------------------------------------------------------------


def test_utf16_len_counts_code_units() -> None:
    assert utf16_len("") == 0
    assert utf16_len("abc") == 3
    assert utf16_len("é") == 1
    assert utf16_len("𝕏") == 2
    assert utf16_len("👍🏽") == 4


@pytest.mark.parametrize(
    ("markdown", "kind", "text"),
    [
        ("some **bold** words", "bold", "bold"),
        ("some _italic_ words", "italic", "italic"),
        ("some *italic* words", "italic", "italic"),
        ("call `f(x)` now", "code", "f(x)"),
        ("~~gone~~ here", "strikethrough", "gone"),
        ("a ||secret|| b", "spoiler", "secret"),
        ("# Title\n\nbody", "bold", "Title"),
        ("## Title\n\nbody", "underline", "Title"),
        ("> quoted\n\nafter", "blockquote", "quoted"),
        ("| a | b |\n|---|---|\n| 1 | 2 |", "pre", "a | b\n--+--\n1 | 2"),
    ],
)
def test_markdown_becomes_entities(markdown: str, kind: str, text: str) -> None:
    part = only(markdown)
    assert_valid(part.text, part.entities, 4096)
    assert formatted(part, kind) == [text]
    assert "*" not in part.text and "`" not in part.text and "#" not in part.text


def test_code_block_keeps_its_language() -> None:
    part = only("Run this:\n\n```python\nprint('hi')\n```\n\nDone.")
    assert part.text == "Run this:\n\nprint('hi')\n\nDone."
    [pre] = [e for e in part.entities if e.type == "pre"]
    assert covered(part.text, pre) == "print('hi')"
    assert pre.language == "python"


def test_only_the_first_word_of_a_fence_info_is_the_language() -> None:
    [pre] = only("```js title=a.js\nx()\n```").entities
    assert pre.language == "js"
    [pre] = only("```{weird}\nx()\n```").entities
    assert pre.language is None


def test_link_keeps_its_url() -> None:
    part = only("see [the docs](https://docs.example.com/a?b=1) please")
    assert part.text == "see the docs please"
    assert_valid(part.text, part.entities, 4096)
    [link] = part.entities
    assert (link.type, link.url) == ("text_link", "https://docs.example.com/a?b=1")
    assert covered(part.text, link) == "the docs"


@pytest.mark.parametrize(
    "url",
    [
        "y",
        "/Users/me/notes.md",
        "javascript:alert(1)",
        "http://",
        "http://localhost/x",
        "https://a..b",
        "https://a.b:99999/",
        "ftp://x.y",
        "mailto:me@example.com",
    ],
)
def test_link_that_telegram_would_refuse_is_plain_text(url: str) -> None:
    part = only(f"a [link]({url}) here")
    assert part.text == "a link here"
    assert part.entities == []


def test_lists_are_bulleted_lines() -> None:
    part = only("- one\n- two\n\n1. first\n1. second")
    assert part.text == "⦁ one\n⦁ two\n\n1. first\n2. second"


def test_nested_quotes_become_one_quote() -> None:
    part = only("> > deep\n> shallow")
    assert [e.type for e in part.entities] == ["blockquote"]
    assert covered(part.text, part.entities[0]) == "deep\nshallow"


@pytest.mark.parametrize(
    "markdown",
    [
        "<script>alert(1)</script>",
        "if a < b && c > d then",
        "line<br>break and <b>tags</b>",
        "<div>\n*kept*\n</div>",
        "<!-- a comment -->",
    ],
)
def test_html_is_shown_as_written(markdown: str) -> None:
    assert only(markdown).text == markdown


def test_html_block_in_a_list_is_its_own_line() -> None:
    part = only("- a\n  <div>\n  hi\n  </div>\n- b")
    assert part.text == "⦁ a\n<div>\nhi\n</div>\n⦁ b"


def test_a_renderer_failure_shows_the_text_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(bot.render, "_parse", broken)
    assert render("**still** here") == [Part("**still** here", [])]


def test_broken_markdown_is_kept_as_text() -> None:
    assert only("**never closed").text == "**never closed"
    part = only("```py\nunclosed fence")
    assert formatted(part, "pre") == ["unclosed fence"]
    part = only("````\n```\ninner\n```\n````")
    assert formatted(part, "pre") == ["```\ninner\n```"]


def test_spoiler_crossing_emphasis_is_split_to_nest() -> None:
    part = only("||a *b|| c*")
    assert part.text == "a b c"
    assert_valid(part.text, part.entities, 4096)
    assert formatted(part, "spoiler") == ["a b"]
    assert formatted(part, "italic") == ["b", " c"]


def test_offsets_count_utf16_units_after_emoji() -> None:
    part = only("👍🏽 𝕏 **bold 𝕏** and `code`")
    assert part.text == "👍🏽 𝕏 bold 𝕏 and code"
    bold, code = part.entities
    assert (bold.offset, bold.length) == (utf16_len("👍🏽 𝕏 "), utf16_len("bold 𝕏"))
    assert covered(part.text, bold) == "bold 𝕏"
    assert covered(part.text, code) == "code"


def test_control_characters_and_lone_surrogates_are_cleaned() -> None:
    assert only("a\x00b\x07c\r\nd \ud800").text == "abc\nd \ufffd"
    assert only("bidi\u202e override\u2028next").text == "bidi override\nnext"
    assert only("split pair \ud83d\ude00").text == "split pair 😀"


def test_nothing_visible_gives_no_parts() -> None:
    assert render("") == []
    assert render("  \n\n \t ") == []
    assert render("\u202e \u0333") == []  # Telegram strips these: nothing to show
    assert plain_parts(" \n ") == []


def test_limit_below_two_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        render("x", limit=1)


# --- Splitting --------------------------------------------------------------------------


def long_answer() -> str:
    blocks = []
    for i in range(40):
        blocks.append(f"## Section {i}")
        blocks.append(f"Some **bold {i}** and _italic_ text with `code`, said twice. " * 4)
        blocks.append(f"- item {i}\n- another item with [a link](https://example.com/{i})")
    return "\n\n".join(blocks)


def test_long_answer_splits_into_messages_that_rejoin() -> None:
    markdown = long_answer()
    assert len(markdown) > 10_000
    parts = render(markdown)
    assert len(parts) >= 3
    for part in parts:
        assert_valid(part.text, part.entities, 4096)
    assert shown("".join(p.text for p in parts)) == shown(whole(markdown))
    assert all("Section" in p.text for p in parts)
    assert sum(len(formatted(p, "text_link")) for p in parts) == 40


def test_split_prefers_paragraphs_then_lines_then_words() -> None:
    paragraphs = [f"Paragraph {i} " + "word " * 30 + "end." for i in range(20)]
    parts = render("\n\n".join(paragraphs), limit=500)
    for part in parts:
        assert all(chunk in paragraphs for chunk in part.text.split("\n\n"))

    lines = [f"line {i} " + "x" * 40 for i in range(50)]
    parts = render("  \n".join(lines), limit=300)  # hard line breaks, one paragraph
    assert all(line in lines for p in parts for line in p.text.split("\n"))

    words = [f"w{i}" for i in range(500)]
    parts = render(" ".join(words), limit=100)
    assert [w for p in parts for w in p.text.split()] == words


def test_overlong_token_is_cut_hard() -> None:
    token = "𝕏" + "a" * 9000 + "𝕏" * 10
    parts = render(token)
    assert len(parts) == 3
    for part in parts:
        assert_valid(part.text, part.entities, 4096)
    assert "".join(p.text for p in parts) == token


def test_hard_cut_keeps_emoji_sequences_whole() -> None:
    family = "👨‍👩‍👧"  # three emoji joined by zero-width joiners: 8 UTF-16 units
    parts = render(family * 10, limit=20)
    assert [p.text for p in parts] == [family * 2] * 5


def test_code_block_that_fits_is_not_cut() -> None:
    code = "\n".join(f"    value_{i} = compute({i})" for i in range(60))
    markdown = "intro " * 500 + f"\n\n```python\n{code}\n```\n\noutro"
    parts = render(markdown)
    holders = [p for p in parts if formatted(p, "pre")]
    assert len(holders) == 1
    assert formatted(holders[0], "pre") == [code]


def test_oversized_code_block_becomes_several_pre_parts() -> None:
    lines = [f"row_{i:04d} = {i} * {i}" for i in range(800)]
    parts = render("```python\n" + "\n".join(lines) + "\n```")
    assert len(parts) >= 4
    seen: list[str] = []
    for part in parts:
        assert_valid(part.text, part.entities, 4096)
        [pre] = part.entities
        assert (pre.type, pre.language, pre.offset) == ("pre", "python", 0)
        assert covered(part.text, pre) == part.text
        seen += part.text.split("\n")
    assert seen == lines  # cut between lines, nothing lost


def test_entities_are_clipped_to_each_part() -> None:
    words = " ".join(f"word{i}" for i in range(200))
    parts = render(f"**{words}**", limit=300)
    assert len(parts) > 3
    for part in parts:
        assert_valid(part.text, part.entities, 300)
        assert formatted(part, "bold") == [part.text]


@pytest.mark.parametrize("separator", [" ", ""])
def test_a_part_ends_before_its_101st_entity(separator: str) -> None:
    words = [f"b{i}" for i in range(250)]
    parts = render(separator.join(f"**{w}**x" for w in words))
    assert [len(p.entities) for p in parts] == [100, 100, 50]
    assert [w for p in parts for w in formatted(p, "bold")] == words
    assert "".join(p.text for p in parts).replace(" ", "") == "".join(f"{w}x" for w in words)


def test_entities_past_100_on_one_word_are_dropped() -> None:
    """150 nested emphases over one word cannot be split apart: the extra ones go."""
    markdown = "*" * 300 + "deep" + "*" * 300
    assert len(_convert(markdown)[1]) == 150
    part = only(markdown)
    assert part.text == "deep"
    assert len(part.entities) == MAX_ENTITIES


def test_preview_is_the_last_part() -> None:
    markdown = long_answer()
    assert render_preview(markdown) == render(markdown)[-1]
    assert render_preview("**partial") == Part("**partial", [])
    assert render_preview("```py\n") == Part(EMPTY_PREVIEW, [])


def test_plain_parts_are_the_markdown_as_written() -> None:
    markdown = "**bold** and [x](http://example.com)\n\n" + "word " * 2000
    parts = plain_parts(markdown)
    assert parts[0].startswith("**bold** and [x](http://example.com)")
    assert all(0 < utf16_len(p) <= 4096 for p in parts)
    assert shown("".join(parts)) == shown(markdown)


# --- Properties over hostile model output -------------------------------------------------

FRAGMENTS = [
    "**", "__", "*", "_", "`", "``", "```", "```python\n", "```js title=x\n", "\n```\n",
    "````\n```\n", "~~~\n", "~~", "||", "<script>", "</script>", "<div>", "<b>", "<!--",
    "a < b && c > d", "&amp;", "&#x41;", "[x](y)", "[link](https://example.com/p?q=1)",
    "![img](http://i.example/a.png)", "[ref]: http://r.example\n", "<https://auto.example>",
    "# ", "## ", "> ", "> > ", "- ", "1. ", "- [x] ", "| a | b |\n|---|---|\n", "$x^2$",
    "\\(\\alpha\\)", "\\", "\n", "\n\n", "    ", "\t", "😀", "👍🏽", "👨‍👩‍👧", "🇺🇦", "𝕏", "é",
    "\u0301", "\u200d", "\u2800", "\u3164", "\ufeff", "\x00", "\r\n", "\u202e", "\u2028",
    "\ud83d",  # half a surrogate pair, as a JSON decoder may hand it over
]  # fmt: skip

markdownish = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=30)), max_size=60
).map("".join)
model_output = st.one_of(st.text(max_size=600), markdownish)
limits = st.one_of(st.just(4096), st.integers(min_value=2, max_value=300))


@settings(max_examples=examples(300), deadline=None)
@given(markdown=model_output, limit=limits)
def test_every_part_is_accepted_by_telegram(markdown: str, limit: int) -> None:
    """Whatever a model writes, each part passes the Bot API's checks."""
    for part in render(markdown, limit):
        assert_valid(part.text, part.entities, limit)
    preview = render_preview(markdown, limit)
    assert_valid(preview.text, preview.entities, limit)
    for text in plain_parts(markdown, limit):
        assert_valid(text, [], limit)


@settings(max_examples=examples(300), deadline=None)
@given(markdown=model_output, limit=limits)
def test_splitting_loses_only_whitespace(markdown: str, limit: int) -> None:
    """Split or not, the parts show the same characters (whitespace at the cuts may go),
    every entity type formats the same characters, and the plain fallback shows every
    character of the input."""
    parts = render(markdown, limit)
    assert shown("".join(p.text for p in parts)) == shown(whole(markdown))

    def chars_by_type(
        parts: list[tuple[str, list[MessageEntity]]] | list[tuple[str, list[_Entity]]],
    ) -> Counter[tuple[str, str]]:
        return Counter(
            (e.type, ch)
            for text, entities in parts
            for e in entities
            for ch in covered(text, e)
            if shown(ch)
        )

    if all(len(p.entities) < MAX_ENTITIES for p in parts):  # no formatting was dropped
        split = [(p.text, p.entities) for p in parts]
        assert chars_by_type(split) == chars_by_type([_convert(_clean(markdown))])

    plain = shown("".join(plain_parts(markdown, limit)))
    assert plain == shown(markdown.replace("\ud83d", "\ufffd"))


# Markdown that consumes letters on purpose is left out of this alphabet: link and image
# targets, reference definitions and task boxes ([ ]), character references (&), math and
# LaTeX (\ and $), table cells past the header's count (|), and code fence info strings
# (the language is an attribute, so no backtick or tilde except in fixed fragments).
SAFE_FRAGMENTS = [
    "**", "__", "*", "_", "\n```\n", "<script>", "</script>", "<div>", "<b>", "<!--",
    "-->", "a < b > c", "<https://auto.example>", "# ", "## ", "> ", "> > ", "- ", "1. ",
    "\n", "\n\n", "    ", "😀", "𝕏", "é",
]  # fmt: skip
safe_text = st.text(
    alphabet=st.characters(exclude_characters="[]&\\$|`~", exclude_categories=["Cs"]),
    max_size=30,
)
safe_markdown = st.lists(st.one_of(st.sampled_from(SAFE_FRAGMENTS), safe_text), max_size=60).map(
    "".join
)


@settings(max_examples=examples(300), deadline=None)
@given(markdown=safe_markdown, limit=limits)
def test_no_letter_of_the_answer_is_lost(markdown: str, limit: int) -> None:
    """Every letter the model wrote appears, in order, in the messages.

    Markup characters may be consumed as formatting and list numbers renumbered (hence
    letters, not digits); the alphabet leaves out the syntax that drops text on purpose,
    and the ``<tg-spoiler>`` tags that the renderer reads as spoiler formatting.
    """
    out = iter(ch for p in render(markdown, limit) for ch in p.text if ch.isalpha())
    for tag in ("<tg-spoiler>", "</tg-spoiler>"):  # Telegram's own spoiler markup
        markdown = markdown.replace(tag, "")
    wanted = [ch for ch in markdown if ch.isalpha()]
    assert all(ch in out for ch in wanted)  # `in` consumes the iterator: a subsequence test
