"""Ingest: every source file -> one part of ``raw_pairs`` and one of ``ingest_quarantine``.

Each source file becomes one Parquet part per table, named after the file and a
fingerprint of its content stamp and mapping. A part is written to a temporary name and
renamed into place, then a manifest records it as done; a rerun skips parts whose
manifest exists (resume), and drops parts of files that are no longer listed.
Invariant per file: records read = raw rows + quarantined rows.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from synpref import schemas
from synpref.lake import Lake, atomic_path
from synpref.readers import read_records, clip
from synpref.shapes import Reject, to_pair
from synpref.sources import Source, SourcesConfig

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


def part_name(source: Source, path: Path) -> str:
    """Stable per (file, content stamp, mapping): changes when the file or mapping does."""
    stat = path.stat() if path.is_file() else max((p.stat() for p in path.rglob("*") if p.is_file()),
                                                  key=lambda s: s.st_mtime_ns, default=path.stat())
    stamp = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{source.mapping_key()}|{INGEST_VERSION}"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.name)[:60]
    return f"{source.name}--{stem}--{hashlib.md5(stamp.encode()).hexdigest()[:12]}"


class _PartWriter:
    """Buffers rows and streams them to a Parquet file in bounded batches."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.writer = pq.ParquetWriter(path, schema, compression="zstd")
        self.schema = schema
        self.rows: list[dict] = []
        self.count = 0

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.count += len(self.rows)
            self.rows = []

    def close(self) -> None:
        self.flush()
        if self.count == 0:  # an empty part still carries the schema, so readers see the columns
            self.writer.write_table(self.schema.empty_table())
        self.writer.close()


def ingest_file(lake: Lake, source: Source, path: Path, part: str,
                progress: Progress | None = None) -> FileResult:
    file_label = str(path)
    raw_final = lake.table_dir("raw_pairs") / f"{part}.parquet"
    quar_final = lake.table_dir("ingest_quarantine") / f"{part}.parquet"
    counts: dict[str, int] = {}
    read = 0
    with atomic_path(raw_final) as raw_tmp, atomic_path(quar_final) as quar_tmp:
        raw_out = _PartWriter(raw_tmp, schemas.RAW_PAIRS)
        quar_out = _PartWriter(quar_tmp, schemas.INGEST_QUARANTINE)
        try:
            for rec in read_records(path, source.format_of(path), source.split):
                read += 1
                rid = raw_id(file_label, rec.row)
                error = rec.error
                if error is None:
                    try:
                        pair = to_pair(rec.value, source)
                    except Reject as r:
                        error = (r.reason, r.detail)
                if error is None:
                    raw_out.add({"raw_id": rid, "source": source.name, "source_file": file_label,
                                 "source_row": rec.row, **pair})
                else:
                    counts[error[0]] = counts.get(error[0], 0) + 1
                    text = rec.raw_text if rec.raw_text is not None else _as_text(rec.value)
                    quar_out.add({"raw_id": rid, "source": source.name, "source_file": file_label,
                                  "source_row": rec.row, "reason": error[0], "detail": error[1],
                                  "raw_text": clip(text)})
                if progress and read % 5_000 == 0:
                    progress(file_label, read)
        finally:
            raw_out.close()
            quar_out.close()
    if progress:
        progress(file_label, read)
    result = FileResult(source=source.name, file=file_label, part=part, read=read, raw=raw_out.count,
                        quarantined=quar_out.count, reasons=dict(sorted(counts.items())))
    assert result.read == result.raw + result.quarantined, "ingest lost a record"
    lake.write_manifest(f"raw/{part}", result.__dict__)
    return result


def _as_text(value) -> str | None:
    import json

    if value is None:
        return None
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def ingest_sources(lake: Lake, config: SourcesConfig, progress: Progress | None = None,
                   log: Callable[[str], None] = lambda msg: None) -> IngestSummary:
    """Ingest every file of every source; reuse finished parts; drop parts of vanished files."""
    summary = IngestSummary()
    wanted: set[str] = set()
    for source in config.sources:
        for path in source.files():
            part = part_name(source, path)
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
