"""Ingest: every source file -> one part of ``raw_pairs`` and one of ``ingest_quarantine``.

Each source file becomes one Parquet part per table, named after the file and a
fingerprint of its content stamp and mapping. A part is written to a temporary name and
renamed into place, then a manifest records it as done; a rerun skips parts whose
manifest exists (resume), and drops parts of files that are no longer listed.
Invariant per file: records read = raw rows + quarantined rows.
Rows name a file inside the lake (the demo's landing/) relative to the lake root, so a lake
moved or copied elsewhere (keeping modification times) reuses its parts; see `file_label`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from synpref.raw import reasons

from synpref.lake import schemas
from synpref.lake import LAKE_PREFIX, Lake, atomic_path, sweep_scratch
from synpref.raw.readers import DETAIL_LIMIT, FileReadError, Record, clip, read_records
from synpref.raw.shapes import Reject, to_pair
from synpref.raw.sources import Source, SourcesConfig

INGEST_VERSION = "1"  # bump when the mapping logic changes, so old parts are rebuilt
WRITE_BATCH = 20_000

Progress = Callable[[str, int], None]  # (file, records so far)


@dataclass
class FileResult:
    source: str
    file: str
    part: str
    read: int
    raw: int
    quarantined: int
    reasons: dict[str, int]
    reused: bool = False


@dataclass
class IngestSummary:
    files: list[FileResult] = field(default_factory=list)
    removed_parts: list[str] = field(default_factory=list)

    @property
    def read(self) -> int:
        return sum(f.read for f in self.files)

    @property
    def raw(self) -> int:
        return sum(f.raw for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)

    def reasons(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for f in self.files:
            for reason, n in f.reasons.items():
                total[reason] = total.get(reason, 0) + n
        return dict(sorted(total.items()))


def raw_id(source_file: str, row: int) -> str:
    return hashlib.md5(f"{source_file}\x1f{row}".encode()).hexdigest()[:16]


def file_label(lake: Lake, path: Path) -> str:
    """How rows name their source file (`source_file`, and `raw_id`'s key): relative to the lake
    root for a file inside the lake (e.g. the demo's ``landing/demo/chat.jsonl.gz``), so a lake
    moved or copied elsewhere names, identifies and reuses its rows as before; else the path
    as the sources file gives it (absolute: relative entries are joined to the file's folder)."""
    return (None if lake.remote else lake.relative(path)) or str(path)


def part_name(source: Source, path: Path, lake: Lake | None = None) -> str:
    """Stable per (file, content stamp, mapping): changes when the file or mapping does. A file
    inside the lake is known by its path relative to the root (the lake may have moved since);
    any other by its real path. Copies must keep modification times (cp -a, rsync -a, mv)."""
    stat = path.stat() if path.is_file() else max((p.stat() for p in path.rglob("*") if p.is_file()),
                                                  key=lambda s: s.st_mtime_ns, default=path.stat())
    inside = lake.relative(path) if lake is not None and not lake.remote else None
    where = LAKE_PREFIX + inside if inside is not None else path.resolve()
    stamp = f"{where}|{stat.st_size}|{stat.st_mtime_ns}|{source.mapping_key()}|{INGEST_VERSION}"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.name)[:60]
    return f"{source.name}--{stem}--{hashlib.md5(stamp.encode()).hexdigest()[:12]}"


class _PartWriter:
    """Buffers rows and streams them to a Parquet file in bounded batches.

    A batch Arrow refuses is retried row by row and each row it cannot hold goes to
    `on_reject(row, error)`, so one unstorable value never costs its batch."""

    def __init__(self, path: Path, schema: pa.Schema, on_reject: Callable[[dict, Exception], None] | None = None):
        self.writer = pq.ParquetWriter(path, schema, compression="zstd")
        self.schema = schema
        self.on_reject = on_reject
        self.rows: list[dict] = []
        self.count = 0

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        rows, self.rows = self.rows, []
        try:
            table = pa.Table.from_pylist(rows, schema=self.schema)
        except _UNSTORABLE:
            if self.on_reject is None:
                raise
            good = []
            for row in rows:
                try:
                    pa.Table.from_pylist([row], schema=self.schema)
                    good.append(row)
                except _UNSTORABLE as e:
                    self.on_reject(row, e)
            table = pa.Table.from_pylist(good, schema=self.schema)
        self.writer.write_table(table)
        self.count += table.num_rows

    def close(self) -> None:
        self.flush()
        if self.count == 0:  # an empty part still carries the schema, so readers see the columns
            self.writer.write_table(self.schema.empty_table())
        self.writer.close()


_UNSTORABLE = (pa.ArrowException, ValueError, TypeError, UnicodeError, OverflowError)


def _map_record(rec: Record, source: Source) -> tuple[dict | None, tuple[str, str] | None]:
    """The pair, or (reason, detail). Whatever a record holds, it ends as one or the other."""
    if rec.error is not None:
        return None, rec.error
    try:
        return to_pair(rec.value, source), None
    except Reject as r:
        return None, (r.reason, r.detail)
    except Exception as e:  # no rule foresaw this record: quarantine it, never stop the file
        return None, (reasons.UNMAPPABLE, f"{type(e).__name__}: {e}")


def ingest_file(lake: Lake, source: Source, path: Path, part: str,
                progress: Progress | None = None) -> FileResult:
    label = file_label(lake, path)
    raw_final = lake.table_dir("raw_pairs") / f"{part}.parquet"
    quar_final = lake.table_dir("ingest_quarantine") / f"{part}.parquet"
    counts: dict[str, int] = {}
    read = 0
    with atomic_path(raw_final) as raw_tmp, atomic_path(quar_final) as quar_tmp:
        quar_out = _PartWriter(quar_tmp, schemas.INGEST_QUARANTINE)

        def quarantine(raw_row: dict, reason: str, detail: str, text: str | None) -> None:
            counts[reason] = counts.get(reason, 0) + 1
            quar_out.add({"raw_id": raw_row["raw_id"], "source": source.name, "source_file": label,
                          "source_row": raw_row["source_row"], "reason": reason,
                          "detail": clip(detail, DETAIL_LIMIT), "raw_text": clip(text)})

        def unstorable(row: dict, error: Exception) -> None:
            quarantine(row, reasons.UNMAPPABLE, f"cannot be stored: {type(error).__name__}: {error}",
                       _as_text({k: row[k] for k in ("conversation", "chosen", "rejected")}))

        raw_out = _PartWriter(raw_tmp, schemas.RAW_PAIRS, on_reject=unstorable)
        try:
            for rec in read_records(path, source.format_of(path), source.split):
                read += 1
                ids = {"raw_id": raw_id(label, rec.row), "source_row": rec.row}
                pair, error = _map_record(rec, source)
                if error is None:
                    raw_out.add({**ids, "source": source.name, "source_file": label, **pair})
                else:
                    quarantine(ids, *error, rec.raw_text if rec.raw_text is not None else _as_text(rec.value))
                if progress and read % 5_000 == 0:
                    progress(label, read)
            raw_out.close()  # its last flush may still quarantine rows
        except FileReadError:
            raise
        except (OSError, ValueError, pa.ArrowException) as e:  # the file, not one record: say where it broke
            raise FileReadError(f"{path}: ingest stopped after record {read:,}: {type(e).__name__}: {e}") from e
        finally:
            raw_out.writer.close()
            quar_out.close()
    if progress:
        progress(label, read)
    result = FileResult(source=source.name, file=label, part=part, read=read, raw=raw_out.count,
                        quarantined=quar_out.count, reasons=dict(sorted(counts.items())))
    assert result.read == result.raw + result.quarantined, "ingest lost a record"
    lake.write_manifest(f"raw/{part}", result.__dict__)
    return result


def _as_text(value) -> str | None:
    """A decoded record shown as JSON for the quarantine (readers without raw text)."""
    if value is None:
        return None
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        try:
            return repr(value)
        except Exception:  # too deep even for repr
            return f"<a {type(value).__name__} that cannot be shown>"


def ingest_sources(lake: Lake, config: SourcesConfig, progress: Progress | None = None,
                   log: Callable[[str], None] = lambda msg: None) -> IngestSummary:
    """Ingest every file of every source; reuse finished parts; drop parts of vanished files."""
    summary = IngestSummary()
    sweep_scratch(lake)  # hidden parts a killed run left
    wanted: set[str] = set()
    for source in config.sources:
        for path in source.files():
            part = part_name(source, path, lake)
            wanted.add(part)
            done = lake.read_manifest(f"raw/{part}")
            if done is not None and (lake.table_dir("raw_pairs") / f"{part}.parquet").exists():
                summary.files.append(FileResult(**{**done, "reused": True}))
                log(f"{path}: already ingested ({done['read']:,} records), skipped")
                continue
            log(f"{path}: ingesting as source {source.name!r} ({source.shape})")
            result = ingest_file(lake, source, path, part, progress)
            log(f"{path}: {result.read:,} read, {result.raw:,} raw, {result.quarantined:,} quarantined")
            summary.files.append(result)
    for table in ("raw_pairs", "ingest_quarantine"):
        for stale in lake.table_files(table):
            if stale.stem not in wanted:
                stale.unlink()
                summary.removed_parts.append(f"{table}/{stale.name}")
    manifests = lake.root / "_manifests" / "raw"
    for m in manifests.glob("*.json") if manifests.is_dir() else []:
        if m.stem not in wanted:
            m.unlink()
    return summary
