"""Telegram's text checks, as the Bot API server and TDLib make them.

The parsers are ports of TDLib's ``parse_html``, ``parse_markdown_v2`` and
``parse_markdown`` (td/telegram/MessageEntity.cpp), working on UTF-8 bytes so that
error messages carry the same byte offsets. Explicit entity lists are read like the
Bot API's ``get_text_entity`` and then checked like TDLib's ``fix_formatted_text``:
offsets and lengths in UTF-16 code units, inside the text, on code point boundaries.
The text is then cleaned (``\\r`` dropped, control characters turned into spaces) and
trimmed, and only then measured: 1..4096 UTF-16 code units for a message, 0..1024 for
a caption. Errors are Telegram's descriptions, word for word
(``"Bad Request: can't parse entities: ..."``).

Entities past the 100th are dropped silently, as Telegram does; ``count_entities``
tells how many a text has so tests can keep under that cap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

MAX_MESSAGE_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_ENTITIES = 100

EMPTY_TEXT = "Bad Request: message text is empty"
NOT_EMPTY = "Bad Request: text must be non-empty"
TOO_LONG = "Bad Request: message is too long"
CAPTION_TOO_LONG = "Bad Request: message caption is too long"
BAD_UTF8 = "Bad Request: strings must be encoded in UTF-8"
BAD_PARSE_MODE = "Bad Request: unsupported parse_mode"


class FormattingError(ValueError):
    """Telegram refused the text; ``description`` is its error description."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass(frozen=True)
class FormattedText:
    """A text as Telegram stores it: cleaned, trimmed, with Bot API entity dicts."""

    text: str
    entities: list[dict[str, Any]]
    entity_count: int = 0  # entities before the cap of 100


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's offsets and limits."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def validate_text(
    text: str, entities: list[dict[str, Any]] | None = None, parse_mode: str | None = None
) -> str | None:
    """Telegram's error description for this message text, or None when accepted."""
    try:
        parse_text(text, entities, parse_mode)
    except FormattingError as error:
        return error.description
    return None


def validate_caption(
    caption: str, entities: list[dict[str, Any]] | None = None, parse_mode: str | None = None
) -> str | None:
    """Like ``validate_text`` for a media caption (may be empty, at most 1024)."""
    try:
        parse_text(caption, entities, parse_mode, caption=True)
    except FormattingError as error:
        return error.description
    return None


def count_entities(
    text: str, entities: list[dict[str, Any]] | None = None, parse_mode: str | None = None
) -> int:
    """How many formatting entities the text carries (Telegram keeps only 100)."""
    return parse_text(text, entities, parse_mode, allow_empty=True, limit=2**31).entity_count


def parse_text(
    text: str | None,
    entities: list[Any] | None = None,
    parse_mode: str | None = None,
    *,
    caption: bool = False,
    allow_empty: bool = False,
    limit: int | None = None,
) -> FormattedText:
    """Read a text the way ``sendMessage`` (or a caption, or a draft) does.

    Raises FormattingError with Telegram's description when it would be refused.
    """
    allow_empty = allow_empty or caption
    if limit is None:
        limit = MAX_CAPTION_LENGTH if caption else MAX_MESSAGE_LENGTH
    if not text:
        if allow_empty:
            return FormattedText("", [])
        raise FormattingError(EMPTY_TEXT)
    if _has_surrogates(text):
        raise FormattingError(BAD_UTF8)
    mode = (parse_mode or "").lower()
    if mode not in ("", "none"):
        parser = _PARSERS.get(mode)
        if parser is None:
            raise FormattingError(BAD_PARSE_MODE)
        try:
            text, parsed = parser(text)
        except _ParseError as error:
            raise FormattingError(_bad_request(f"Can't parse entities: {error}")) from None
    else:
        read = [_read_api_entity(item) for item in entities or []]
        parsed = [entity for entity in read if entity is not None]
    try:
        text, parsed = _fix_formatted_text(text, parsed, allow_empty=allow_empty)
    except _ParseError as error:
        raise FormattingError(_bad_request(str(error))) from None
    if utf16_len(text) > limit:
        raise FormattingError(CAPTION_TOO_LONG if caption else TOO_LONG)
    kept = _cap_entities(parsed)
    return FormattedText(text, [entity.to_api() for entity in kept], len(parsed))


# --- entities -------------------------------------------------------------------

