"""Stage 2 (Skywork-Reward-V2): large and automatic, one pool shard at a time.

For each shard: the current best RM and the gold RM (trained on all human-verified pairs)
score every pair (`pool_model_scores`, then `pool_scores`). The best RM's p is out of fold
(synpref/rm/crossfit.py): fold models trained with the round's recipe on the other folds, so no
pair is judged by a model that saw its label. The pairs the best RM does not confirm
(p <= 0.5) go to the LLM judges, with retrieved human-labelled examples in the prompt and no
humans; then the filter decides (synpref/filtered/filtering.py). Every step writes one part per
shard atomically and skips a shard that is done, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from synpref.rm.crossfit import MODEL_SCORES, CrossFitSettings, members_version, oof_scores_sql, score_out_of_fold
from synpref.lake.duck import DuckSettings, lit, stage_connection
from synpref.silver.judging import judge_queued
from synpref.lake import Lake, atomic_path, read_parquet, remove
from synpref.rm.rm_models import ModelRef
from synpref.rm.rm_predictions import part_path, score_shard
from synpref.lake.shards import N_SHARDS, shard_key, shard_sql

POOL_SCORES = "pool_scores"
FOLD_MODELS = "fold-models"  # pool_scores.best_model: p_best comes from the cross-fitted fold models
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


def _models_of(path) -> tuple[str, ...] | None:
    """The (best, best version, gold, gold version) a pool_scores part was made with; None for an
    empty part, ("outdated",) for a part written before p_best was out of fold."""
    table = read_parquet(path)
    if "members" not in table.column_names:
        return ("outdated",)
    table = table.select(["best_model", "best_version", "gold_model", "gold_version"]).slice(0, 1)
    return tuple(table.to_pylist()[0].values()) if table.num_rows else None


def score_pool_shard(lake: Lake, shard: int, members, gold: ModelRef, make_scorer: Callable[[ModelRef], object],
                     settings: CrossFitSettings = CrossFitSettings(), duck: DuckSettings = DuckSettings(),
                     log=lambda msg: None, n_shards: int = N_SHARDS, chunk_pairs: int = 2048) -> ShardScores:
    """The shard's pool_scores part: each pair's out-of-fold p_best from the fold models that
    never saw it (`members`: (fold, repeat, ModelRef) from crossfit.member_refs) and p_gold
    from the gold RM."""
    start = time.perf_counter()
    part = pool_scores_part(lake, shard)
    wanted = (FOLD_MODELS, members_version(members), gold.name, gold.version)
    if part.exists() and _models_of(part) in (wanted, None):
        meta = read_parquet(part, columns=["needs_judges"])
        log(f"{shard_key(shard)}: pool_scores up to date; reused")
        return ShardScores(shard, meta.num_rows, sum(meta["needs_judges"].to_pylist()), True, 0.0)
    with stage_connection(lake, duck) as con:  # one connection for every model's scoring and the join
        score_out_of_fold(lake, shard, members, settings, make_scorer, log=log, n_shards=n_shards,
                          chunk_pairs=chunk_pairs, con=con)
        gold_summary = score_shard(lake, gold, shard, lambda: make_scorer(gold), log=log, n_shards=n_shards,
                                   chunk_pairs=chunk_pairs, con=con, table=MODEL_SCORES)
        log(f"{shard_key(shard)}: {gold_summary.rows:,} pairs "
            f"{'already scored' if gold_summary.skipped else 'scored'} by {gold.name} {gold.version}")
        con.execute(f"create temp view oof as {oof_scores_sql(lake, shard, members, settings)}")
        con.execute(f"create temp view gold as select pair_id, p_chosen "
                    f"from read_parquet({lit(part_path(lake, gold, 'silver_pairs', shard_key(shard), MODEL_SCORES))})")
        with atomic_path(part) as tmp:
            con.execute(f"""
                copy (with best as (
                          -- ordered by repeat: the same sum, to the last bit, whoever runs it
                          select pair_id, avg(p_chosen order by repeat) as p_best,
                                 coalesce(stddev_pop(p_chosen order by repeat), 0) as p_best_spread,
                                 count(*)::int as members, any_value(fold) filter (where repeat = 0) as fold
                          from oof group by pair_id)
                      select s.pair_id, {int(shard)}::int as shard, b.fold::int as fold, b.p_best, b.p_best_spread,
                             b.members, g.p_chosen as p_gold, b.p_best <= 0.5 as needs_judges,
                             $bm as best_model, $bv as best_version, $gm as gold_model, $gv as gold_version
                      from silver_pairs as s join best as b using (pair_id) join gold as g using (pair_id)
                      where {shard_sql(n_shards)} = {int(shard)} order by s.pair_id)
                to {lit(tmp)} (format parquet, compression zstd)""",
                        dict(zip(("bm", "bv", "gm", "gv"), wanted)))
            (rows, needs, short), = con.execute(
                f"select count(*), count(*) filter (where needs_judges), "
                f"count(*) filter (where members <> {settings.repeats}) from read_parquet({lit(tmp)})").fetchall()
            (pool,), = con.execute(f"select count(*) from silver_pairs "
                                   f"where {shard_sql(n_shards)} = {int(shard)}").fetchall()
            if rows != pool or short:
                raise AssertionError(f"{shard_key(shard)}: {pool} pool pairs, {rows} with both scores, "
                                     f"{short} without one out-of-fold score per repeat")
    log(f"{shard_key(shard)}: {rows:,} pairs scored out of fold, {needs:,} for the judges (p_best <= 0.5)")
    return ShardScores(shard, rows, needs, False, round(time.perf_counter() - start, 3))


@dataclass
class ShardJudging:
    shard: int
    queued: int
    judged: dict[str, int]
    seconds: float


def judge_pool_shard(lake: Lake, shard: int, panel, prompt, make_annotator: Callable, chunk_rows: int = 128,
                     log=lambda msg: None) -> ShardJudging:
    """Every judge answers on the shard's queued pairs it has not judged (judge_queue holds the
    pairs the best RM does not confirm: synpref.silver.judging.queue_for_judges); silver_labels is rebuilt
    once all shards are judged."""
    start = time.perf_counter()
    summary = judge_queued(lake, panel, prompt, make_annotator, chunk_rows=chunk_rows,
                           where=f"{shard_sql()} = {int(shard)}", rebuild_labels=False, log=log)
    return ShardJudging(shard, summary.queued, summary.judged, round(time.perf_counter() - start, 3))


def reset_shards(lake: Lake) -> None:
    """Forget Stage 2's shard outputs (pool_scores, filtered_pairs, the curated export and the
    pool's RM scores), so the next run decides every shard again; the judges' votes stay,
    since a judge never answers the same pair and config twice."""
    for table in (POOL_SCORES, "filtered_pairs", "curated_export"):
        remove(lake.table_dir(table), recursive=True)
    remove(lake.table_dir(MODEL_SCORES), recursive=True)
    remove(lake.root / "_manifests" / "filtered_pairs", recursive=True)


HISTOGRAM_BINS = 20


@dataclass
class VoteIndependence:
    """Whether Stage 2's two votes are two: the best RM's (out of fold) and the gold RM's."""

    correlation: float  # Pearson correlation of the two RMs' pool logits
    agreement: float  # share of pool pairs on which both put the label on the same side of 0.5
    mean_spread: float  # mean p_best_spread (how much the fold models differ on a pair)
    p_best_bins: list[int]  # pairs per twentieth of [0, 1] (a histogram, binned in SQL)
    p_gold_bins: list[int]


def vote_independence(lake: Lake, duck: DuckSettings = DuckSettings()) -> VoteIndependence:
    with stage_connection(lake, duck) as con:
        logit = "ln(greatest({p}, 1e-6) / greatest(1 - {p}, 1e-6))"
        corr, agreement, spread = con.execute(
            f"select corr({logit.format(p='p_best')}, {logit.format(p='p_gold')}), "
            f"avg(((p_best > 0.5) = (p_gold > 0.5))::int), avg(p_best_spread) from {POOL_SCORES}").fetchone()
        bins = {column: dict(con.execute(f"select least(floor({column} * {HISTOGRAM_BINS}), {HISTOGRAM_BINS - 1})"
                                         f"::int, count(*) from {POOL_SCORES} group by 1").fetchall())
                for column in ("p_best", "p_gold")}
    nan = float("nan")
    return VoteIndependence(round(corr, 4) if corr is not None else nan,
                            round(agreement, 4) if agreement is not None else nan,
                            round(spread, 4) if spread is not None else nan,
                            *([b.get(i, 0) for i in range(HISTOGRAM_BINS)] for b in bins.values()))
