"""rm_eval: how well a reward model ranks its evaluation pairs.

The evaluation pairs are the human-verified `gold_pairs` (chosen = the human-preferred
response), less any the model was trained on; a model trained without gold is evaluated on
its own held-out pairs (`eval_set` says which). Accuracy, mean margin and calibration come
overall and by source, task category and objectivity (from the latest pair attributes), with
the reliability bins and, from the training log, the accuracy of each evaluated checkpoint.
One part per model version, replaced when the version is evaluated again; the per-pair
scores go to rm_eval_pairs (pairs_table eval_gold / eval_holdout), in rm_predictions' form.
Outside sets (`synpref eval`: a benchmark's pairs file) sit beside them: synpref/rm/outside_eval.py.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

import sql
from synpref.lake import schemas
from synpref.silver.attributes import register_latest_attributes
from synpref.lake.duck import connect as duck_connect, ident, lit, register_tables
from synpref.lake import Lake, atomic_path
from synpref.rm.rm_models import ModelRef
from synpref.rm.rm_predictions import write_predictions

TABLE = "rm_eval"
PAIRS = "rm_eval_pairs"
GOLD = "gold_pairs"
OWN_SETS = ("gold", "holdout")  # the lake's own evaluation sets; any other eval_set is an outside one
BREAKDOWNS = ("source", "task_category", "objectivity")


@dataclass
class EvalSummary:
    model: str
    version: str
    eval_set: str
    pairs: int
    accuracy: float
    rows: pa.Table
    path: Path
    seconds: float


def _eval_pairs_sql(lake: Lake, ref: ModelRef) -> tuple[str, str]:
    """(eval set kind, SELECT of its pairs with source)."""
    kind = ref.spec.get("eval_set", "gold")
    frozen = ref.version_dir / "data" / "eval.parquet" if ref.version_dir else None
    if kind == "gold" and lake.has_table(GOLD):
        trained = ref.version_dir / "data" / "train.parquet" if ref.version_dir else None
        anti = f"anti join read_parquet({lit(trained)}) as t using (pair_id)" if trained and trained.exists() else ""
        with duck_connect(lake) as con:
            register_tables(con, lake, temp=True)
            has_source = "source" in {c[0] for c in con.execute(f"describe {GOLD}").fetchall()}
            gold = (f"select g.pair_id, g.conversation, g.chosen, g.rejected, "
                    f"{'g.source' if has_source else 'null::varchar as source'} from {GOLD} as g {anti}")
            (rows,) = con.execute(f"select count(*) from ({gold})").fetchone()
        if rows or frozen is None or not frozen.exists():
            return "gold", gold
        # every gold pair was trained on (or gold was emptied): the set the model was selected on
    if frozen is None or not frozen.exists():
        raise ValueError(f"no evaluation pairs for {ref.name}: the lake has no gold_pairs and the model "
                         f"no held-out set")
    return kind, f"select pair_id, conversation, chosen, rejected, source from read_parquet({lit(frozen)})"


def _checkpoint_rows(ref: ModelRef) -> list[dict]:
    """Each evaluated checkpoint's accuracy, from the training log."""
    log = ref.version_dir / "train_log.jsonl" if ref.version_dir else None
    if not log or not log.exists():
        return []
    evals = {}
    for line in log.read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "eval":  # a resumed run may evaluate a step again: the last one counts
            evals[event["step"]] = event
    return [{"breakdown": "checkpoint", "group_value": f"step-{step:06d}", "pairs": e["pairs"],
             "accuracy": e["accuracy"], "mean_margin": e["mean_margin"]} for step, e in sorted(evals.items())]


