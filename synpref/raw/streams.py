"""Record streams: one source file as Arrow batches for DuckDB, and the rows it could not read.

Every format becomes a stream of Arrow record batches that DuckDB scans without holding the
file: text formats (JSONL, JSONL.gz, JSON arrays) as ``(source_row, line)`` with the record's
JSON text, tables (Parquet, a `datasets` folder) as their own columns plus ``source_row``.
What cannot be read row by row (a damaged Parquet row group, a gzip cut short, a JSON array
that breaks midway) is collected in ``errors`` as a quarantine row, never a failed file; a
file that cannot be read at all raises ``FileReadError`` naming it.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pyarrow as pa

from synpref.raw import reasons
from synpref.raw.readers import BATCH_ROWS, BOM, FileReadError, clip, read_json_array

LINES = pa.schema([("source_row", pa.int64()), ("line", pa.binary())])
CHUNK_BYTES = 16 << 20  # read this much of a text file at a time
LINE_BATCH = 50_000  # lines per Arrow batch


@dataclass
class LineError:
    row: int
    reason: str
    detail: str
    raw_text: str | None


@dataclass
class RecordStream:
    """A file's records: ``kind`` "lines" (JSON text per record) or "table" (typed columns)."""

    kind: str
    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    errors: list[LineError] = field(default_factory=list)
    failure: Exception | None = None  # what stopped the batches (DuckDB reports it only as text)

    def reader(self) -> pa.RecordBatchReader:
        def kept() -> Iterator[pa.RecordBatch]:
            try:
                yield from self.batches
            except Exception as e:
                self.failure = e
                raise

        return pa.RecordBatchReader.from_batches(self.schema, kept())


def open_stream(path: Path, fmt: str, split: str | None = None) -> RecordStream:
    if fmt in ("jsonl", "jsonl.gz"):
        stream = RecordStream("lines", LINES, iter(()))
        stream.batches = _jsonl_batches(path, fmt, stream)
    elif fmt == "json":
        stream = RecordStream("lines", LINES, iter(()))
        stream.batches = _json_array_batches(path, stream)
    elif fmt == "parquet":
        stream = _parquet_stream(path)
    elif fmt == "hf_dataset":
        stream = _hf_stream(path, split)
    elif fmt == "csv":
        stream = _csv_stream(path)
    else:  # pragma: no cover - formats are checked when the sources file loads
        raise FileReadError(f"{path}: no reader for format {fmt!r}")
    return stream


def _lines_batch(rows: list[int], lines: list[bytes]) -> pa.RecordBatch:
    return pa.record_batch([pa.array(rows, pa.int64()), pa.array(lines, pa.binary())], schema=LINES)


