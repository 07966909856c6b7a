"""Ingest: every source file -> one part of ``raw_pairs`` and one of ``ingest_quarantine``.

Each source file becomes one Parquet part per table, named after the file and a
fingerprint of its content stamp and mapping. A part is written to a temporary name and
renamed into place, then a manifest records it as done; a rerun skips parts whose
manifest exists (resume), and drops parts of files that are no longer listed.
Invariant per file: records read = records paired + records quarantined (one pair or one
quarantine row per record for the four shapes).
Rows name a file inside the lake (the demo's landing/) relative to the lake root, so a lake
moved or copied elsewhere (keeping modification times) reuses its parts; see `file_label`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb
import pyarrow as pa

from synpref.lake import LAKE_PREFIX, Lake, atomic_path, cache_base, sweep_scratch
from synpref.lake.duck import DuckSettings, lit, stage_connection
from synpref.raw import reasons
from synpref.raw.mapping import confine, load_records, map_records, set_variables, uses_source
from synpref.raw.presets import macros_sql
from synpref.raw.readers import DETAIL_LIMIT, RAW_TEXT_LIMIT, FileReadError, clip
from synpref.raw.sources import Source, SourcesConfig, allowed_roots
from synpref.raw.streams import LineError

INGEST_VERSION = "2"  # bump when the mapping logic changes, so old parts are rebuilt

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
    paired: int = -1  # records that became at least one pair (-1: a part written before this was kept)
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


def ingest_file(lake: Lake, source: Source, path: Path, part: str,
                progress: Progress | None = None) -> FileResult:
    """One file -> one part of raw_pairs and one of ingest_quarantine, through DuckDB (mapping.py)."""
    label = file_label(lake, path)
    raw_final = lake.table_dir("raw_pairs") / f"{part}.parquet"
    quar_final = lake.table_dir("ingest_quarantine") / f"{part}.parquet"
    with stage_connection(lake, DuckSettings(memory_limit=MEMORY_LIMIT)) as con:
        confined = [raw_final.parent, quar_final.parent, lake.tmp_dir, cache_base() / "scratch"]
        read = map_file(con, source, path, confined_to=confined)
        ids = {"label": lit(label), "source": lit(source.name)}
        with atomic_path(raw_final) as raw_tmp, atomic_path(quar_final) as quar_tmp:
            con.execute(RAW_PARTS_SQL.format(**ids, target=lit(raw_tmp), index=_pair_index(con)))
            if progress:  # the file is read and mapped; its parts are still hidden
                progress(label, read)
            # the few quarantined records' text first: a join would read every record's
            con.execute("create or replace temp table quarantined_texts as select source_row, record::varchar as text "
                        "from records semi join (select source_row from mapped_out where reason is not null) "
                        "using (source_row)")
            con.execute(QUARANTINE_PARTS_SQL.format(**ids, target=lit(quar_tmp)))
        counts = mapped_counts(con)
    result = FileResult(source=source.name, file=label, part=part, read=read, raw=counts.pairs,
                        quarantined=counts.quarantined, reasons=counts.reasons, paired=counts.paired)
    assert read == counts.paired + counts.unpaired, "ingest lost a record"
    lake.write_manifest(f"raw/{part}", result.__dict__)
    return result


def map_file(con: duckdb.DuckDBPyConnection, source: Source, path: Path, limit: int | None = None,
             confined_to: list | None = None) -> int:
    """The file's records through the source's SELECT into `mapped_out` (pairs and quarantine rows)
    and `line_errors` (rows that never became a record); returns the records read. `limit`: only
    the file's first records (synpref sources check). With SYNPREF_SOURCE_ROOTS set, the SELECT
    may touch files only there and under `confined_to` (where this connection writes)."""
    con.execute(macros_sql())
    set_variables(con, source.variables())
    try:
        loaded = load_records(con, path, source.format_of(path), source.split, uses_source(source.select()),
                              limit=limit)
    except (OSError, duckdb.Error, pa.ArrowException) as e:  # the file, not one record: say where it broke
        raise FileReadError(f"{path}: ingest stopped: {type(e).__name__}: {str(e)[:500]}") from e
    errors = loaded.errors
    if loaded.records == 0 and not errors:
        errors = [LineError(0, reasons.EMPTY_FILE, f"{path} holds no records", "")]
    _line_errors_table(con, errors)
    roots = allowed_roots()
    if roots is not None:
        confine(con, [*roots, *(confined_to or [])])
    map_records(con, source.select(), f"source {source.name!r}")
    return loaded.records + len(errors)


@dataclass
class MappedCounts:
    pairs: int
    paired: int  # records with at least one pair
    unpaired: int  # records with none: each has at least one quarantine row
    quarantined: int  # quarantine rows
    reasons: dict[str, int]


def mapped_counts(con: duckdb.DuckDBPyConnection) -> MappedCounts:
    pairs, paired = con.execute("""
        select (select count(*) from mapped_out where reason is null), count(*)
        from (select source_row from mapped_out where reason is null union select source_row from covered_rows)
    """).fetchall()[0]
    by_reason = dict(con.execute("""
        select reason, count(*) from (select reason from mapped_out where reason is not null
                                      union all select reason from line_errors) group by all""").fetchall())
    unpaired = con.execute("""
        select count(*) from (select source_row from mapped_out where reason is not null
                              union select source_row from line_errors
                              except select source_row from mapped_out where reason is null
                              except select source_row from covered_rows)""").fetchall()[0][0]
    return MappedCounts(pairs, paired, unpaired, sum(by_reason.values()), dict(sorted(by_reason.items())))


MEMORY_LIMIT = "1GB"

RAW_PARTS_SQL = """
    copy (
        select case when pair_index = 1 then md5({label} || chr(31) || source_row)
                    else md5({label} || chr(31) || source_row || chr(31) || pair_index) end[1:16] as raw_id,
               {source} as source, conversation, chosen, rejected, rejected_conversation,
               {label} as source_file, source_row, meta
        from (select *, {index} as pair_index from mapped_out where reason is null)
    ) to {target} (format parquet, compression zstd)
