"""What a new user found in the rendered answers (bot.render), one test or more each."""

from __future__ import annotations

import unicodedata

import pytest

from bot.render import Part, render, utf16_len
from tests.test_render import assert_valid, covered, formatted, only, whole


def no_combining_marks(text: str) -> bool:
    return not any(unicodedata.combining(ch) for ch in text)


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.split(" | ")]


# --- Maths (and code) inside a table -------------------------------------------------

SORTS = (
    "| Algorithm | Best | Worst | Stable |\n"
    "|---|---|---|---|\n"
    "| Bubble sort | $O(n)$ | $O(n^2)$ | Yes |\n"
    "| Merge sort | $O(n \\log n)$ | $O(n \\log n)$ | Yes |"
)


def test_math_in_a_table_stays_in_its_cells() -> None:
    part = only(SORTS)
    assert_valid(part.text, part.entities, 4096)
    [pre] = part.entities  # the table, monospace, and nothing glued before it
    assert pre.type == "pre"
    assert covered(part.text, pre) == part.text
    header, rule, bubble, merge = part.text.split("\n")
    assert cells(header) == ["Algorithm", "Best", "Worst", "Stable"]
    assert set(rule) <= {"-", "+"}
    assert cells(bubble) == ["Bubble sort", "O(n)", "O(n²)", "Yes"]
    assert cells(merge) == ["Merge sort", "O(n log n)", "O(n log n)", "Yes"]
    # the columns line up
    assert len({line.index("|") for line in (header, bubble, merge)}) == 1


def test_math_in_a_table_after_text_stays_in_the_table() -> None:
    part = only("Complexities:\n\n" + SORTS + "\n\nThat is all.")
    assert part.text.startswith("Complexities:\n\nAlgorithm")
    assert part.text.endswith("\n\nThat is all.")
    [table] = formatted(part, "pre")
    assert "O(n²)" in table


def test_display_math_in_a_table_cell_stays_in_it() -> None:
    part = only("| a | b |\n|---|---|\n| $$x^2$$ | y |")
    assert part.text.split("\n")[-1].split(" | ") == ["x²", "y"]
    assert [e.type for e in part.entities] == ["pre"]


def test_inline_code_with_an_escaped_pipe_in_a_table() -> None:
    part = only("| Op | Syntax |\n|---|---|\n| or | `a \\| b` |\n| and | `a & b` |")
    assert part.text.split("\n") == ["Op  | Syntax", "----+-------", "or  | a | b", "and | a & b"]
    assert [e.type for e in part.entities] == ["pre"]


def test_wide_characters_in_a_table_keep_the_columns_aligned() -> None:
    part = only("| name | ok |\n|---|---|\n| 東京 | ✅ |\n| Paris | no |")
    header, _, tokyo, paris = part.text.split("\n")
    assert header == "name  | ok"
    assert tokyo == "東京  | ✅"  # two columns a character, as monospace fonts draw them
    assert paris == "Paris | no"


# --- Task lists ------------------------------------------------------------------------


def test_an_open_task_shows_an_empty_box() -> None:
    assert only("- [ ] todo\n- [x] done").text == "☐ todo\n✅ done"
    assert only("1. [ ] first\n2. [x] second").text == "☐ first\n✅ second"
    assert only("- a\n  - [ ] nested").text == "⦁ a\n  ☐ nested"


# --- LaTeX -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "text"),
    [
        ("$\\sqrt{b^2-4ac}$", "√(b²-4ac)"),
        ("$\\sqrt{2}$", "√2"),
        ("$\\sqrt{x}$", "√x"),
        ("$\\sqrt[3]{x+1}$", "∛(x+1)"),
        ("$\\sqrt{(a+b)}$", "√(a+b)"),
        ("$x = \\frac{-b \\pm \\sqrt{b^2-4ac}}{2a}$", "x = (-b ± √(b²-4ac))/(2a)"),
        ("\\(x = \\frac{-b \\pm \\sqrt{b^2-4ac}}{2a}\\)", "x = (-b ± √(b²-4ac))/(2a)"),
        ("$\\frac{1}{2}$", "½"),
        ("$\\frac{\\pi}{4}$", "π/4"),
        ("$\\frac{a}{x^2}$", "a/x²"),
        ("$\\frac{a+b}{c}$", "(a+b)/c"),
        ("$O(n^2)$", "O(n²)"),
        ("$x_1$", "x₁"),
        ("$\\pi$", "π"),
    ],
)
def test_inline_math_is_readable(markdown: str, text: str) -> None:
    part = only(markdown)
    assert part.text == text
    assert no_combining_marks(part.text)
    assert formatted(part, "code") == [text]