# TDLib's names (used in its error messages) -> the Bot API's names.
_API_TYPES = {
    "Bold": "bold",
    "Italic": "italic",
    "Underline": "underline",
    "Strikethrough": "strikethrough",
    "Spoiler": "spoiler",
    "Code": "code",
    "Pre": "pre",
    "PreCode": "pre",
    "TextUrl": "text_link",
    "MentionName": "text_mention",
    "CustomEmoji": "custom_emoji",
    "BlockQuote": "blockquote",
    "ExpandableBlockQuote": "expandable_blockquote",
    "DateTime": "date_time",
}
# TDLib's sort priorities (MessageEntity::get_type_priority).
_PRIORITY = {
    "Bold": 90,
    "Italic": 91,
    "Code": 20,
    "Pre": 11,
    "PreCode": 10,
    "TextUrl": 49,
    "MentionName": 49,
    "Underline": 92,
    "Strikethrough": 93,
    "BlockQuote": 0,
    "Spoiler": 94,
    "CustomEmoji": 99,
    "ExpandableBlockQuote": 0,
    "DateTime": 50,
}
_SPLITTABLE = {"Bold", "Italic", "Underline", "Strikethrough", "Spoiler"}
# Entities Telegram finds by itself: the Bot API ignores them when a bot passes them.
_FOUND_TYPES = {"mention", "hashtag", "cashtag", "bot_command", "url", "email"}
_FOUND_TYPES |= {"phone_number", "bank_card_number"}
_GIVEN_TYPES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "text_mention": "MentionName",
    "custom_emoji": "CustomEmoji",
    "blockquote": "BlockQuote",
    "expandable_blockquote": "ExpandableBlockQuote",
    "date_time": "DateTime",
}


@dataclass
class _Entity:
    type: str  # TDLib's name
    offset: int
    length: int
    argument: str = ""  # url, language, custom emoji id, user id
    extra: dict[str, Any] = field(default_factory=dict)

    def sort_key(self) -> tuple[int, int, int]:
        return (self.offset, -self.length, _PRIORITY[self.type])

    def to_api(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "type": _API_TYPES[self.type],
            "offset": self.offset,
            "length": self.length,
        }
        if self.type == "TextUrl":
            result["url"] = self.argument
        elif self.type == "PreCode":
            result["language"] = self.argument
        elif self.type == "CustomEmoji":
            result["custom_emoji_id"] = self.argument
        elif self.type == "MentionName":
            result["user"] = self.extra.get("user") or {
                "id": int(self.argument),
                "is_bot": False,
                "first_name": "",
            }
        result.update({k: v for k, v in self.extra.items() if k != "user"})
        return result


class _ParseError(Exception):
    """A TDLib error message, before the Bot API adds its prefix."""


def _bad_request(message: str) -> str:
    """The Bot API's wording of a TDLib error: prefix, first letter lowered."""
    if len(message) >= 2 and (message[1] == "_" or message[1].isupper()):
        return f"Bad Request: {message}"
    return f"Bad Request: {message[:1].lower()}{message[1:]}"


def _sort(entities: list[_Entity]) -> list[_Entity]:
    return sorted(entities, key=_Entity.sort_key)


def _cap_entities(entities: list[_Entity]) -> list[_Entity]:
    """Keep what Telegram keeps: 100 entities, whole ones first, then bold & co."""
    kept: list[_Entity] = []
    count = 0
    for entity in entities:
        if entity.type == "CustomEmoji":
            kept.append(entity)
        elif entity.type not in _SPLITTABLE and count < MAX_ENTITIES:
            kept.append(entity)
            count += 1
    for entity in entities:
        if entity.type in _SPLITTABLE and count < MAX_ENTITIES:
            kept.append(entity)
            count += 1
    return _sort(kept)


def _read_api_entity(item: Any) -> _Entity | None:
    """One MessageEntity from a bot, read like the Bot API's ``get_text_entity``."""

    def refuse(reason: str) -> FormattingError:
        return FormattingError(f"Bad Request: can't parse MessageEntity: {reason}")

    if not isinstance(item, dict):
        raise refuse("expected an Object")
    numbers: dict[str, int] = {}
    for name in ("offset", "length"):
        if name not in item:
            raise refuse(f'Can\'t find field "{name}"')
        value = item[name]
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise refuse(f'Field "{name}" must be a Number')
        try:
            numbers[name] = int(value)
        except ValueError:
            raise refuse(f'Field "{name}" must be a valid Number') from None
    if "type" not in item:
        raise refuse('Can\'t find field "type"')
    api_type = item["type"]
    if not isinstance(api_type, str):
        raise refuse('Field "type" must be of type String')
    if not api_type:
        raise refuse("Type is not specified")
    if api_type in _FOUND_TYPES:
        return None
    kind = _GIVEN_TYPES.get(api_type)
    if kind is None:
        raise refuse("Unsupported type specified")
    entity = _Entity(kind, numbers["offset"], numbers["length"])
    if kind == "Pre" and item.get("language"):
        entity.type, entity.argument = "PreCode", str(item["language"])
    elif kind == "TextUrl":
        if "url" not in item:
            raise refuse('Can\'t find field "url"')
        url = str(item["url"])
        checked, reason = _check_link(url)
        if not checked:
            raise FormattingError(_bad_request(f"Entity URL '{url}' is invalid: {reason}"))
        entity.argument = checked
    elif kind == "MentionName":
        user = item.get("user")
        if not isinstance(user, dict) or "id" not in user:
            raise refuse('Can\'t find field "user"')
        entity.argument, entity.extra["user"] = str(user["id"]), user
    elif kind == "CustomEmoji":
        if "custom_emoji_id" not in item:
            raise refuse('Can\'t find field "custom_emoji_id"')
        if not str(item["custom_emoji_id"]).lstrip("-").isdigit():
            raise refuse('Field "custom_emoji_id" must be a valid Number')
        if int(item["custom_emoji_id"]) == 0:
            raise FormattingError("Bad Request: invalid custom emoji identifier specified")
        entity.argument = str(int(item["custom_emoji_id"]))
    elif kind == "DateTime":
        if "unix_time" not in item:
            raise refuse('Can\'t find field "unix_time"')
        entity.extra["unix_time"] = int(item["unix_time"])
        if item.get("date_time_format"):
            entity.extra["date_time_format"] = str(item["date_time_format"])
    return entity


