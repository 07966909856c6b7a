"""Format readers: turn one source file into records, one error record per bad row.

A reader yields ``Record``s. A row that cannot be decoded becomes a record with an
``error`` (reason, detail) and its raw text; a file that cannot be read at all raises
``FileReadError`` naming the file. Nothing is held whole in memory except JSON arrays,
which the format itself forces to be parsed at once.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from synpref import reasons

BOM = b"\xef\xbb\xbf"
RAW_TEXT_LIMIT = 100_000  # quarantine keeps at most this much of a bad row's text
BATCH_ROWS = 10_000


class FileReadError(RuntimeError):
    """A source file that cannot be read at all; the message names the file."""


@dataclass
class Record:
    row: int  # 1-based line / element / row number within the file; 0 for the file itself
    value: Any = None
    raw_text: str | None = None
    error: tuple[str, str] | None = None


def clip(text: str | None) -> str | None:
    if text is None or len(text) <= RAW_TEXT_LIMIT:
        return text
    return text[:RAW_TEXT_LIMIT] + f"... [clipped, {len(text)} chars in all]"


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
            try:
                value = json.loads(text)
            except json.JSONDecodeError as e:
                yield Record(row=row, raw_text=clip(text), error=(reasons.INVALID_JSON, str(e)))
                continue
            yield Record(row=row, value=value, raw_text=text)


def _read_json_array(path: Path, fmt: str, split: str | None) -> Iterator[Record]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FileReadError(f"cannot open {path}: {e}") from e
    if data.startswith(BOM):
        data = data[len(BOM):]
    if not data.strip():
        return
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FileReadError(f"{path} is not a valid JSON document: {e}") from e
    if not isinstance(doc, list):
        raise FileReadError(f"{path} holds a JSON {type(doc).__name__}, expected an array of records")
    for i, value in enumerate(doc, start=1):
        yield Record(row=i, value=value, raw_text=None)


def _read_table_batches(batches, path: Path) -> Iterator[Record]:
    row = 0
    for batch in batches:
        for value in batch.to_pylist():
            row += 1
            yield Record(row=row, value=value, raw_text=None)


def _read_parquet(path: Path, fmt: str, split: str | None) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        batches = pf.iter_batches(batch_size=BATCH_ROWS)
    except Exception as e:  # pyarrow raises several types for a bad file
        raise FileReadError(f"cannot read {path} as parquet: {e}") from e
    yield from _read_table_batches(batches, path)


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
