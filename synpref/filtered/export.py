"""The curated export: Stage 2's kept and flipped pairs, ready for TRL's RewardTrainer.

Two forms of the same rows: one Parquet file (`curated_export`) and a `datasets` folder
(`Dataset.save_to_disk`, so `load_from_disk` gives a ready dataset). Both are written under
temporary names and swapped in. The summary says what curation kept: retention by source and
by task category, and the reasons behind every decision.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import sql as sql_files
from synpref.lake import scratch
from synpref.silver.attributes import register_latest_attributes
from synpref.lake.duck import DuckSettings, lit, stage_connection
from synpref.lake import Lake, atomic_path

TABLE = "curated_export"


@dataclass
class ExportSummary:
    pairs: int
    pool: int
    by_status: dict[str, int] = field(default_factory=dict)
    by_reason: dict[str, int] = field(default_factory=dict)
    # rows of (name, pool pairs, kept, flipped, dropped, retention)
    by_source: list[tuple] = field(default_factory=list)
    by_task_category: list[tuple] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def retention(self) -> float:
        return self.pairs / self.pool if self.pool else 0.0


def export_path(lake: Lake):
    return lake.table_dir(TABLE) / "curated.parquet"


def dataset_dir(lake: Lake) -> Path:
    """The export as a `datasets` folder, on a local disk (the lake's home): the Parquet file
    in the lake is the export itself, this is a copy made for loading it."""
    return lake.home / "export" / "curated_dataset"


RETENTION_SQL = """
select {key} as name, count(*) as pool,
       count(*) filter (where status = 'kept') as kept,
       count(*) filter (where status = 'flipped') as flipped,
       count(*) filter (where status = 'dropped') as dropped,
       round((count(*) filter (where status <> 'dropped')) / count(*), 4) as retention
from filtered_pairs as f {join}
group by all order by pool desc, name
"""


def export_curated(lake: Lake, duck: DuckSettings = DuckSettings(), with_dataset: bool = True,
                   log=lambda msg: None) -> ExportSummary:
    if not lake.has_table("filtered_pairs"):
        raise FileNotFoundError(f"filtered_pairs is empty under {lake.root}: run the Stage 2 filter first")
    start = time.perf_counter()
    with stage_connection(lake, duck) as con:
        register_latest_attributes(con, lake)
        with atomic_path(export_path(lake)) as tmp:
            con.execute(f"copy ({sql_files.load(TABLE)}) to {lit(tmp)} (format parquet, compression zstd)")
            (pairs,) = con.execute(f"select count(*) from read_parquet({lit(tmp)})").fetchone()
        summary = ExportSummary(
            pairs=pairs, pool=con.execute("select count(*) from filtered_pairs").fetchone()[0],
            by_status=dict(con.execute("select status, count(*) from filtered_pairs group by 1 order by 1").fetchall()),
            by_reason=dict(con.execute("select reason, count(*) from filtered_pairs group by 1 "
                                       "order by 2 desc, 1").fetchall()),
            by_source=con.execute(RETENTION_SQL.format(key="f.source", join="")).fetchall(),
            by_task_category=con.execute(RETENTION_SQL.format(
                key="coalesce(a.task_category, 'unknown')",
                join="left join latest_attributes as a using (pair_id)")).fetchall())
    expected = summary.by_status.get("kept", 0) + summary.by_status.get("flipped", 0)
    if summary.pairs != expected:
        raise AssertionError(f"curated export has {summary.pairs} pairs, filtered_pairs kept/flipped {expected}")
    if with_dataset:
        _save_dataset(lake)
        log(f"datasets folder: {dataset_dir(lake)}")
    summary.seconds = round(time.perf_counter() - start, 3)
    log(f"curated export: {summary.pairs:,} of {summary.pool:,} pool pairs ({summary.retention:.1%})")
    return summary


def _save_dataset(lake: Lake) -> None:
    """The export as a `datasets` folder (Arrow files memory-mapped, not loaded)."""
    from datasets import Dataset

    cache = lake.tmp_dir / "datasets-cache"
    try:
        source = lake.local_copy(export_path(lake))  # a store's file is read from a local copy
        save_dataset_folder(Dataset.from_parquet(str(source), cache_dir=str(cache)), dataset_dir(lake))
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def save_dataset_folder(dataset, final: Path, files: dict[str, str] | None = None) -> None:
    """`dataset.save_to_disk(final)` plus `files` (name: text) beside it, swapped in whole: a
    reader never sees half a folder."""
    staging = final.with_name(f".{final.name}.tmp-{scratch.tag()}")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        dataset.save_to_disk(str(staging))
        for name, text in (files or {}).items():
            (staging / name).write_text(text)
        old = final.with_name(f".{final.name}.old-{scratch.tag()}")
        if final.exists():
            final.rename(old)
        staging.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
