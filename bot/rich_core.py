"""What the other rich-message modules share: the limits, building aiogram's objects
cheaply, measuring blocks as Telegram counts them, and flattening them to text.

Blocks are built with pydantic's ``model_construct``: what we build is valid by
construction (the tests validate every message they produce), and validating a
``RichText`` union costs about 35 µs a value, several times the cost of the rest.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol, TypeAlias, TypeVar

from aiogram.types import (
    InputRichBlockDetails,
    InputRichBlockList,
    InputRichBlockMathematicalExpression,
    InputRichBlockParagraph,
    InputRichBlockPreformatted,
    InputRichBlockSectionHeading,
    InputRichBlockTable,
    InputRichBlockUnion,
    InputRichMessage,
    RichTextMathematicalExpression,
    RichTextUnion,
)
from pydantic import BaseModel

__all__ = [
    "MAX_BLOCKS",
    "MAX_CHARS",
    "MAX_COLUMNS",
    "MAX_DEPTH",
    "Block",
    "RichPart",
    "RichText",
    "block_size",
    "clean",
    "measure",
    "new",
    "plain_text",
    "text_len",
    "text_plain",
    "utf16_len",
]

MAX_CHARS = 32_768  # text of one rich message, UTF-16 code units, formula sources included
MAX_BLOCKS = 500  # every block at any depth + every list item + every table row
MAX_DEPTH = 16  # a top-level block has depth 1; blocks inside a list item/quote/details +1
MAX_COLUMNS = 20

Block: TypeAlias = InputRichBlockUnion
RichText: TypeAlias = RichTextUnion

_M = TypeVar("_M", bound=BaseModel)
_DEFAULTS: dict[type[BaseModel], dict[str, Any]] = {}
_set = object.__setattr__


def _defaults(cls: type[BaseModel]) -> dict[str, Any]:
    """The values of ``cls``'s optional fields when not given (its ``type`` a string)."""
    values = {
        name: field.get_default(call_default_factory=True)
        for name, field in cls.model_fields.items()
        if not field.is_required()
    }
    kind = values.get("type")
    if isinstance(kind, Enum):
        values["type"] = kind.value
    _DEFAULTS[cls] = values
    return values


def _construct(cls: type[_M], /, **fields: Any) -> _M:
    """What ``cls.model_construct(**fields)`` makes, about ten times faster: the same
    ``__dict__``, fields set, extra and private attributes (see ``_checked``)."""
    defaults = _DEFAULTS.get(cls)
    if defaults is None:
        defaults = _defaults(cls)
    kind = defaults.get("type")
    if kind is not None and "type" not in fields:
        fields["type"] = kind  # set, so that even a dump of only what was set has it
    values = {**defaults, **fields}
    model = cls.__new__(cls)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", set(fields))
    _set(model, "__pydantic_extra__", {})
    _set(model, "__pydantic_private__", {"_bot": None})
    return model


def _pydantic_construct(cls: type[_M], /, **fields: Any) -> _M:
    kind = (_DEFAULTS.get(cls) or _defaults(cls)).get("type")
    if kind is not None and "type" not in fields:
        fields["type"] = kind
    return cls.model_construct(**fields)


class _New(Protocol):
    def __call__(self, cls: type[_M], /, **fields: Any) -> _M: ...


def _checked() -> _New:
    """``_construct`` if it makes what pydantic's ``model_construct`` makes (it relies on
    how pydantic stores a model), else ``model_construct`` itself."""
    from aiogram.types import RichBlockTableCell, RichTextUrl

    for cls, fields in (
        (RichBlockTableCell, {"text": "x", "align": "left", "valign": "top"}),
        (RichTextUrl, {"text": "x", "url": "https://example.com"}),
    ):
        ours, theirs = _construct(cls, **fields), _pydantic_construct(cls, **fields)
        for name in ("__dict__", "__pydantic_fields_set__", "__pydantic_extra__"):
            if getattr(ours, name) != getattr(theirs, name):
                return _pydantic_construct
        if ours.__pydantic_private__ != theirs.__pydantic_private__:
            return _pydantic_construct
    return _construct


# new(cls, **fields): cls(**fields) without validation, its ``type`` a plain string.
new: _New = _checked()


# What Telegram would not show, replaced one character for one, so that positions in
# the cleaned text are positions in the model's text: control characters (tab and
# newline stay; a carriage return becomes a space, so CR LF is one line break) and
# Unicode line and paragraph separators (newlines).
_UNSHOWN: dict[int, str] = {
    c: " " for c in (*range(0x20), *range(0x7F, 0xA0)) if c not in (0x09, 0x0A)
}
_UNSHOWN.update({0x2028: "\n", 0x2029: "\n"})


def clean(text: str) -> str:
    """``text`` with what Telegram would not show or take (control characters, lone
    surrogates) replaced, each by one character: lengths and positions are kept."""
    text = text.translate(_UNSHOWN)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join("\ufffd" if "\ud800" <= ch <= "\udfff" else ch for ch in text)
    return text