def test_display_math_with_a_square_root_is_readable() -> None:
    part = only("$$x = \\frac{-b \\pm \\sqrt{b^2-4ac}}{2a}$$")
    assert formatted(part, "pre") == ["x = (-b ± √(b²-4ac))/(2a)"]
    part = only("\\[\\sqrt{x^2+y^2}\\]")
    assert formatted(part, "pre") == ["√(x²+y²)"]


def test_a_matrix_shows_as_aligned_rows() -> None:
    part = only("$$\\begin{pmatrix} a & b \\\\ c & d \\end{pmatrix}$$")
    assert formatted(part, "pre") == ["⎛a  b⎞\n⎝c  d⎠"]
    part = only("$$\\begin{bmatrix} 1 & 200 & 3 \\\\ 40 & 5 & 6 \\\\ 7 & 8 & 900 \\end{bmatrix}$$")
    assert formatted(part, "pre") == ["⎡ 1  200   3 ⎤\n⎢40   5    6 ⎥\n⎣ 7   8   900⎦"]


def test_a_matrix_after_text_in_display_math_keeps_its_rows_aligned() -> None:
    part = only("$$A = \\begin{pmatrix} 1 & 0 \\\\ 0 & 1 \\end{pmatrix}$$")
    assert formatted(part, "pre") == ["A = ⎛1  0⎞\n    ⎝0  1⎠"]
    part = only(
        "$$M = \\begin{vmatrix} a & b & c \\\\ d & e & f \\\\ g & h & i \\end{vmatrix} = 0$$"
    )
    assert formatted(part, "pre") == ["    |a  b  c|\nM = |d  e  f| = 0\n    |g  h  i|"]


def test_a_matrix_written_with_brackets_over_several_lines() -> None:
    markdown = (
        "Rotation:\n\n\\[\n\\begin{pmatrix}\n"
        "\\cos\\theta & -\\sin\\theta \\\\\n"
        "\\sin\\theta & \\cos\\theta\n"
        "\\end{pmatrix}\n\\]\n\nDone."
    )
    part = only(markdown)
    assert formatted(part, "pre") == ["⎛cosθ  -sinθ⎞\n⎝sinθ   cosθ⎠"]
    assert part.text.startswith("Rotation:\n\n") and part.text.endswith("\n\nDone.")


def test_a_matrix_between_brackets_gets_tall_ones() -> None:
    part = only("$$\\left(\\begin{array}{cc} 1 & 2 \\\\ 3 & 4 \\end{array}\\right)$$")
    assert formatted(part, "pre") == ["⎛1  2⎞\n⎝3  4⎠"]
    part = only("$$\\begin{Bmatrix} 1 & 2 \\\\ 3 & 4 \\\\ 5 & 6 \\end{Bmatrix}$$")
    assert formatted(part, "pre") == ["⎧1  2⎫\n⎨3  4⎬\n⎩5  6⎭"]


@pytest.mark.parametrize(
    ("markdown", "text"),
    [
        ("$$\\begin{pmatrix}\\end{pmatrix}$$", "()"),
        ("$$\\begin{pmatrix} a \\end{pmatrix}$$", "(a)"),
        ("$$\\begin{smallmatrix} a & b \\\\ c & d \\end{smallmatrix}$$", "a, b; c, d"),
        ("$$\ue100 \\begin{pmatrix} a \\\\ b \\end{pmatrix}$$", "\ue100 (a; b)"),
    ],
)
def test_odd_matrices_stay_on_one_line(markdown: str, text: str) -> None:
    assert formatted(only(markdown), "pre") == [text]


def test_a_matrix_in_inline_math_stays_on_its_line() -> None:
    part = only("where $\\begin{pmatrix} a & b \\\\ c & d \\end{pmatrix}$ is invertible")
    assert part.text == "where (a, b; c, d) is invertible"


# --- Footnotes -------------------------------------------------------------------------


def test_footnotes_are_numbered_superscripts_and_lines() -> None:
    markdown = (
        "Water boils at 100 °C[^1] at sea level[^alt].\n\n"
        "[^1]: At standard pressure.\n"
        "[^alt]: About 1013 hPa."
    )
    part = only(markdown)
    assert part.text == (
        "Water boils at 100 °C¹ at sea level².\n\n¹ At standard pressure.\n² About 1013 hPa."
    )


def test_footnotes_are_numbered_by_first_reference() -> None:
    markdown = "a[^x] b[^y] c[^x]\n\n[^y]: why\n\n[^x]: ex"
    assert only(markdown).text == "a¹ b² c¹\n\n² why\n\n¹ ex"


