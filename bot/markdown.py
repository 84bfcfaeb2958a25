"""The one Markdown parser of model answers: markdown-it-py, configured once.

Models write CommonMark with GitHub's tables, strikethrough and task lists, ``$…$`` and
``$$…$$`` math (and LaTeX's ``\\(…\\)`` and ``\\[…\\]``), and footnotes. ``parse`` turns
such an answer into a ``SyntaxTreeNode`` tree; ``parse_tokens`` gives the flat token
stream that the tree is built from (``bot.rich`` works on the tokens, with the lines each
top-level block came from). Both renderers of answers read this one parser, so the rich
message and its text fallback can never disagree about what the Markdown means. The
parser (and markdown-it) is loaded by the first parse, not at start (``parser``).

What the tree holds beyond CommonMark:

- ``table`` … ``th``/``td`` (GFM tables): a cell's alignment is its ``style`` attribute,
  ``text-align:left|center|right``. As in GFM, ``\\|`` is a pipe inside a cell (in code
  and math too); an unescaped ``|`` always separates cells.
- ``s`` (``~~strikethrough~~``).
- ``math_inline`` (``$…$``, ``\\(…\\)``), ``math_inline_double`` (``$$…$$`` or ``\\[…\\]``
  inside a paragraph) and ``math_block`` (``$$…$$``, ``\\[…\\]`` on lines of their own; it
  may interrupt a paragraph, like a code fence): the formula's source is ``content``.
  A ``$`` counts as math only when no space follows the opening one or precedes the
  closing one and no digit follows the closing one, so "costs $5 and $10" stays text,
  nor when it starts with a digit and holds a word ("US$5.99 or 5$").
  A ``$$`` block ends at a blank line: an unclosed one stays a paragraph of text.
- ``list_item`` of a task list (``- [ ] todo``, ``- [x] done``): ``meta["checked"]`` is
  ``False`` or ``True`` and the ``[ ]``/``[x]`` is removed from the item's text (what
  mdit-py-plugins' tasklists plugin does, without its HTML checkbox token, and linearly:
  the plugin walks back over the whole list for every item).
- ``footnote_ref`` (``[^label]``, ``meta["label"]``), whether or not the answer defines
  the label (so a block means the same whatever follows it), and
  ``footnote_reference`` blocks (the definitions, ``meta["label"]``) where they were
  written: a renderer moves them where it wants.

Raw HTML is not HTML here: ``<b>`` is text, as are anything unknown and anything
half-written (an unclosed ``**`` or fence is what CommonMark makes of it).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.rules_block import StateBlock
    from markdown_it.rules_core import StateCore
    from markdown_it.rules_inline import StateInline
    from markdown_it.token import Token
    from markdown_it.tree import SyntaxTreeNode

__all__ = ["parse", "parse_tokens", "parser"]

# What a block of math may interrupt, as a code fence may.
_MATH_BLOCK_ALT = ["paragraph", "reference", "blockquote", "list"]
# markdown-it stops at this nesting and drops what is deeper (20 in CommonMark's preset:
# a list ten levels deep). Ours is higher, and from _DEEP on the rest of a block is one
# paragraph of text (_too_deep), so nothing is dropped.
_MAX_NESTING = 100
_DEEP = _MAX_NESTING - 10
_TASK = re.compile(r"\[([ xX])\][ \t]+")
# A word of two letters or more standing alone (not a \command): prose, not a formula.
_PROSE = re.compile(r"(?:^|\s)[^\W\d_]{2,}(?=\s|$)")
# StateInline.cache keys (positions are never negative): "no closing bracket-math
# delimiter after the position stored here" for \( and \[.
_NO_CLOSE = {"\\)": -1, "\\]": -2}


def _bracket_math_inline(state: StateInline, silent: bool) -> bool:
    r"""``\(…\)`` (inline) and ``\[…\]`` (display) inside a paragraph."""
    src, pos = state.src, state.pos
    if src.startswith("\\(", pos):
        close, kind = "\\)", "math_inline"
    elif src.startswith("\\[", pos):
        close, kind = "\\]", "math_inline_double"
    else:
        return False
    whole = state.posMax == len(src)
    key = _NO_CLOSE[close]
    if whole and key in state.cache and state.cache[key] <= pos:
        return False
    end = src.find(close, pos + 2, state.posMax)
    if end < 0:
        if whole:  # nothing later can close either: linear on "\( \( \( …"
            state.cache[key] = pos
        return False
    content = src[pos + 2 : end]
    if not content.strip():
        return False
    if not silent:
        token = state.push(kind, "math", 0)
        token.content = content
        token.markup = src[pos : pos + 2]
    state.pos = end + 2
    return True


def _bracket_math_block(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    r"""``\[ … \]`` on lines of its own: the closing ``\]`` ends a line, before a blank one."""
    if state.sCount[start_line] - state.blkIndent >= 4:
        return False
    src = state.src
    start = state.bMarks[start_line] + state.tShift[start_line]
    if not src.startswith("\\[", start):
        return False
    pieces: list[str] = []
    line = start_line
    text = src[start + 2 : state.eMarks[start_line]]
    while True:
        stripped = text.rstrip()
        if stripped.endswith("\\]"):
            pieces.append(stripped[:-2])
            break
        pieces.append(text)
        line += 1
        if line >= end_line or state.isEmpty(line):
            return False
        text = src[state.bMarks[line] + state.tShift[line] : state.eMarks[line]]
    content = "\n".join(pieces)
    if not content.strip():
        return False
    if silent:
        return True
    token = state.push("math_block", "math", 0)
    token.block = True
    token.content = content
    token.markup = "\\["
    token.map = [start_line, line + 1]
    state.line = line + 1
    return True


def _too_deep(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
    """Nested too deep for the parser: the rest of this block as a paragraph of text."""
    if state.level < _DEEP or silent:
        return False
    text = state.getLines(start_line, end_line, state.blkIndent, False).strip()
    if text:
        state.push("paragraph_open", "p", 1).map = [start_line, end_line]
        inline = state.push("inline", "", 0)
        inline.content = text
        inline.map = [start_line, end_line]
        inline.children = []
        state.push("paragraph_close", "p", -1)
    state.line = end_line
    return True


def _dollar_block() -> Callable[[StateBlock, int, int, bool], bool]:
    """dollarmath's ``$$`` block rule, made safe to ask whether it interrupts a paragraph
    (it pushes its token even when asked silently)."""
    from mdit_py_plugins.dollarmath.index import math_block_dollar

    rule = math_block_dollar(allow_labels=False, allow_blank_lines=False)

    def _math_block(state: StateBlock, start_line: int, end_line: int, silent: bool) -> bool:
        if not silent:
            return rule(state, start_line, end_line, False)
        tokens, line = len(state.tokens), state.line
        found = rule(state, start_line, end_line, True)
        del state.tokens[tokens:]
        state.line = line
        return found

    return _math_block


def _dollar_inline(
    rule: Callable[[StateInline, bool], bool],
) -> Callable[[StateInline, bool], bool]:
    """dollarmath's ``$…$`` rule, but not for prose between two prices: "US$5.99 or 5$"."""

    def _math_inline(state: StateInline, silent: bool) -> bool:
        start = state.pos
        if not rule(state, True):  # (silently: no token pushed yet)
            return False
        content = state.src[start + 1 : state.pos - 1]
        state.pos = start
        if content[:1].isdigit() and _PROSE.search(content):
            return False
        return rule(state, silent)

    return _math_inline