_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_HOST = re.compile(r"^[^\s/?#@:]+$")


def _check_link(url: str) -> tuple[str, str]:
    """A simplified ``LinkManager::check_link``: (normalized url, "") or ("", reason)."""
    scheme_match = _URL_SCHEME.match(url)
    scheme = scheme_match.group(1).lower() if scheme_match else ""
    if scheme in ("tg", "ton", "tonsite"):
        return url, ""
    if "://" not in url:
        url, scheme = "http://" + url, "http"
    if scheme not in ("http", "https"):
        return "", "Unsupported URL protocol"
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port
    except ValueError:
        return "", "Wrong HTTP URL"
    if "." not in host or not _HOST.match(host) or host.startswith(".") or host.endswith("."):
        return "", "Wrong HTTP URL"
    result = f"{scheme}://{parts.netloc}{parts.path or '/'}"
    if parts.query:
        result += "?" + parts.query
    if parts.fragment:
        result += "#" + parts.fragment
    return result, ""


def _link_entity(offset: int, length: int, url: str) -> _Entity | None:
    """The entity an HTML/Markdown link becomes; None when the link is not valid."""
    user = re.fullmatch(r"tg://user\?id=(\d+)", url, re.IGNORECASE)
    if user and int(user.group(1)) > 0:
        return _Entity("MentionName", offset, length, user.group(1))
    checked, _ = _check_link(url)
    return _Entity("TextUrl", offset, length, checked) if checked else None


# --- cleaning and trimming (TDLib fix_formatted_text) -----------------------------