def utf16_len(s: str) -> int:
    """Length of ``s`` in UTF-16 code units, the unit of Telegram's limits."""
    if s.isascii():
        return len(s)
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def text_len(text: Any) -> int:
    """UTF-16 length of a rich text: its strings and its formulas' sources."""
    if isinstance(text, str):
        return utf16_len(text)
    if isinstance(text, list):
        return sum(text_len(t) for t in text)
    if text is None:
        return 0
    if isinstance(text, RichTextMathematicalExpression):
        return utf16_len(text.expression)
    return text_len(getattr(text, "text", None))


def text_plain(text: Any) -> str:
    """A rich text's visible characters (formulas as their source)."""
    if isinstance(text, str):
        return text
    if isinstance(text, list):
        return "".join(text_plain(t) for t in text)
    if text is None:
        return ""
    if isinstance(text, RichTextMathematicalExpression):
        return text.expression
    return text_plain(getattr(text, "text", None))


def _own_chars(block: Any) -> int:
    """Characters of a block itself, not of the blocks inside it."""
    chars = 0
    for name in ("text", "summary", "credit", "caption"):
        value = getattr(block, name, None)
        if value is not None:
            chars += text_len(value)
    expression = getattr(block, "expression", None)
    if isinstance(expression, str):
        chars += utf16_len(expression)
    return chars


def _children(block: Any) -> Iterator[Any]:
    """The blocks one level inside ``block`` (list items count as blocks of their own)."""
    inner = getattr(block, "blocks", None)
    if isinstance(inner, list):
        yield from inner


def block_size(block: Any, depth: int = 1) -> tuple[int, int, int]:
    """(chars, count, depth) of one block placed at ``depth``."""
    if isinstance(block, InputRichBlockParagraph | InputRichBlockSectionHeading):
        return text_len(block.text), 1, depth
    if isinstance(block, InputRichBlockPreformatted):
        return text_len(block.text), 1, depth
    if isinstance(block, InputRichBlockMathematicalExpression):
        return utf16_len(block.expression), 1, depth
    if isinstance(block, InputRichBlockTable):
        chars = text_len(block.caption) if block.caption is not None else 0
        for row in block.cells:
            for cell in row:
                if cell.text is not None:
                    chars += text_len(cell.text)
        return chars, 1 + len(block.cells), depth
    chars, count, deepest = _own_chars(block), 1, depth
    if isinstance(block, InputRichBlockList):
        for item in block.items:
            count += 1
            for child in item.blocks:
                c, n, d = block_size(child, depth + 1)
                chars, count, deepest = chars + c, count + n, max(deepest, d)
        return chars, count, deepest
    for child in _children(block):
        c, n, d = block_size(child, depth + 1)
        chars, count, deepest = chars + c, count + n, max(deepest, d)
    return chars, count, deepest


def measure(blocks: Sequence[Block]) -> tuple[int, int, int]:
    """(chars, count, depth) of a message of ``blocks``, as Telegram counts them: chars
    in UTF-16 units with formula sources; count of blocks at any depth, list items and
    table rows; depth 1 for a top-level block, one more inside a list item, quote or
    details. An empty message is (0, 0, 0)."""
    chars = count = depth = 0
    for block in blocks:
        c, n, d = block_size(block)
        chars, count, depth = chars + c, count + n, max(depth, d)
    return chars, count, depth


def _plain_lines(block: Any, out: list[str]) -> None:
    if isinstance(block, InputRichBlockTable):
        if block.caption is not None:
            out.append(text_plain(block.caption))
        out.extend(text_plain(cell.text) for row in block.cells for cell in row if cell.text)
        return
    if isinstance(block, InputRichBlockDetails):
        out.append(text_plain(block.summary))
    elif isinstance(block, InputRichBlockMathematicalExpression):
        out.append(block.expression)
    else:
        text = getattr(block, "text", None)
        if text is not None:
            out.append(text_plain(text))
    if isinstance(block, InputRichBlockList):
        for item in block.items:
            for child in item.blocks:
                _plain_lines(child, out)
        return
    for child in _children(block):
        _plain_lines(child, out)
    credit = getattr(block, "credit", None)
    if credit is not None:
        out.append(text_plain(credit))


def plain_text(blocks: Sequence[Block]) -> str:
    """The visible text of ``blocks``, flattened: blocks, list items and table cells on
    lines of their own, formulas as their source."""
    out: list[str] = []
    for block in blocks:
        _plain_lines(block, out)
    return "\n".join(out)


@dataclass(frozen=True)
class RichPart:
    """One rich message of an answer."""

    blocks: tuple[Block, ...]
    chars: int  # as measure() counts
    count: int  # as measure() counts
    # Where the next part's source starts in the Markdown, None for the last part: a
    # top-level block's start; where a block too big for one message is cut, the start of
    # the line of the list item, table row or code line the next part goes on with (for
    # text cut between sentences or words: the start of that block).
    source_end: int | None

    def message(self) -> InputRichMessage:
        return new(InputRichMessage, blocks=list(self.blocks))
