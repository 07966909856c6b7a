"""Format readers: turn one source file into records, one error record per bad row.

A reader yields ``Record``s. A row that cannot be decoded becomes a record with an
``error`` (reason, detail) and its raw text; a file that cannot be read at all raises
``FileReadError`` naming the file. Nothing is held whole in memory except JSON arrays,
which the format itself forces to be parsed at once.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import zlib
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


def read_records(path: Path, fmt: str, split: str | None = None) -> Iterator[Record]:
    readers = {"jsonl": _read_jsonl, "jsonl.gz": _read_jsonl, "json": _read_json_array,
               "parquet": _read_parquet, "hf_dataset": _read_hf_dataset}
    empty = True
    for record in readers[fmt](path, fmt, split):
        empty = False
        yield record
    if empty:
        yield Record(row=0, raw_text="", error=(reasons.EMPTY_FILE, f"{path} holds no records"))


def _read_jsonl(path: Path, fmt: str, split: str | None) -> Iterator[Record]:
    opener = gzip.open if fmt == "jsonl.gz" else open
    try:
        f = opener(path, "rb")
    except OSError as e:
        raise FileReadError(f"cannot open {path}: {e}") from e
    row = 0
    with f:
        lines = iter(f)
        while True:
            try:
                line = next(lines)
            except StopIteration:
                return
            except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as e:
                if row == 0:
                    raise FileReadError(f"cannot read {path} as {fmt}: {e}") from e
                # A gzip cut short: keep what came before, record where it broke.
                yield Record(row=row + 1, raw_text="",
                             error=(reasons.TRUNCATED_FILE, f"{path} ends early after line {row}: {e}"))
                return
            row += 1
            line = line.rstrip(b"\r\n")  # the terminator is not part of the record
            if row == 1 and line.startswith(BOM):
                line = line[len(BOM):]
            if not line.strip():
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                yield Record(row=row, raw_text=clip(line.decode("utf-8", errors="replace")),
                             error=(reasons.INVALID_UTF8, f"not UTF-8 at byte {e.start}"))
                continue
            value, error = decode_json(text)
            if error is not None:
                yield Record(row=row, raw_text=clip(text), error=error)
                continue
            yield Record(row=row, value=value, raw_text=text)


def _read_json_array(path: Path, fmt: str, split: str | None) -> Iterator[Record]:
    """Element by element, so one element too deep to decode is quarantined, not the file."""
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


def _read_table_batches(batches, path: Path) -> Iterator[Record]:
    row = 0
    for batch in batches:
        for value in batch.to_pylist():
            row += 1
            yield Record(row=row, value=value, raw_text=None)


def _read_parquet(path: Path, fmt: str, split: str | None) -> Iterator[Record]:
    """Row group by row group: a damaged group becomes one quarantine row saying which rows
    it held, and the groups after it are still read."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        groups = [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)]
    except Exception as e:  # pyarrow raises several types for a bad file
        raise FileReadError(f"cannot read {path} as parquet: {e}") from e
    row = 0
    for i, n in enumerate(groups):
        first, done = row + 1, 0
        try:
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[i]):
                values = batch.to_pylist()
                for value in values:
                    row += 1
                    yield Record(row=row, value=value, raw_text=None)
                done += len(values)
        except Exception as e:  # thrift, decompression, checksum errors: all mean a damaged group
            lost = n - done
            yield Record(row=first + done, raw_text="", error=(
                reasons.CORRUPT_DATA, f"{path}: row group {i + 1} of {len(groups)} (rows {first:,}-{first + n - 1:,}) "
                                      f"is damaged from row {first + done:,}: {lost:,} records lost: {e}"))
            row = first + n - 1


def _read_hf_dataset(path: Path, fmt: str, split: str | None) -> Iterator[Record]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        raise FileReadError(f"cannot load {path} as a `datasets` folder (save_to_disk): {e}") from e
    if isinstance(ds, datasets.DatasetDict):
        if split is None:
            raise FileReadError(f"{path} is a DatasetDict with splits {list(ds)}; set `split:` in the source")
        ds = ds[split]
    yield from _read_table_batches(ds.data.to_batches(max_chunksize=BATCH_ROWS), path)