_REMOVED = {"\r", "\u2028", "\u2029", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e"}
_REMOVED |= {"\u0333", "\u033f", "\u030a"}


def _has_surrogates(text: str) -> bool:
    return any(0xD800 <= ord(ch) <= 0xDFFF for ch in text)


def _clean_char(ch: str) -> str:
    """What TDLib keeps of one character: '' (removed), ' ' (control) or itself."""
    if ch in _REMOVED:
        return ""
    if ord(ch) <= 32 and ch != "\n":
        return " "
    return ch


def _fix_formatted_text(
    text: str, entities: list[_Entity], *, allow_empty: bool
) -> tuple[str, list[_Entity]]:
    for entity in entities:
        if not 0 <= entity.offset <= 1_000_000:
            raise _ParseError(f"Receive an entity with incorrect offset {entity.offset}")
        if not 0 <= entity.length <= 1_000_000:
            raise _ParseError(f"Receive an entity with incorrect length {entity.length}")
    entities = _sort([entity for entity in entities if entity.length > 0])
    text, entities = _clean_with_entities(text, entities)
    return _trim(text, entities, allow_empty=allow_empty)


def _clean_with_entities(text: str, entities: list[_Entity]) -> tuple[str, list[_Entity]]:
    """Drop and replace characters like TDLib, moving entities; check their bounds."""
    stack: list[tuple[_Entity, int]] = []
    fixed: list[_Entity] = []
    current = 0
    utf16 = 0
    skipped = 0
    byte_pos = 0
    result: list[str] = []
    for index in range(len(text) + 1):
        while stack:
            entity, skipped_before = stack[-1]
            end = entity.offset + entity.length
            if utf16 < end:
                break
            if utf16 != end:
                raise _ParseError(
                    f"Entity beginning at UTF-16 offset {entity.offset} ends in a middle of "
                    f"a UTF-16 symbol at byte offset {byte_pos}"
                )
            entity.offset -= skipped_before
            entity.length -= skipped - skipped_before
            fixed.append(entity)
            stack.pop()
        while current < len(entities) and utf16 >= entities[current].offset:
            if utf16 != entities[current].offset:
                raise _ParseError(
                    f"Entity begins in a middle of a UTF-16 symbol at byte offset {byte_pos}"
                )
            stack.append((entities[current], skipped))
            current += 1
        if index == len(text):
            break
        ch = text[index]
        units = 2 if ord(ch) > 0xFFFF else 1
        cleaned = _clean_char(ch)
        utf16 += units
        if cleaned:
            result.append(cleaned)
        else:
            skipped += units
        byte_pos += len(ch.encode("utf-8"))
    if current != len(entities):
        raise _ParseError(
            f"Entity begins after the end of the text at UTF-16 offset {entities[current].offset}"
        )
    if stack:
        entity = stack[-1][0]
        raise _ParseError(
            f"Entity beginning at UTF-16 offset {entity.offset} ends after the end of the "
            f"text at UTF-16 offset {entity.offset + entity.length}"
        )
    return "".join(result), _sort([entity for entity in fixed if entity.length > 0])


def _trim(text: str, entities: list[_Entity], *, allow_empty: bool) -> tuple[str, list[_Entity]]:
    """Strip leading/trailing spaces and newlines as TDLib does, keeping entities right."""
    stripped = text.rstrip(" \n")
    if not stripped:
        if allow_empty:
            return "", []
        raise _ParseError("Text must be non-empty")
    end = utf16_len(stripped)
    kept = []
    for entity in entities:
        if entity.offset >= end:
            continue
        entity.length = min(entity.length, end - entity.offset)
        kept.append(entity)
    first_entity = kept[0].offset if kept else len(stripped)
    lead = 0
    while lead < first_entity and stripped[lead] in " \n":
        lead += 1
    for entity in kept:
        entity.offset -= lead
    return stripped[lead:], _sort(kept)


# --- HTML (TDLib parse_html) ------------------------------------------------------

_SIMPLE_TAGS = {
    b"b": "Bold",
    b"strong": "Bold",
    b"i": "Italic",
    b"em": "Italic",
    b"s": "Strikethrough",
    b"strike": "Strikethrough",
    b"del": "Strikethrough",
    b"u": "Underline",
    b"ins": "Underline",
    b"tg-spoiler": "Spoiler",
    b"span": "Spoiler",
}
_HTML_TAGS = {*_SIMPLE_TAGS, b"a", b"tg-emoji", b"tg-time", b"pre", b"code", b"blockquote"}
_SPACES = b" \t\r\n\0\v\f"


def _is_space(byte: int) -> bool:
    return byte in _SPACES


def _first_unit(byte: int) -> bool:
    return byte & 0xC0 != 0x80


def _units(byte: int) -> int:
    """UTF-16 units a UTF-8 character starting with this byte takes."""
    return 2 if byte >= 0xF0 else 1


class _Bytes:
    """UTF-8 bytes read like a C string: past the end reads as 0."""

    def __init__(self, text: str) -> None:
        self.data = text.encode("utf-8")

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> int:
        return self.data[index] if index < len(self.data) else 0

    def slice(self, begin: int, end: int) -> bytes:
        return self.data[begin:end]


def _decode_html_entity(src: _Bytes, pos: int) -> tuple[int, int]:
    """(code point, position after) of an HTML entity at ``pos``; (0, pos) if none."""
    end = pos + 1
    code = 0
    if src[pos + 1] == ord("#"):
        end += 1
        if src[pos + 2] == ord("x"):
            end += 1
            while chr(src[end]) in "0123456789abcdefABCDEF" and src[end]:
                code = code * 16 + int(chr(src[end]), 16)
                end += 1
        else:
            while ord("0") <= src[end] <= ord("9"):
                code = code * 10 + src[end] - ord("0")
                end += 1
        if code == 0 or code >= 0x10FFFF or end - pos >= 10:
            return 0, pos
    else:
        while chr(src[end]).isascii() and chr(src[end]).isalpha():
            end += 1
        code = {b"lt": 0x3C, b"gt": 0x3E, b"amp": 0x26, b"quot": 0x22}.get(
            src.slice(pos + 1, end), 0
        )
        if code == 0:
            return 0, pos
    if src[end] == ord(";"):
        end += 1
    return code, end


def _encode_code_point(code: int) -> bytes:
    return chr(code).encode("utf-8", "surrogatepass")


@dataclass
class _OpenTag:
    name: bytes
    argument: str
    offset: int
    begin: int  # where its text starts in the output bytes
    attributes: dict[str, str] = field(default_factory=dict)


def _parse_html(text: str) -> tuple[str, list[_Entity]]:
    src = _Bytes(text)
    out = bytearray()
    entities: list[_Entity] = []
    open_tags: list[_OpenTag] = []
    utf16 = 0
    bad_surrogate = False
    i = 0
    while i < len(src):
        c = src[i]
        if c == ord("&"):
            code, after = _decode_html_entity(src, i)
            if code:
                utf16 += 2 if code > 0xFFFF else 1
                bad_surrogate |= 0xD800 <= code <= 0xDFFF
                out += _encode_code_point(code)
                i = after
                continue
        if c != ord("<"):
            if _first_unit(c):
                utf16 += _units(c)
            out.append(c)
            i += 1
            continue
        begin = i
        i += 1
        if src[i] != ord("/"):
            tag, i = _html_start_tag(src, begin, i)
            tag.offset, tag.begin = utf16, len(out)
            open_tags.append(tag)
        else:
            if not open_tags:
                raise _ParseError(f"Unexpected end tag at byte offset {begin}")
            while not _is_space(src[i]) and src[i] != ord(">"):
                i += 1
            end_name = src.slice(begin + 2, i).lower()
            while _is_space(src[i]) and src[i] != 0:
                i += 1
            if src[i] != ord(">"):
                raise _ParseError(f"Unclosed end tag at byte offset {begin}")
            tag = open_tags[-1]
            if end_name and end_name != tag.name:
                raise _ParseError(
                    f'Unmatched end tag at byte offset {begin}, expected "</{_s(tag.name)}>", '
                    f'found "</{_s(end_name)}>"'
                )
            if utf16 > tag.offset:
                _close_html_tag(tag, utf16 - tag.offset, bytes(out[tag.begin :]), entities)
            open_tags.pop()
        i += 1
    if open_tags:
        raise _ParseError(
            f'Can\'t find end tag corresponding to start tag "{_s(open_tags[-1].name)}"'
        )
    for entity in entities:
        if entity.type == "Code":
            entity.argument = ""
    if bad_surrogate:
        raise _ParseError(
            "Text contains invalid Unicode characters after decoding HTML entities, check for "
            "unmatched surrogate code units"
        )
    return out.decode("utf-8"), _sort(entities)


def _s(name: bytes) -> str:
    return name.decode("utf-8", "replace")


def _html_start_tag(src: _Bytes, begin: int, i: int) -> tuple[_OpenTag, int]:
    """Read ``<name attr=value ...>`` from ``begin``; return the tag and the '>' index."""
    while not _is_space(src[i]) and src[i] != ord(">"):
        i += 1
    if src[i] == 0:
        raise _ParseError(f"Unclosed start tag at byte offset {begin}")
    name = src.slice(begin + 1, i).lower()
    if name not in _HTML_TAGS:
        raise _ParseError(f'Unsupported start tag "{_s(name)}" at byte offset {begin}')
    tag = _OpenTag(name, "", 0, 0)
    while src[i] != ord(">"):
        while src[i] != 0 and _is_space(src[i]):
            i += 1
        if src[i] == ord(">"):
            break
        attribute_begin = i
        while not _is_space(src[i]) and src[i] not in b"=>/\"'":
            i += 1
        attribute = src.slice(attribute_begin, i)
        if not attribute:
            raise _ParseError(
                f'Empty attribute name in the tag "{_s(name)}" at byte offset {begin}'
            )
        while src[i] != 0 and _is_space(src[i]):
            i += 1
        if src[i] != ord("="):
            if src[i] == 0:
                raise _ParseError(f'Unclosed start tag "{_s(name)}" at byte offset {begin}')
            if name == b"blockquote" and attribute == b"expandable":
                tag.argument = "1"
            continue
        i += 1
        while src[i] != 0 and _is_space(src[i]):
            i += 1
        if src[i] == 0:
            raise _ParseError(f'Unclosed start tag "{_s(name)}" at byte offset {begin}')
        value, i = _html_attribute_value(src, i)
        if src[i] == 0:
            raise _ParseError(f"Unclosed start tag at byte offset {begin}")
        _apply_attribute(tag, attribute, value)
    if name == b"span" and tag.argument != "spoiler":
        raise _ParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
    return tag, i


def _html_attribute_value(src: _Bytes, i: int) -> tuple[str, int]:
    if src[i] not in (ord("'"), ord('"')):
        token_begin = i
        while chr(src[i]).isascii() and (chr(src[i]).isalnum() or src[i] in b".-") and src[i]:
            i += 1
        if not _is_space(src[i]) and src[i] != ord(">"):
            raise _ParseError(f"Unexpected end of name token at byte offset {token_begin}")
        return _s(src.slice(token_begin, i).lower()), i
    quote = src[i]
    i += 1
    value = bytearray()
    while src[i] != quote and src[i] != 0:
        if src[i] == ord("&"):
            code, after = _decode_html_entity(src, i)
            if code:
                value += _encode_code_point(code)
                i = after
                continue
        value.append(src[i])
        i += 1
    if src[i] == quote:
        i += 1
    return value.decode("utf-8", "replace"), i


def _apply_attribute(tag: _OpenTag, attribute: bytes, value: str) -> None:
    if tag.name == b"a" and attribute == b"href":
        tag.argument = value
    elif tag.name == b"code" and attribute == b"class" and value.startswith("language-"):
        tag.argument = value[9:]
    elif tag.name == b"span" and attribute == b"class" and value.startswith("tg-"):
        tag.argument = value[3:]
    elif tag.name == b"tg-emoji" and attribute == b"emoji-id":
        tag.argument = value
    elif tag.name == b"blockquote" and attribute == b"expandable":
        tag.argument = "1"
    elif tag.name == b"tg-time" and attribute in (b"unix", b"format"):
        tag.attributes[attribute.decode()] = value


def _close_html_tag(tag: _OpenTag, length: int, inner: bytes, entities: list[_Entity]) -> None:
    """Add the entity a closed tag makes (TDLib's rules, including <pre><code>)."""
    offset = tag.offset
    last = entities[-1] if entities else None
    if tag.name in _SIMPLE_TAGS:
        entities.append(_Entity(_SIMPLE_TAGS[tag.name], offset, length))
    elif tag.name == b"tg-emoji":
        if not tag.argument.lstrip("-").isdigit() or int(tag.argument) == 0:
            raise _ParseError("Invalid custom emoji identifier specified")
        entities.append(_Entity("CustomEmoji", offset, length, str(int(tag.argument))))
    elif tag.name == b"tg-time":
        unix = tag.attributes.get("unix", "")
        if unix.isdigit() and int(unix) > 0:
            extra: dict[str, Any] = {"unix_time": int(unix)}
            if tag.attributes.get("format"):
                extra["date_time_format"] = tag.attributes["format"]
            entities.append(_Entity("DateTime", offset, length, extra=extra))
    elif tag.name == b"a":
        url = tag.argument or inner.decode("utf-8", "replace")
        link = _link_entity(offset, length, url)
        if link is not None:
            entities.append(link)
    elif tag.name == b"pre":
        if (
            last is not None
            and last.type == "Code"
            and (last.offset, last.length) == (offset, length)
            and last.argument
        ):
            last.type = "PreCode"
        else:
            entities.append(_Entity("Pre", offset, length))
    elif tag.name == b"code":
        if (
            last is not None
            and last.type == "Pre"
            and (last.offset, last.length) == (offset, length)
            and tag.argument
        ):
            last.type, last.argument = "PreCode", tag.argument
        else:
            entities.append(_Entity("Code", offset, length, tag.argument))
    elif tag.name == b"blockquote":
        kind = "ExpandableBlockQuote" if tag.argument else "BlockQuote"
        entities.append(_Entity(kind, offset, length))


# --- MarkdownV2 (TDLib parse_markdown_v2) -----------------------------------------


@dataclass
class _OpenMark:
    type: str
    argument: str
    offset: int  # UTF-16 offset in the output
    byte_offset: int  # where the mark is in the input (for errors)
    begin: int  # where its text starts in the output bytes


def _reserved(ch: int) -> _ParseError:
    return _ParseError(
        f"Character '{chr(ch)}' is reserved and must be escaped with the preceding '\\'"
    )


def _parse_markdown_v2(text: str) -> tuple[str, list[_Entity]]:
    src = _Bytes(text)
    out = bytearray()
    entities: list[_Entity] = []
    stack: list[_OpenMark] = []
    utf16 = 0
    have_blockquote = False
    can_start_blockquote = True
    i = 0
    while i < len(src):
        c = src[i]
        if c == ord("\\") and 0 < src[i + 1] <= 126:
            i += 1
            utf16 += 1
            out.append(src[i])
            if src[i] != ord("\r"):
                can_start_blockquote = src[i] == ord("\n")
            i += 1
            continue
        reserved = b"_*[]()~`>#+-=|{}.!\n"
        if stack and stack[-1].type in ("Code", "Pre", "PreCode"):
            reserved = b"`"
        if c not in reserved:
            if _first_unit(c):
                utf16 += _units(c)
                if c != ord("\r"):
                    can_start_blockquote = False
            out.append(c)
            i += 1
            continue
        if not _md2_is_end(src, i, stack, have_blockquote):
            opened, i, utf16, can_start_blockquote, have_blockquote = _md2_open(
                src, i, out, utf16, can_start_blockquote, have_blockquote
            )
            if opened is not None:
                stack.append(opened)
            i += 1
            continue
        mark = stack[-1]
        kind = mark.type
        if c == ord("\n") and kind != "BlockQuote":
            ends_spoiler = mark.byte_offset == i - 2 or (
                mark.byte_offset == i - 3 and out and out[-1] == ord("\r")
            )
            if kind != "Spoiler" or not ends_spoiler:
                raise _md2_unclosed(mark)
            stack.pop()
            mark = stack[-1]
            if mark.type != "BlockQuote":
                raise _md2_unclosed(mark)
            kind = "ExpandableBlockQuote"
        skip = utf16 == mark.offset
        argument = mark.argument
        if kind in ("Underline", "Spoiler"):
            i += 1
        elif kind in ("Pre", "PreCode"):
            i += 2
        elif kind == "TextUrl":
            url, i = _md2_url(src, i, out, mark)
            link = _link_entity(mark.offset, utf16 - mark.offset, url)
            if link is None:
                skip = True
            elif not skip:
                entities.append(link)
                skip = True
        elif kind == "CustomEmoji":
            if src[i + 1] != ord("("):
                raise _ParseError("Custom emoji entity must contain a tg://emoji URL")
            url, i = _md2_link_target(src, i + 2, "Can't find end of a custom emoji URL")
            emoji = re.fullmatch(r"tg://emoji\?id=(-?\d+)", url, re.IGNORECASE)
            if emoji is None or int(emoji.group(1)) == 0:
                raise _ParseError("Invalid custom emoji identifier specified")
            argument = str(int(emoji.group(1)))
        elif kind in ("BlockQuote", "ExpandableBlockQuote"):
            have_blockquote = False
            out.append(src[i])
            can_start_blockquote = True
            utf16 += 1
            skip = False
        if not skip:
            entities.append(_Entity(kind, mark.offset, utf16 - mark.offset, argument))
        stack.pop()
        i += 1
    if have_blockquote:
        kind = "BlockQuote"
        if stack[-1].type == "Spoiler" and stack[-1].byte_offset == len(src) - 2:
            stack.pop()
            kind = "ExpandableBlockQuote"
        if stack[-1].type == "BlockQuote":
            if utf16 != stack[-1].offset:
                entities.append(_Entity(kind, stack[-1].offset, utf16 - stack[-1].offset))
            stack.pop()
    if stack:
        raise _md2_unclosed(stack[-1])
    return out.decode("utf-8"), _sort(entities)


def _md2_unclosed(mark: _OpenMark) -> _ParseError:
    return _ParseError(f"Can't find end of {mark.type} entity at byte offset {mark.byte_offset}")


def _md2_is_end(src: _Bytes, i: int, stack: list[_OpenMark], have_blockquote: bool) -> bool:
    if not stack:
        return False
    c = src[i]
    if have_blockquote and c == ord("\n") and (i + 1 == len(src) or src[i + 1] != ord(">")):
        return True
    kind = stack[-1].type
    nxt = src[i + 1]
    ends = {
        "Bold": c == ord("*"),
        "Italic": c == ord("_") and nxt != ord("_"),
        "Code": c == ord("`"),
        "Pre": c == ord("`") and nxt == ord("`") and src[i + 2] == ord("`"),
        "PreCode": c == ord("`") and nxt == ord("`") and src[i + 2] == ord("`"),
        "TextUrl": c == ord("]"),
        "Underline": c == ord("_") and nxt == ord("_"),
        "Strikethrough": c == ord("~"),
        "Spoiler": c == ord("|") and nxt == ord("|"),
        "CustomEmoji": c == ord("]"),
        "BlockQuote": False,
    }
    return ends[kind]


def _md2_open(
    src: _Bytes,
    i: int,
    out: bytearray,
    utf16: int,
    can_start_blockquote: bool,
    have_blockquote: bool,
) -> tuple[_OpenMark | None, int, int, bool, bool]:
    """Start an entity at ``i``; returns (mark or None, last index read, state...)."""
    c = src[i]
    byte_offset = i
    argument = ""
    if c == ord("_"):
        kind = "Italic"
        if src[i + 1] == ord("_"):
            kind, i = "Underline", i + 1
    elif c == ord("*"):
        kind = "Bold"
    elif c == ord("~"):
        kind = "Strikethrough"
    elif c == ord("|"):
        if src[i + 1] != ord("|"):
            raise _reserved(c)
        kind, i = "Spoiler", i + 1
    elif c == ord("["):
        kind = "TextUrl"
    elif c == ord("`"):
        kind = "Code"
        if src[i + 1] == ord("`") and src[i + 2] == ord("`"):
            i += 3
            kind = "Pre"
            language_end = i
            while not _is_space(src[language_end]) and src[language_end] != ord("`"):
                language_end += 1
            if i != language_end and language_end < len(src) and src[language_end] != ord("`"):
                kind, argument = "PreCode", _s(src.slice(i, language_end))
                i = language_end
            if src[i] in b"\n\r":
                if src[i + 1] in b"\n\r" and src[i] != src[i + 1]:
                    i += 2
                else:
                    i += 1
            i -= 1
    elif c == ord("!"):
        if src[i + 1] != ord("["):
            raise _reserved(c)
        kind, i = "CustomEmoji", i + 1
    elif c == ord("\n"):
        out.append(c)
        return None, i, utf16 + 1, True, have_blockquote
    elif c == ord(">"):
        if not can_start_blockquote:
            raise _reserved(c)
        if have_blockquote:
            return None, i, utf16, can_start_blockquote, have_blockquote
        kind, have_blockquote = "BlockQuote", True
    else:
        raise _reserved(c)
    mark = _OpenMark(kind, argument, utf16, byte_offset, len(out))
    return mark, i, utf16, can_start_blockquote, have_blockquote


def _md2_link_target(src: _Bytes, i: int, error: str) -> tuple[str, int]:
    """Read ``...)`` with backslash escapes from ``i``; return the target and ')' index."""
    begin = i
    target = bytearray()
    while i < len(src) and src[i] != ord(")"):
        if src[i] == ord("\\") and 0 < src[i + 1] <= 126:
            target.append(src[i + 1])
            i += 2
            continue
        target.append(src[i])
        i += 1
    if src[i] != ord(")"):
        raise _ParseError(f"{error} at byte offset {begin}")
    return target.decode("utf-8", "replace"), i


def _md2_url(src: _Bytes, i: int, out: bytearray, mark: _OpenMark) -> tuple[str, int]:
    if src[i + 1] != ord("("):
        return bytes(out[mark.begin :]).decode("utf-8", "replace"), i
    return _md2_link_target(src, i + 2, "Can't find end of a URL")


# --- legacy Markdown (TDLib parse_markdown) ---------------------------------------


def _parse_markdown(text: str) -> tuple[str, list[_Entity]]:
    src = _Bytes(text)
    out = bytearray()
    entities: list[_Entity] = []
    utf16 = 0
    i = 0
    size = len(src)
    while i < size:
        c = src[i]
        if c == ord("\\") and src[i + 1] in b"_*`[":
            i += 1
            out.append(src[i])
            utf16 += 1
            i += 1
            continue
        if c not in b"_*`[":
            if _first_unit(c):
                utf16 += _units(c)
            out.append(c)
            i += 1
            continue
        begin = i
        end_char = ord("]") if c == ord("[") else c
        is_pre = False
        language = ""
        i += 1
        if c == ord("`") and src[i] == ord("`") and src[i + 1] == ord("`"):
            i += 2
            is_pre = True
            language_end = i
            while not _is_space(src[language_end]) and src[language_end] != ord("`"):
                language_end += 1
            if i != language_end and language_end < size and src[language_end] != ord("`"):
                language, i = _s(src.slice(i, language_end)), language_end
            if src[i] in b"\n\r":
                i += 2 if src[i + 1] in b"\n\r" and src[i] != src[i + 1] else 1
        offset = utf16
        while i < size and (
            src[i] != end_char or (is_pre and not (src[i + 1] == src[i + 2] == ord("`")))
        ):
            if _first_unit(src[i]):
                utf16 += _units(src[i])
            out.append(src[i])
            i += 1
        if i == size:
            raise _ParseError(f"Can't find end of the entity starting at byte offset {begin}")
        if offset != utf16:
            entity, i = _markdown_entity(src, c, begin, i, offset, utf16 - offset, language, is_pre)
            if entity is not None:
                entities.append(entity)
        if is_pre:
            i += 2
        i += 1
    return out.decode("utf-8"), _sort(entities)


def _markdown_entity(
    src: _Bytes,
    mark: int,
    begin: int,
    i: int,
    offset: int,
    length: int,
    language: str,
    is_pre: bool,
) -> tuple[_Entity | None, int]:
    if mark == ord("_"):
        return _Entity("Italic", offset, length), i
    if mark == ord("*"):
        return _Entity("Bold", offset, length), i
    if mark == ord("["):
        if src[i + 1] != ord("("):
            url = _s(src.slice(begin + 1, i))
        else:
            i += 2
            url_begin = i
            while i < len(src) and src[i] != ord(")"):
                i += 1
            url = _s(src.slice(url_begin, i))
        return _link_entity(offset, length, url), i
    if is_pre:
        if language:
            return _Entity("PreCode", offset, length, language), i
        return _Entity("Pre", offset, length), i
    return _Entity("Code", offset, length), i


_PARSERS = {
    "html": _parse_html,
    "markdownv2": _parse_markdown_v2,
    "markdown": _parse_markdown,
}