def test_adjacent_footnote_references_stay_apart() -> None:
    markdown = "claim[^1][^2]\n\n[^1]: one\n[^2]: two"
    assert only(markdown).text.startswith("claim¹,²\n\n")


def test_an_undefined_footnote_is_text() -> None:
    assert only("see [^nowhere] here").text == "see [^nowhere] here"


# --- Splitting -------------------------------------------------------------------------


def test_a_code_block_starting_the_next_part_keeps_its_indentation() -> None:
    """The block fits in a message but not after the text before it: it starts the next
    part, indented first line included (Telegram keeps spaces inside the ``pre``)."""
    body = "\n".join(f"        self.value_{i} = compute({i})" for i in range(112))
    code = "    def setup(self):\n" + body + "\n        self.ready = True"
    assert 4096 - 20 < len(code) <= 4096
    parts = render(f"The method, as promised:\n\n```python\n{code}\n```")
    assert [p.text for p in parts] == ["The method, as promised:", code]
    assert parts[1].entities[0].offset == 0


def test_a_code_block_cut_in_a_line_s_indentation_keeps_it() -> None:
    """A long token on an indented line: the next part starts at the line, not between
    the indentation and the token (as long as the part before stays long enough)."""
    lines = ["values = [  # one per row", "    " + "A" * 30 + ",", "    " + "B" * 30 + ",", "]"]
    code = "\n".join(lines)
    for limit in range(35, 80):  # every line fits in a part: no line is cut
        parts = render(f"```\n{code}\n```", limit)
        for part in parts:
            assert_valid(part.text, part.entities, limit)
            assert all(line in lines for line in part.text.split("\n")), limit


def words_of(length: int, stem: str = "intro") -> str:
    """Words ``stem0 stem1 ...``, ``length`` characters or a word more."""
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < length:
        words.append(f"{stem}{len(words)}")
    return " ".join(words)


def section(title: str, words: int) -> str:
    return f"## {title}\n\n" + " ".join(f"word{i}" for i in range(words)) + "."


def test_a_heading_starts_the_part_of_its_paragraph() -> None:
    intro = words_of(3_900)
    markdown = intro + "\n\n" + section("Next section", 300)
    parts = render(markdown)
    assert len(parts) == 2
    assert parts[0].text == intro
    assert parts[1].text.startswith("Next section\n\nword0 word1")
    [bold] = formatted(parts[1], "bold")
    assert bold == "Next section"


def test_headings_in_a_row_move_together() -> None:
    intro = words_of(3_900)
    markdown = intro + "\n\n# Part two\n\n## First section\n\n" + " ".join(["text"] * 400)
    parts = render(markdown)
    assert parts[0].text == intro
    assert parts[1].text.startswith("Part two\n\nFirst section\n\ntext text")


def test_a_heading_stays_put_when_moving_it_would_leave_a_short_part() -> None:
    """The part before it must still hold a quarter of the limit."""
    title = " ".join(["long"] * 300)
    markdown = f"short intro\n\n## {title}\n\n" + "x" * 5000
    parts = render(markdown)
    assert parts[0].text == f"short intro\n\n{title}"


def test_a_heading_stays_with_a_code_block_only_when_both_fit() -> None:
    intro = words_of(3_600)
    small = "\n".join(f"x_{i} = {i}" for i in range(80))
    parts = render(f"{intro}\n\n### Example\n\n```python\n{small}\n```\n\nAfter.")
    assert parts[0].text == intro
    assert parts[1].text.startswith("Example\n\nx_0 = 0")
    big = "\n".join(f"value_{i} = {i}" for i in range(269)) + "\ndone = True"
    assert 4096 - len("Example\n\n") < len(big) <= 4096  # fits in a part, but not after it
    parts = render(f"{intro}\n\n### Example\n\n```python\n{big}\n```")
    assert parts[0].text == intro + "\n\nExample"
    assert parts[1].text == big


def test_split_parts_still_rejoin_to_the_whole() -> None:
    markdown = "\n\n".join(section(f"Heading {i}", 120) for i in range(30))
    parts = render(markdown)
    assert len(parts) > 3
    for part in parts:
        assert_valid(part.text, part.entities, 4096)
        assert part.text.startswith("Heading")  # every part starts at a heading
    assert "".join(p.text for p in parts).replace("\n", "") == whole(markdown).replace("\n", "")
    assert sum(utf16_len(p.text) for p in parts) <= utf16_len(whole(markdown))
    assert all(isinstance(p, Part) for p in parts)
