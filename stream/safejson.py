"""JSON from untrusted bytes without trusting Python's recursion limit or big-int parsing.

`json.loads` recurses once per nesting level (100,000 nested arrays raise `RecursionError`)
and turns any run of digits into an `int` (a 100,000-digit number costs seconds, and past
`sys.get_int_max_str_digits()` raises `ValueError`). `loads_bounded` checks both up front,
on the text with its strings blanked out, and only then parses, so anything it lets
through parses in bounded time and depth. Every failure is an `InvalidTask` whose reason
names what broke and the limit.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

from synlearner.stream.errors import InvalidTask

# a JSON string: a quote, then runs of ordinary characters and escapes (unrolled: linear)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_DEPTH = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_bounded(raw: bytes, where: str, max_depth: int, max_number_chars: int) -> Any:
    """Parse UTF-8 JSON `raw`; nesting deeper than `max_depth` or numbers longer than
    `max_number_chars` characters are refused before parsing. `where` names the input in
    reasons (e.g. "message", "data.train line 3")."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidTask(f"{where}: not valid UTF-8 (byte {exc.start})", code="not_json") from None
    skeleton = _STRING.sub(b'""', raw)
    brackets = _NOT_BRACKET.sub(b"", skeleton)
    opens = brackets.count(b"[") + brackets.count(b"{")
    if opens > max_depth:  # only then can the nesting be too deep
        depth = max(accumulate(_DEPTH[b] for b in brackets))
        if depth > max_depth:
            raise InvalidTask(f"{where}: JSON nesting depth {depth} exceeds max_json_depth={max_depth}",
                              code="limit")
    longest = max((len(m) for m in re.findall(rb"[0-9][0-9.eE+-]*", skeleton)), default=0)
    if longest > max_number_chars:
        raise InvalidTask(
            f"{where}: a number of {longest} characters exceeds max_number_chars={max_number_chars}",
            code="limit")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise InvalidTask(f"{where}: not valid JSON ({_bounded(str(exc))})", code="not_json") from None


def _bounded(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