"""

QUARANTINE_PARTS_SQL = """
    copy (
        select md5({label} || chr(31) || source_row)[1:16] as raw_id, {source} as source,
               {label} as source_file, source_row, reason, detail, raw_text
        from (
            select q.source_row, q.reason, q.detail,
                   case when length(r.text) > {limit}
                        then left(r.text, {limit}) || '... [clipped, ' || format('{{:,}}', length(r.text))
                             || ' chars in all]'
                        else r.text end as raw_text
            from mapped_out q left join quarantined_texts r using (source_row)
            where q.reason is not null
            union all
            select source_row, reason, detail, raw_text from line_errors
        )
        order by source_row
    ) to {target} (format parquet, compression zstd)
""".replace("{limit}", str(RAW_TEXT_LIMIT))


def _pair_index(con) -> str:
    """Which of a record's pairs a row is (its raw_id's key): 1 for a record's only pair, as
    raw ids always were; numbered by content where a record yields several."""
    several = con.execute("select count(*) > count(distinct source_row) from mapped_out "
                          "where reason is null").fetchall()[0][0]
    return ("row_number() over (partition by source_row order by chosen, rejected, conversation::varchar)"
            if several else "1")


def _line_errors_table(con, errors: list[LineError]) -> None:
    table = pa.table({"source_row": pa.array([e.row for e in errors], pa.int64()),
                      "reason": pa.array([e.reason for e in errors], pa.string()),
                      "detail": pa.array([clip(e.detail, DETAIL_LIMIT) for e in errors], pa.string()),
                      "raw_text": pa.array([clip(e.raw_text) for e in errors], pa.string())})
    con.register("line_errors_arrow", table)
    con.execute("create or replace temp table line_errors as select * from line_errors_arrow")
    con.unregister("line_errors_arrow")


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