def _chunks(path: Path, fmt: str) -> Iterator[bytes]:
    """The file's bytes, decompressed, in chunks. A gzip cut short yields what came before the
    cut, then raises EOFError; a file that is not gzip at all raises zlib.error first."""
    with open(path, "rb") as f:
        if fmt != "jsonl.gz":
            while chunk := f.read(CHUNK_BYTES):
                yield chunk
            return
        inflater, pending = zlib.decompressobj(wbits=31), False
        while data := f.read(CHUNK_BYTES // 4):  # compressed: a quarter, as text it grows
            while data:
                if out := inflater.decompress(data):
                    yield out
                pending = not inflater.eof
                if pending:
                    break
                data = inflater.unused_data  # a file of several gzip members
                inflater = zlib.decompressobj(wbits=31)
        if pending:
            raise EOFError("Compressed file ended before the end-of-stream marker was reached")


def _jsonl_batches(path: Path, fmt: str, stream: RecordStream) -> Iterator[pa.RecordBatch]:
    """Lines in big chunks, ended by \n (a \r before it is JSON whitespace); blank lines are skipped
    but keep their numbers (source_row is the line number). A gzip cut short keeps what came
    before and records where it broke."""
    try:
        chunks = _chunks(path, fmt)
    except OSError as e:
        raise FileReadError(f"cannot open {path}: {e}") from e
    row, rest = 0, b""
    rows: list[int] = []
    lines: list[bytes] = []
    while True:
        try:
            chunk = next(chunks, None)
        except (EOFError, zlib.error, OSError) as e:
            if row == 0 and not rest:
                raise FileReadError(f"cannot read {path} as {fmt}: {e}") from e
            if rest.strip():  # the partial line before the cut is a record too
                row += 1
                rows.append(row)
                lines.append(rest)
            if rows:
                yield _lines_batch(rows, lines)
            stream.errors.append(LineError(row + 1, reasons.TRUNCATED_FILE,
                                           f"{path} ends early after line {row}: {e}", ""))
            return
        if chunk is None:
            break
        if row == 0 and not rest and chunk.startswith(BOM):
            chunk = chunk[len(BOM):]
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        for line in parts:
            row += 1
            if line.strip():
                rows.append(row)
                lines.append(line)
        if len(rows) >= LINE_BATCH:
            yield _lines_batch(rows, lines)
            rows, lines = [], []
    if rest.strip():  # the last line without a newline
        row += 1
        rows.append(row)
        lines.append(rest)
    elif rest:
        row += 1
    if rows:
        yield _lines_batch(rows, lines)


def _json_array_batches(path: Path, stream: RecordStream) -> Iterator[pa.RecordBatch]:
    """A JSON array element by element (readers.read_json_array): each element's text goes on to
    DuckDB; an element Python cannot decode (bad UTF-8, nested too deep) is an error row."""
    rows: list[int] = []
    texts: list[bytes] = []
    for rec in read_json_array(path):
        if rec.error is not None:
            stream.errors.append(LineError(rec.row, *rec.error, rec.raw_text))
            continue
        rows.append(rec.row)
        texts.append(rec.raw_text.encode("utf-8", "surrogatepass"))  # the element as written
        if len(rows) >= LINE_BATCH:
            yield _lines_batch(rows, texts)
            rows, texts = [], []
    if rows:
        yield _lines_batch(rows, texts)


def _table_batches(batches, stream: RecordStream, first_row: int = 1) -> Iterator[pa.RecordBatch]:
    row = first_row
    for batch in batches:
        n = batch.num_rows
        if n == 0:
            continue
        numbers = pa.array(range(row, row + n), pa.int64())
        yield pa.RecordBatch.from_arrays([numbers, *batch.columns], schema=stream.schema)
        row += n


def _with_row(schema: pa.Schema) -> pa.Schema:
    return pa.schema([pa.field("source_row", pa.int64())] + [f for f in schema if f.name != "source_row"])


def _parquet_stream(path: Path) -> RecordStream:
    """Row group by row group: a damaged group becomes one error row saying which rows it held,
    and the groups after it are still read (rows keep their place in the file)."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        groups = [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)]
        schema = pf.schema_arrow
    except Exception as e:  # pyarrow raises several types for a bad file
        raise FileReadError(f"cannot read {path} as parquet: {e}") from e
    if "source_row" in schema.names:
        schema = schema.remove(schema.get_field_index("source_row"))
    stream = RecordStream("table", _with_row(schema), iter(()))
    names = schema.names

    def batches() -> Iterator[pa.RecordBatch]:
        first = 1
        for i, n in enumerate(groups):
            done = 0
            try:
                for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[i], columns=names):
                    yield from _table_batches([batch], stream, first + done)
                    done += batch.num_rows
            except Exception as e:  # thrift, decompression, checksum errors: all mean a damaged group
                stream.errors.append(LineError(first + done, reasons.CORRUPT_DATA, (
                    f"{path}: row group {i + 1} of {len(groups)} (rows {first:,}-{first + n - 1:,}) is damaged "
                    f"from row {first + done:,}: {n - done:,} records lost: {e}"), ""))
            first += n

    stream.batches = batches()
    return stream


def _hf_stream(path: Path, split: str | None) -> RecordStream:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:
        raise FileReadError(f"cannot load {path} as a `datasets` folder (save_to_disk): {e}") from e
    if isinstance(ds, datasets.DatasetDict):
        if split is None:
            raise FileReadError(f"{path} is a DatasetDict with splits {list(ds)}; set `split:` in the source")
        ds = ds[split]
    table = ds.data.table if hasattr(ds.data, "table") else ds.data
    schema = table.schema
    if "source_row" in schema.names:
        table = table.drop_columns(["source_row"])
        schema = table.schema
    stream = RecordStream("table", _with_row(schema), iter(()))
    stream.batches = _table_batches(table.to_batches(max_chunksize=BATCH_ROWS), stream)
    return stream


def _csv_stream(path: Path) -> RecordStream:
    """A CSV file DuckDB refused, row by row with Python's csv module: a row whose fields do not
    match the header, or that is not UTF-8, is an error row; the others are strings."""
    opener = (lambda: io.TextIOWrapper(gzip.open(path, "rb"), "utf-8", "surrogateescape", newline="")) \
        if path.name.lower().endswith(".gz") else (lambda: open(path, encoding="utf-8", errors="surrogateescape",
                                                                 newline=""))
    try:
        f = opener()
        header = next(csv.reader(f), None)
    except (OSError, csv.Error) as e:
        raise FileReadError(f"cannot read {path} as csv: {e}") from e
    if header is None:
        f.close()
        return RecordStream("table", _with_row(pa.schema([])), iter(()))
    if header and header[0].startswith("\ufeff"):
        header[0] = header[0][1:]
    names = [h for h in header if h != "source_row"]
    stream = RecordStream("table", _with_row(pa.schema([(h, pa.string()) for h in names])), iter(()))

    def batches() -> Iterator[pa.RecordBatch]:
        rows: list[list] = []
        with f:
            reader = csv.reader(f)
            for row_number, row in enumerate(_rows_or_errors(reader, path, stream), start=1):
                if row is None:
                    continue
                if len(row) != len(header) or any(_ESCAPED.search(v) for v in row):
                    bad_utf8 = any(_ESCAPED.search(v) for v in row)
                    stream.errors.append(LineError(
                        row_number, reasons.INVALID_UTF8 if bad_utf8 else reasons.INVALID_CSV,
                        "not UTF-8" if bad_utf8 else f"row has {len(row)} fields, the header has {len(header)}",
                        clip(",".join(row).encode("utf-8", "surrogateescape").decode("utf-8", "replace"))))
                    continue
                rows.append([row_number] + [v for h, v in zip(header, row) if h != "source_row"])
                if len(rows) >= BATCH_ROWS:
                    yield _csv_batch(rows, stream.schema)
                    rows = []
        if rows:
            yield _csv_batch(rows, stream.schema)

    stream.batches = batches()
    return stream


_ESCAPED = re.compile("[\udc80-\udcff]")  # what surrogateescape made of a byte that is not UTF-8


def _rows_or_errors(reader, path: Path, stream: RecordStream):
    while True:
        try:
            yield next(reader)
        except StopIteration:
            return
        except csv.Error as e:  # a broken quote: nothing after it can be trusted
            stream.errors.append(LineError(reader.line_num, reasons.TRUNCATED_FILE,
                                           f"{path}: the CSV breaks at line {reader.line_num}: {e}", ""))
            return


def _csv_batch(rows: list[list], schema: pa.Schema) -> pa.RecordBatch:
    columns = list(zip(*rows))
    return pa.record_batch([pa.array(columns[0], pa.int64())] +
                           [pa.array(c, pa.string()) for c in columns[1:]], schema=schema)


def raw_line_text(line: bytes) -> str:
    """A line as the quarantine shows it: decoded, bad bytes replaced, clipped."""
    return clip(line.rstrip(b"\r").decode("utf-8", errors="replace"))