def evaluate_reward_model(lake: Lake, ref: ModelRef, make_scorer: Callable,
                          log: Callable[[str], None] = lambda msg: None) -> EvalSummary:
    """Score the model's evaluation pairs and write its rm_eval rows (and their predictions)."""
    start = time.perf_counter()
    kind, pairs_sql = _eval_pairs_sql(lake, ref)
    with duck_connect(lake) as con:
        register_tables(con, lake, temp=True)
        register_latest_attributes(con, lake)
        pairs = con.sql(f"select p.*, a.task_category, a.objectivity from ({pairs_sql}) as p "
                        f"left join latest_attributes as a using (pair_id) order by pair_id").to_arrow_table()
        if not pairs.num_rows:
            raise ValueError(f"{ref.name} {ref.version}: the {kind} evaluation set is empty")
        log(f"evaluating {ref.name} {ref.version} on {pairs.num_rows:,} {kind} pairs")
        columns = pairs.to_pydict()
        scores = make_scorer().score(columns["conversation"], columns["chosen"], columns["rejected"])
        scored = pa.table({**{b: pairs[b] for b in BREAKDOWNS}, "reward_chosen": scores[0],
                           "reward_rejected": scores[1], "p_chosen": scores[2]})
        con.register("scored_pairs", scored)
        metrics = eval_metrics(con, "scored_pairs", BREAKDOWNS)
    rows = eval_rows(ref, kind, metrics + _checkpoint_rows(ref))
    path = lake.table_dir(TABLE) / f"{ref.name}--{ref.version}.parquet"
    with atomic_path(path) as tmp:
        pq.write_table(rows, tmp, compression="zstd")
    write_predictions(lake, ref, f"eval_{kind}", "all", columns["pair_id"], scores, table=PAIRS)
    overall = next(r for r in rows.to_pylist() if r["breakdown"] == "overall")
    return EvalSummary(ref.name, ref.version, kind, overall["pairs"], overall["accuracy"], rows, path,
                       round(time.perf_counter() - start, 3))


def eval_metrics(con, scored: str, breakdowns=()) -> list[dict]:
    """sql/rm_eval.sql's figures over a relation of scored pairs (reward_chosen, reward_rejected,
    p_chosen, and the breakdowns' columns): overall, per value of each breakdown column (null:
    'unknown') and per confidence bin."""
    scores = "reward_chosen, reward_rejected, p_chosen"
    parts = [f"select 'overall' as breakdown, 'all' as group_value, {scores} from {scored}"] + [
        f"select {lit(b)}, coalesce({ident(b)}::varchar, 'unknown'), {scores} from {scored}" for b in breakdowns]
    con.execute(f"create or replace temp view eval_scores as {' union all '.join(parts)}")
    return con.sql(sql.load("rm_eval")).to_arrow_table().to_pylist()


def eval_rows(ref: ModelRef, eval_set: str, records: list[dict], pairs_file: str | None = None) -> pa.Table:
    now = datetime.now(timezone.utc)
    return pa.Table.from_pylist([{
        **{f.name: None for f in schemas.RM_EVAL}, **r, "model": ref.name, "model_version": ref.version,
        "eval_set": eval_set, "evaluated_at": now, "pairs_file": pairs_file,
    } for r in records], schema=schemas.RM_EVAL)


def evaluated(lake: Lake) -> set[tuple[str, str]]:
    """(model, version) of every version evaluated on the lake's own set (gold or holdout): one
    evaluated only on an outside set still waits for its gold evaluation."""
    if not lake.has_table(TABLE):
        return set()
    with duck_connect(lake) as con:
        return set(con.execute(f"select distinct model, model_version from read_parquet("
                               f"{lit(lake.table_glob(TABLE))}, union_by_name = true) "
                               f"where eval_set in ({', '.join(map(lit, OWN_SETS))})").fetchall())


def accuracy_by_set(lake: Lake) -> list[dict]:
    """Every evaluated version's overall accuracy on each of its sets, gold and outside ones side by side."""
    if not lake.has_table(TABLE):
        return []
    with duck_connect(lake) as con:
        rel = con.sql(f"select model, model_version, eval_set, pairs, accuracy, ece from read_parquet("
                      f"{lit(lake.table_glob(TABLE))}, union_by_name = true) where breakdown = 'overall' "
                      f"order by model, model_version, eval_set not in ({', '.join(map(lit, OWN_SETS))}), eval_set")
        return [dict(zip(rel.columns, r)) for r in rel.fetchall()]
