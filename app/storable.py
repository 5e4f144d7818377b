"""What Postgres text and jsonb columns can hold, and what the service can read back and answer
with: checked on every request body and imported record, where the field is known, instead of
failing the write (or every later read) with a 500."""

import math
import re
from typing import Any

MAX_NESTING = 64
"""Levels of objects and lists one JSON value may nest (a request body counts from its root, an
imported column from its own). Pydantic stops serialising a response at ~255 levels and Python's
recursion at ~1,000: deeper metadata would be refused by a 500, or stored and then fail each read."""

_SURROGATE = re.compile("[\ud800-\udfff]")


def unstorable(value: Any, where: str = "value") -> str | None:
    """Why `value` (parsed JSON) cannot be stored, or None: Postgres text and jsonb hold no NUL
    character, no unpaired surrogate and no NaN or infinity, and nothing may nest deeper than
    MAX_NESTING. Walked with a stack of its own, depth first, so that depth costs no recursion."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]  # (value, where it is, levels around it)
    while stack:
        item, at, around = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return f"{at} contains a NUL character"
            if _SURROGATE.search(item):
                return f"{at} contains an unpaired surrogate (not valid Unicode)"
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{at} is {item}: JSON numbers must be finite"
        elif isinstance(item, dict | list):
            if around == MAX_NESTING:
                return f"{at} nests objects and lists more than {MAX_NESTING} levels deep"
            if isinstance(item, dict):
                inner = "" if at == "value" else f"{at}."
                children = [
                    child
                    for key, inside in item.items()
                    for child in ((key, f"a key of {at}", around), (inside, f"{inner}{key}", around + 1))
                ]
            else:
                children = [(inside, f"{at}[{index}]", around + 1) for index, inside in enumerate(item)]
            stack.extend(reversed(children))
    return None
