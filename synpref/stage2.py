"""Stage 2 (Skywork-Reward-V2): large and automatic, one pool shard at a time.

For each shard: the current best RM (the Stage 1 round RM with the best gold accuracy) and
the gold RM (trained on all human-verified pairs) score every pair (`rm_predictions`, then
`pool_scores`); the pairs the best RM does not confirm (p <= 0.5) go to the LLM judges, with
retrieved human-labelled examples in the prompt and no humans; then the filter decides
(synpref/filter_stage.py). Every step writes one part per shard atomically and skips a shard
that is done, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from synpref.duck import DuckSettings, stage_connection
from synpref.judging_stage import enqueue, judge_queued
from synpref.lake import Lake, atomic_path, read_parquet, remove
from synpref.rm_models import ModelRef
from synpref.rm_predictions import part_path, score_shard
from synpref.shards import N_SHARDS, shard_key, shard_sql

POOL_SCORES = "pool_scores"
STAGE2_ORIGIN = "stage2"


@dataclass
class ShardScores:
    shard: int
    pairs: int
    needs_judges: int
    reused: bool
    seconds: float


def pool_scores_part(lake: Lake, shard: int):
    return lake.table_dir(POOL_SCORES) / f"{shard_key(shard)}.parquet"


def _models_of(path) -> tuple[str, str, str, str] | None:
    """The (best, best version, gold, gold version) a pool_scores part was made with."""
    table = read_parquet(path, columns=["best_model", "best_version", "gold_model", "gold_version"]).slice(0, 1)
    return tuple(table.to_pylist()[0].values()) if table.num_rows else None


def score_pool_shard(lake: Lake, shard: int, best: ModelRef, gold: ModelRef, make_scorer: Callable[[ModelRef], object],
                     duck: DuckSettings = DuckSettings(), log=lambda msg: None, n_shards: int = N_SHARDS,
                     chunk_pairs: int = 2048) -> ShardScores:
    """Both RMs' scores of the shard's pairs, joined into its pool_scores part."""
    start = time.perf_counter()
    part = pool_scores_part(lake, shard)
    wanted = (best.name, best.version, gold.name, gold.version)
    if part.exists() and _models_of(part) in (wanted, None):
        meta = read_parquet(part, columns=["needs_judges"])
        log(f"{shard_key(shard)}: pool_scores up to date; reused")
        return ShardScores(shard, meta.num_rows, sum(meta["needs_judges"].to_pylist()), True, 0.0)
    for ref in (best, gold):
        summary = score_shard(lake, ref, shard, lambda ref=ref: make_scorer(ref), log=log, n_shards=n_shards,
                              chunk_pairs=chunk_pairs)
        log(f"{shard_key(shard)}: {summary.rows:,} pairs {'already scored' if summary.skipped else 'scored'} "
            f"by {ref.name} {ref.version}")
    con = stage_connection(lake, duck)
    try:
        for view, ref in (("best", best), ("gold", gold)):
            con.execute(f"create temp view {view} as select pair_id, p_chosen "
                        f"from read_parquet('{part_path(lake, ref, 'silver_pairs', shard_key(shard))}')")
        with atomic_path(part) as tmp:
            con.execute(f"""
                copy (select s.pair_id, {int(shard)}::int as shard, b.p_chosen as p_best, g.p_chosen as p_gold,
                             b.p_chosen <= 0.5 as needs_judges,
                             $bm as best_model, $bv as best_version, $gm as gold_model, $gv as gold_version
                      from silver_pairs as s join best as b using (pair_id) join gold as g using (pair_id)
                      where {shard_sql(n_shards)} = {int(shard)} order by s.pair_id)
                to '{tmp}' (format parquet, compression zstd)""",
                        {"bm": best.name, "bv": best.version, "gm": gold.name, "gv": gold.version})
            (rows, needs), = con.execute(f"select count(*), count(*) filter (where needs_judges) "
                                         f"from read_parquet('{tmp}')").fetchall()
            (pool,), = con.execute(f"select count(*) from silver_pairs "
                                   f"where {shard_sql(n_shards)} = {int(shard)}").fetchall()
            if rows != pool:
                raise AssertionError(f"{shard_key(shard)}: {pool} pool pairs but {rows} with both scores")
    finally:
        con.close()
    log(f"{shard_key(shard)}: {rows:,} pairs scored, {needs:,} for the judges (p_best <= 0.5)")
    return ShardScores(shard, rows, needs, False, round(time.perf_counter() - start, 3))


@dataclass
class ShardJudging:
    shard: int
    queued: int
    judged: dict[str, int]
    seconds: float


def judge_pool_shard(lake: Lake, shard: int, panel, prompt, make_annotator: Callable, chunk_rows: int = 128,
                     log=lambda msg: None) -> ShardJudging:
    """Queue the shard's pairs the best RM does not confirm, and have every judge answer on
    those it has not judged (silver_labels is rebuilt once all shards are judged)."""
    start = time.perf_counter()
    part = pool_scores_part(lake, shard)
    if not part.exists():
        raise FileNotFoundError(f"{shard_key(shard)} has no pool_scores yet: score the shard first")
    new, _ = enqueue(lake, f"select pair_id from read_parquet('{part}') where needs_judges", origin=STAGE2_ORIGIN)
    in_shard = f"{shard_sql()} = {int(shard)} and pair_id in (select pair_id from read_parquet('{part}') " \
               f"where needs_judges)"
    summary = judge_queued(lake, panel, prompt, make_annotator, chunk_rows=chunk_rows, where=in_shard,
                           rebuild_labels=False, log=log)
    return ShardJudging(shard, new, summary.judged, round(time.perf_counter() - start, 3))


def reset_shards(lake: Lake) -> None:
    """Forget Stage 2's shard outputs (pool_scores, filtered_pairs, the curated export and the
    pool's RM scores), so the next run decides every shard again; the judges' votes stay,
    since a judge never answers the same pair and config twice."""
    for table in (POOL_SCORES, "filtered_pairs", "curated_export"):
        remove(lake.table_dir(table), recursive=True)
    for part in lake.table_files("rm_predictions"):
        if "--silver_pairs--" in part.name:
            remove(part)
    remove(lake.root / "_manifests" / "filtered_pairs", recursive=True)
