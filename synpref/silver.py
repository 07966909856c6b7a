"""The silver stage: raw_pairs -> silver_decisions, silver_pairs, silver_quarantine via sql/.

All three tables are written to temporary files first and renamed into place together at
the end. The stage records a fingerprint of its inputs (raw parts, SQL text, benchmark
prompts); a rerun with the same inputs reuses the finished tables instead of redoing them.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

import pyarrow as pa

import sql as sql_files
from synpref.duck import DuckSettings, stage_connection
from synpref.lake import Lake, replace_all
from synpref.sources import Decontamination

SILVER_TABLES = ("silver_decisions", "silver_pairs", "silver_quarantine")
MANIFEST = "silver/stage"


@dataclass
class SilverSummary:
    raw_rows: int
    silver_rows: int
    quarantined: int
    reasons: dict[str, int]
    benchmark_prompts: int
    benchmark_ngrams: int
    seconds: float
    reused: bool = False
    timings: dict[str, float] = field(default_factory=dict)


def _fingerprint(lake: Lake, deco: Decontamination, settings: DuckSettings) -> str:
    h = hashlib.md5()
    for f in lake.table_files("raw_pairs"):
        st = f.stat()
        h.update(f"{f.name}|{st.st_size}|{st.st_mtime_ns}".encode())
    for name in ("macros", "benchmark_ngrams", *SILVER_TABLES):
        h.update(sql_files.load(name).encode())
    h.update(deco.fingerprint().encode())
    return h.hexdigest()


def _copy(con, sql_name: str, out) -> float:
    start = time.perf_counter()
    query = sql_files.load(sql_name)
    con.execute(f"copy ({query}) to '{out}' (format parquet, compression zstd, row_group_size 100000)")
    return time.perf_counter() - start


def build_silver(lake: Lake, deco: Decontamination, settings: DuckSettings = DuckSettings(),
                 log=lambda msg: None, force: bool = False) -> SilverSummary:
    if not lake.has_table("raw_pairs"):
        raise FileNotFoundError(f"raw_pairs is empty under {lake.root}; materialise raw_pairs first")
    fingerprint = _fingerprint(lake, deco, settings)
    done = lake.read_manifest(MANIFEST)
    if not force and done and done.get("fingerprint") == fingerprint and all(lake.has_table(t) for t in SILVER_TABLES):
        log("silver tables are up to date with raw_pairs; reused")
        return SilverSummary(**{**done["summary"], "reused": True})

    start = time.perf_counter()
    con = stage_connection(lake, settings)
    try:
        con.execute(sql_files.load("macros"))
        prompts = deco.prompts()
        con.register("benchmark_prompts_arrow", pa.table({"prompt": pa.array(prompts, pa.string())}))
        con.execute("create temp table benchmark_prompts as select * from benchmark_prompts_arrow")
        con.execute(f"create temp table benchmark_ngrams as {sql_files.load('benchmark_ngrams')}")
        n_ngrams = con.execute("select count(*) from benchmark_ngrams").fetchone()[0]
        log(f"decontamination: {len(prompts)} benchmark prompts, {n_ngrams} distinct 13-grams")

        finals = {t: lake.table_dir(t) / "part-0.parquet" for t in SILVER_TABLES}
        tmps = {t: p.parent / f".{p.name}.tmp" for t, p in finals.items()}
        for p in tmps.values():
            p.parent.mkdir(parents=True, exist_ok=True)
        timings = {}
        try:
            timings["silver_decisions"] = _copy(con, "silver_decisions", tmps["silver_decisions"])
            con.execute(f"create or replace temp view silver_decisions as "
                        f"select * from read_parquet('{tmps['silver_decisions']}')")
            log(f"silver_decisions written in {timings['silver_decisions']:.1f}s")
            for table in ("silver_pairs", "silver_quarantine"):
                timings[table] = _copy(con, table, tmps[table])
                log(f"{table} written in {timings[table]:.1f}s")
            counts = dict(con.execute(
                "select coalesce(reason, 'kept'), count(*) from silver_decisions group by 1").fetchall())
            replace_all([(tmps[t], finals[t]) for t in SILVER_TABLES])
        finally:
            for p in tmps.values():
                p.unlink(missing_ok=True)
    finally:
        con.close()

    kept = counts.pop("kept", 0)
    summary = SilverSummary(
        raw_rows=kept + sum(counts.values()), silver_rows=kept, quarantined=sum(counts.values()),
        reasons=dict(sorted(counts.items())), benchmark_prompts=len(prompts), benchmark_ngrams=n_ngrams,
        seconds=round(time.perf_counter() - start, 3), timings={k: round(v, 3) for k, v in timings.items()})
    lake.write_manifest(MANIFEST, {"fingerprint": fingerprint, "summary": summary.__dict__})
    return summary