def _task_lists(state: StateCore) -> None:
    """Mark task-list items (``meta["checked"]``) and drop their ``[ ]``/``[x]``."""
    tokens = state.tokens
    for i in range(len(tokens) - 2):
        item = tokens[i]
        if item.type != "list_item_open" or tokens[i + 1].type != "paragraph_open":
            continue
        inline = tokens[i + 2]
        children = inline.children
        match = _TASK.match(inline.content)
        if not match or not children or children[0].type != "text":
            continue
        first = children[0]
        if not first.content.startswith(match.group()):
            continue
        item.meta["checked"] = match.group(1) != " "
        first.content = first.content[match.end() :]
        inline.content = inline.content[match.end() :]
        if not first.content:
            del children[0]


@functools.cache
def parser() -> MarkdownIt:
    """The configured parser, built (and markdown-it imported: some 20 ms) on first use."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin
    from mdit_py_plugins.footnote import footnote_plugin

    md = MarkdownIt(
        "commonmark",
        {"html": False, "linkify": False, "typographer": False, "maxNesting": _MAX_NESTING},
    )
    md.enable(["table", "strikethrough"])
    md.use(
        dollarmath_plugin,
        allow_labels=False,
        allow_space=False,
        allow_digits=False,
        allow_blank_lines=False,
        double_inline=True,
    )
    inline = md.inline.ruler
    inline.at("math_inline", _dollar_inline(inline.__rules__[inline.__find__("math_inline")].fn))
    # dollarmath registers its block rule without "alt": let it interrupt a paragraph.
    md.block.ruler.at(
        "math_block",
        _dollar_block(),
        {"alt": _MATH_BLOCK_ALT},
    )
    md.block.ruler.before(
        "fence", "math_block_brackets", _bracket_math_block, {"alt": _MATH_BLOCK_ALT}
    )
    md.inline.ruler.before("escape", "math_brackets", _bracket_math_inline)
    md.use(footnote_plugin, inline=False, move_to_end=False, always_match_refs=True)
    md.core.ruler.after("inline", "task_lists", _task_lists)
    first = md.block.ruler.__rules__[0].name
    md.block.ruler.before(first, "too_deep", _too_deep)
    return md


def parse_tokens(markdown: str, env: dict[str, Any] | None = None) -> list[Token]:
    """The token stream of ``markdown``. ``env`` carries link reference definitions
    (``env["references"]``) in and out, as markdown-it does."""
    return parser().parse(markdown, {} if env is None else env)


def parse(markdown: str) -> SyntaxTreeNode:
    """``markdown`` as a tree (the root's children are the top-level blocks)."""
    from markdown_it.tree import SyntaxTreeNode

    return SyntaxTreeNode(parse_tokens(markdown))
