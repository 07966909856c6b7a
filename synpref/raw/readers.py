"""Python's JSON decoding, for what DuckDB's readers refuse: one line's JSON (`decode_json`),
and a JSON array element by element (`read_json_array`: an element that cannot be decoded
becomes a ``Record`` with an ``error`` (reason, detail) and its raw text; a file that cannot be
read at all raises ``FileReadError`` naming it). The array is held whole: the format forces it.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from synpref.raw import reasons

BOM = b"\xef\xbb\xbf"
RAW_TEXT_LIMIT = 100_000  # quarantine keeps at most this much of a bad row's text
DETAIL_LIMIT = 2_000  # and this much of the reason's detail (a message may quote the value)
BATCH_ROWS = 10_000


class FileReadError(RuntimeError):
    """A source file that cannot be read at all; the message names the file."""


@dataclass
class Record:
    row: int  # 1-based line / element / row number within the file; 0 for the file itself
    value: Any = None
    raw_text: str | None = None
    error: tuple[str, str] | None = None


def clip(text: str | None, limit: int = RAW_TEXT_LIMIT) -> str | None:
    """At most `limit` chars, and only what a UTF-8 column can hold (lone surrogates escaped)."""
    if text is None:
        return None
    if len(text) > limit:
        text = text[:limit] + f"... [clipped, {len(text):,} chars in all]"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _parse_int(digits: str) -> int | float:
    # Python refuses int() of more than sys.get_int_max_str_digits() digits; such a number can
    # only be an unused extra field or a wrong type, so it becomes a float (inf) rather than
    # costing the record.
    limit = sys.get_int_max_str_digits()
    return int(digits) if not limit or len(digits.lstrip("-")) <= limit else float(digits)


_DECODER = json.JSONDecoder(parse_int=_parse_int)
TOO_DEEP = "nested deeper than the JSON parser allows (about 1,000 levels)"


def decode_json(text: str) -> tuple[Any, tuple[str, str] | None]:
    """One JSON value, or the quarantine error for it: bad syntax, or nesting too deep."""
    try:
        value, end = _DECODER.raw_decode(text, _skip_space(text, 0))
        if _skip_space(text, end) != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
        return value, None
    except json.JSONDecodeError as e:
        return None, (reasons.INVALID_JSON, str(e))
    except RecursionError:
        return None, (reasons.INVALID_JSON, TOO_DEEP)


_SPACE = re.compile(r"[ \t\n\r]*")


def _skip_space(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()


_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")  # what surrogateescape made of a byte that is not UTF-8
_STRUCTURAL = re.compile(r'[\[\]{}"]')
_STRING_REST = re.compile(r'(?:[^"\\]|\\.)*"', re.S)


def _skip_value(text: str, pos: int) -> int:
    """End of the array or object starting at `pos`, found without recursion (for values too
    deep to decode): brackets are counted outside strings."""
    depth = 0
    while (m := _STRUCTURAL.search(text, pos)) is not None:
        pos = m.end()
        if m.group() == '"':
            rest = _STRING_REST.match(text, pos)
            if rest is None:
                break
            pos = rest.end()
        elif m.group() in "[{":
            depth += 1
        else:
            depth -= 1
            if depth <= 0:
                return pos
    return len(text)


def read_json_array(path: Path) -> Iterator[Record]:
    """A JSON array element by element, so one element too deep to decode (or not UTF-8) is
    quarantined, not the file; each good element keeps its text."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FileReadError(f"cannot open {path}: {e}") from e
    if data.startswith(BOM):
        data = data[len(BOM):]
    try:
        text, lenient = data.decode("utf-8"), False
    except UnicodeDecodeError:  # keep the bad bytes as U+DC80..U+DCFF; their elements are quarantined
        text, lenient = data.decode("utf-8", "surrogateescape"), True
    del data
    pos = _skip_space(text, 0)
    if pos == len(text):
        return
    if text[pos] != "[":
        kind = {"{": "an object", '"': "a string"}.get(text[pos], "a single value")
        raise FileReadError(f"{path} holds {kind}, expected a JSON array of records")
    pos = _skip_space(text, pos + 1)
    row = 0
    if text.startswith("]", pos):
        return _check_end(text, pos + 1, path)
    while True:
        row += 1
        try:
            value, end = _DECODER.raw_decode(text, pos)
            bad = _ESCAPED_BYTE.search(text, pos, end) if lenient else None
            if bad is None:
                yield Record(row=row, value=value, raw_text=text[pos:end])
            else:
                yield Record(row=row, raw_text=clip(text[pos:end]), error=(
                    reasons.INVALID_UTF8, f"not UTF-8 at char {bad.start() - pos} of the element"))
        except RecursionError:
            end = _skip_value(text, pos)
            yield Record(row=row, raw_text=clip(text[pos:end]), error=(reasons.INVALID_JSON, TOO_DEEP))
        except json.JSONDecodeError as e:
            yield from _broken_array(path, row, e)
            return
        pos = _skip_space(text, end)
        if text.startswith(",", pos):
            pos = _skip_space(text, pos + 1)
        elif text.startswith("]", pos):
            return _check_end(text, pos + 1, path)
        else:
            error = json.JSONDecodeError("Expecting ',' delimiter or ']'", text, pos)
            yield from _broken_array(path, row + 1, error)
            return


def _check_end(text: str, pos: int, path: Path) -> None:
    if _skip_space(text, pos) != len(text):
        raise FileReadError(f"{path} is not a valid JSON document: extra data after the array at char {pos}")


def _broken_array(path: Path, row: int, error: json.JSONDecodeError) -> Iterator[Record]:
    """A syntax error inside the array: nothing after it can be trusted. Before any record,
    the file is not JSON at all (an error naming it); later, the records before it stay."""
    if row == 1:
        raise FileReadError(f"{path} is not a valid JSON document: {error}") from error
    yield Record(row=row, raw_text="", error=(
        reasons.TRUNCATED_FILE, f"{path}: the JSON array breaks at line {error.lineno} column {error.colno} "
                                f"({error.msg}); the records from #{row} on cannot be read"))
