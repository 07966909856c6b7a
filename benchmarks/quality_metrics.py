"""How well Stage 2 found the injected flips: per pool pair its truth next to the filter's decision.

A pair counts as *detected* when the filter did not keep it (dropped, or recycled with its label
flipped); gold pairs inside the lake (status by the humans) are left out of every figure.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from benchmarks.quality_split import truth_sql
from synpref.lake.duck import lit  # noqa: E402
from synpref.lake import Lake, atomic_path


def write_pool_outcomes(con: duckdb.DuckDBPyConnection, lake: Lake, base_silver_glob: str, out: Path) -> None:
    """pair_id, injected_flip, p_best, p_gold, status, reason of every pool pair (con has `split`)."""
    with atomic_path(out) as tmp:
        con.execute(f"""
            copy (select t.pair_id, t.injected_flip, f.p_best, f.p_gold, f.status, f.reason
                  from ({truth_sql(lake, base_silver_glob)}) as t
                  join read_parquet({lit(lake.table_glob('filtered_pairs'))}) as f using (pair_id)
                  where t.split = 'pool' and not f.human_verified order by t.pair_id)
            to {lit(tmp)} (format parquet)""")


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def flip_metrics(outcomes: str) -> dict:
    """The filter's figures from a pool-outcomes Parquet file (see write_pool_outcomes)."""
    (pool, injected, kept, kept_flips, recycled, recycled_right, detected_right,
     best_right, gold_right, needs_judges, best_clean, best_flipped, gold_clean,
     gold_flipped) = duckdb.connect().execute(f"""
        select count(*), count(*) filter (where injected_flip),
               count(*) filter (where status = 'kept'),
               count(*) filter (where status = 'kept' and injected_flip),
               count(*) filter (where status = 'flipped'),
               count(*) filter (where status = 'flipped' and injected_flip),
               count(*) filter (where status <> 'kept' and injected_flip),
               count(*) filter (where (p_best > 0.5) <> injected_flip),
               count(*) filter (where (p_gold > 0.5) <> injected_flip),
               count(*) filter (where p_best <= 0.5),
               count(*) filter (where p_best > 0.5 and not injected_flip),
               count(*) filter (where p_best > 0.5 and injected_flip),
               count(*) filter (where p_gold > 0.5 and not injected_flip),
               count(*) filter (where p_gold > 0.5 and injected_flip)
        from read_parquet({lit(outcomes)})""").fetchone()
    detected = pool - kept
    trained = kept + recycled
    return {
        "pool": pool, "injected": injected, "injected_rate": _ratio(injected, pool),
        "kept": kept, "kept_flip_rate": _ratio(kept_flips, kept), "retention": _ratio(kept, pool),
        "detected": detected, "precision": _ratio(detected_right, detected), "recall": _ratio(detected_right, injected),
        "recycled": recycled, "recycle_precision": _ratio(recycled_right, recycled),
        # the share of wrong labels in arm (c)'s training pairs: kept flips + recycled clean pairs
        "recycled_set_flip_rate": _ratio(kept_flips + recycled - recycled_right, trained),
        "needs_judges": needs_judges,
        # each RM's accuracy on the pool's true labels (the best RM was trained on these pairs)
        "best_rm_pool_accuracy": _ratio(best_right, pool), "gold_rm_pool_accuracy": _ratio(gold_right, pool),
        # how often each RM agrees with the pool's label on clean and on flipped pairs: an RM that
        # learnt the pool's labels agrees with flipped ones more than 1 - its accuracy
        "best_agrees_clean": _ratio(best_clean, pool - injected), "best_agrees_flipped": _ratio(best_flipped, injected),
        "gold_agrees_clean": _ratio(gold_clean, pool - injected), "gold_agrees_flipped": _ratio(gold_flipped, injected),
    }
