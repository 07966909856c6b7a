"""The silver stage: raw_pairs -> silver_decisions, silver_pairs, silver_quarantine via sql/.

Bounded memory at any pool size: one streaming pass (``silver_keyed.sql``) hashes every
pair and writes the rows partitioned into buckets by pair_id; then each bucket is
deduplicated and split on its own (equal pair_ids share a bucket, so dedup stays exact and
global). Buckets hold about ``rows_per_bucket`` rows, so memory follows the bucket size,
not the pool size.

All output goes to a staging folder and replaces the three tables only once every bucket
is done. The stage records a fingerprint of its inputs (raw parts, SQL text, benchmark
prompts); a rerun with the same inputs reuses the finished tables instead of redoing them.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

import sql as sql_files
from synpref.lake.duck import DuckSettings, lit, stage_connection
from synpref.lake import scratch
from synpref.lake import Lake, file_stamp, publish, remove, sweep_scratch

SILVER_TABLES = ("silver_decisions", "silver_pairs", "silver_quarantine")
SQL_STEPS = ("macros", "benchmark_ngrams", "silver_contaminated", "silver_keyed", *SILVER_TABLES)
MANIFEST = "silver/stage"
ROWS_PER_BUCKET = 250_000
# Rows the partitioned write of silver_keyed buffers over all buckets before flushing: DuckDB
# buffers per bucket, so the per-bucket threshold shrinks as buckets grow, keeping memory flat.
KEYED_BUFFER_ROWS = 60_000


@dataclass
class SilverSummary:
    raw_rows: int
    silver_rows: int
    quarantined: int
    reasons: dict[str, int]
    benchmark_prompts: int
    benchmark_ngrams: int
    buckets: int
    seconds: float
    reused: bool = False
    timings: dict[str, float] = field(default_factory=dict)


def _fingerprint(lake: Lake, deco, rows_per_bucket: int) -> str:
    h = hashlib.md5(str(rows_per_bucket).encode())
    for f in lake.table_files("raw_pairs"):
        h.update(file_stamp(f).encode())
    for name in SQL_STEPS:
        h.update(sql_files.load(name).encode())
    h.update(deco.fingerprint().encode())
    return h.hexdigest()


def _raw_rows(con, lake: Lake) -> int:
    files = [str(f) for f in lake.table_files("raw_pairs")]
    return int(con.execute("select coalesce(sum(num_rows), 0) from parquet_file_metadata(?)", [files]).fetchone()[0])


def _copy(con, sql_name: str, out: Path, options: str = "") -> float:
    start = time.perf_counter()
    con.execute(f"copy ({sql_files.load(sql_name)}) to {lit(out)} "
                f"(format parquet, compression zstd, row_group_size 100000{options})")
    return time.perf_counter() - start


def _split_bucket(con, keyed_glob: str, staged: Path, part: str, timings: dict) -> None:
    """Dedup one bucket and write its part of each silver table."""
    con.execute(f"create or replace temp view silver_keyed as select * from read_parquet({lit(keyed_glob)})")
    decisions = staged / "silver_decisions" / part
    timings["silver_decisions"] += _copy(con, "silver_decisions", decisions)
    con.execute(f"create or replace temp view silver_decisions as select * from read_parquet({lit(decisions)})")
    for table in ("silver_pairs", "silver_quarantine"):
        timings[table] += _copy(con, table, staged / table / part)


def _swap_in(lake: Lake, staged: Path) -> None:
    """Replace each silver table folder by its staged one (two renames; never half a table)."""
    if lake.remote:
        return _swap_in_store(lake, staged)
    for table in SILVER_TABLES:
        final = lake.table_dir(table)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():
            os.replace(final, staged / f"{table}.old")
        os.replace(staged / table, final)


def _swap_in_store(lake: Lake, staged: Path) -> None:
    """An object store has no folder rename: upload the new parts under fresh names, then
    delete the old ones. Each part appears whole, but a reader in between sees old and new
    parts together; a run killed in between leaves both and no manifest (build_silver deletes
    it first), so the next run builds again and deletes every other part."""
    generation = uuid.uuid4().hex[:8]
    for table in SILVER_TABLES:
        final = lake.table_dir(table)
        old = lake.table_files(table)
        for part in sorted((staged / table).glob("*.parquet")):
            publish(part, final / f"{generation}-{part.name}")
        for part in old:
            remove(part)


def _with_meta(con, lake: Lake) -> None:
    """raw_pairs parts written before sources kept `meta` (or by other tools) read as meta NULL."""
    columns = {c for (c,) in con.execute("select column_name from (describe raw_pairs)").fetchall()}
    if "meta" not in columns:
        con.execute(f"create or replace temp view raw_pairs as select *, null::json as meta "
                    f"from read_parquet({lit(lake.table_glob('raw_pairs'))}, union_by_name = true)")


def build_silver(lake: Lake, deco, settings: DuckSettings = DuckSettings(), log=lambda msg: None,
                 force: bool = False, rows_per_bucket: int = ROWS_PER_BUCKET) -> SilverSummary:
    if not lake.has_table("raw_pairs"):
        raise FileNotFoundError(f"raw_pairs is empty under {lake.root}; materialise raw_pairs first")
    sweep_scratch(lake)  # a killed run's staging folder and hidden parts
    fingerprint = _fingerprint(lake, deco, rows_per_bucket)
    done = lake.read_manifest(MANIFEST)
    if not force and done and done.get("fingerprint") == fingerprint and all(lake.has_table(t) for t in SILVER_TABLES):
        log("silver tables are up to date with raw_pairs; reused")
        return SilverSummary(**{**done["summary"], "reused": True})

    start = time.perf_counter()
    staged = lake.tmp_dir / f"silver-{scratch.tag()}"
    timings = dict.fromkeys(("silver_contaminated", "silver_keyed", *SILVER_TABLES), 0.0)
    try:
        with stage_connection(lake, settings) as con:
            con.execute(sql_files.load("macros"))
            _with_meta(con, lake)
            prompts = deco.prompts()
            con.register("benchmark_prompts_arrow", pa.table({"prompt": pa.array(prompts, pa.string())}))
            con.execute("create temp table benchmark_prompts as select * from benchmark_prompts_arrow")
            con.execute(f"create temp table benchmark_ngrams as {sql_files.load('benchmark_ngrams')}")
            n_ngrams = con.execute("select count(*) from benchmark_ngrams").fetchone()[0]
            log(f"decontamination: {len(prompts)} benchmark prompts, {n_ngrams:,} distinct 13-grams")

            t0 = time.perf_counter()
            contaminated = sql_files.load("silver_contaminated") if n_ngrams else "select ''::varchar as raw_id limit 0"
            con.execute(f"create temp table silver_contaminated as {contaminated}")
            timings["silver_contaminated"] = time.perf_counter() - t0

            raw_rows = _raw_rows(con, lake)
            buckets = max(1, math.ceil(raw_rows / rows_per_bucket))
            con.execute(f"set variable buckets = {buckets}")
            con.execute(f"set partitioned_write_flush_threshold = {max(1_000, KEYED_BUFFER_ROWS // buckets)}")
            for table in SILVER_TABLES:
                (staged / table).mkdir(parents=True)
            timings["silver_keyed"] = _copy(con, "silver_keyed", staged / "keyed", ", partition_by (bucket)")
            log(f"hashed {raw_rows:,} raw pairs into {buckets} bucket(s) in {timings['silver_keyed']:.1f}s")

            filled = sorted((staged / "keyed").glob("bucket=*"))
            for i, folder in enumerate(filled):
                _split_bucket(con, f"{folder}/*.parquet", staged, f"part-{i:05d}.parquet", timings)
                log(f"bucket {i + 1}/{len(filled)} deduplicated and split")
            if not filled:  # no raw rows at all: still leave empty tables with their columns
                (staged / "keyed").mkdir(exist_ok=True)
                con.execute(f"copy ({sql_files.load('silver_keyed')} limit 0) "
                            f"to {lit(staged / 'keyed' / 'empty.parquet')}")
                _split_bucket(con, f"{staged}/keyed/empty.parquet", staged, "part-00000.parquet", timings)

            counts = dict(con.execute(
                f"select coalesce(reason, 'kept'), count(*) "
                f"from read_parquet({lit(staged / 'silver_decisions' / '*.parquet')}) group by 1").fetchall())
            if lake.remote:  # a swap killed midway must not be taken for a finished one
                remove(lake.manifest_path(MANIFEST))
            _swap_in(lake, staged)
    finally:
        shutil.rmtree(staged, ignore_errors=True)

    kept = counts.pop("kept", 0)
    summary = SilverSummary(
        raw_rows=raw_rows, silver_rows=kept, quarantined=sum(counts.values()),
        reasons=dict(sorted(counts.items())), benchmark_prompts=len(prompts), benchmark_ngrams=n_ngrams,
        buckets=buckets, seconds=round(time.perf_counter() - start, 3),
        timings={k: round(v, 3) for k, v in timings.items()})
    assert summary.raw_rows == summary.silver_rows + summary.quarantined, "silver lost a raw pair"
    lake.write_manifest(MANIFEST, {"fingerprint": fingerprint, "summary": summary.__dict__})
    return summary
