"""JSON decoding for streamed answers: orjson, three to four times faster than the
standard library on the small events an answer arrives in, thousands of times each."""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """``json.loads``, through orjson when it can.

    orjson refuses what the standard library accepts and a stream may carry: a lone
    surrogate escape (half of an emoji whose escapes a proxy split between events; the
    bot joins the halves again), ``NaN``. Those few take the standard library's path,
    which decides; ``ValueError`` for what is not JSON at all.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)
