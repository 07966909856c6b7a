"""Benchmark arm: what cross-fitting is worth to a fine-tuned MiniLM reward model for finding label flips.

    HF_HUB_OFFLINE=1 PYTHONPATH=. nice -n 5 .venv/bin/python benchmarks/noise_minilm.py

On the quality benchmark's 25%-noise lake (split seed 0: gold 200, test 400, the rest the pool;
flips of seed 0; benchmarks/quality.py's `Bench` and TRAIN_DEFAULTS), the MiniLM RM of the project's
trainer (DeepSpeed, CPU) scores every pair of the lake's silver_pairs twice:
  - in sample: `minilm-insample`, trained on the whole pool (`stage1.silver_training_sql`, gold
    picking the checkpoint and kept out of training), scores every pair -> p_insample;
  - out of fold: `minilm-fold-{k}` (K=5, repeat 0 of `synpref.rm.crossfit`), each trained on the pool
    outside fold k, scores only fold k -> p_oof (every pair gets exactly one).
Written to benchmarks/_work/noise/minilm/scores.parquet (pair_id, fold, p_insample, p_oof,
injected_flip, split). The test-set accuracy of `minilm-insample` (arm a, the RM of the noisy pool) and
of `minilm-clean` (arm d, the same training in the noise-0 lake) goes to arms.json; the detection
figures on the pool (gold pairs left out: AUROC of 1 - p for the injected flips, precision and
recall of "drop when p <= 0.5", each RM's accuracy on the pool's true labels) to summary.json.

With `--kept FILE.parquet` (pair_id, status in kept/flipped: a filter's decisions on this lake's
pairs) it also trains `minilm-curated` on the kept pairs (arm b) and `minilm-recycled` on the kept
plus the flipped ones swapped (arm c), gold pairs left out of both, and adds their test accuracy
to arms.json. Every step is skipped when its output exists (trained models are reused by
fingerprint), so a killed run resumes. A quick smoke run:

    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python benchmarks/noise_minilm.py --work /tmp/noise_smoke --set max_steps=2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from benchmarks import quality_split as qs  # noqa: E402
from benchmarks.quality import TRAIN_DEFAULTS, Bench, read_json, write_json  # noqa: E402
from benchmarks.rm_accuracy import SHARED  # noqa: E402
from models.scorer import Scorer  # noqa: E402
from models.train_config import load_config, parse_value  # noqa: E402
from synpref.lake.duck import lit  # noqa: E402
from synpref.rm import crossfit, rm_models  # noqa: E402
from synpref.gold import stage1  # noqa: E402
from synpref.lake import Lake, atomic_path  # noqa: E402

WORK = HERE / "_work" / "noise"
RATE, SEED, FOLDS, REPEAT = 0.25, 0, 5, 0
INSAMPLE, CLEAN, CURATED, RECYCLED = "minilm-insample", "minilm-clean", "minilm-curated", "minilm-recycled"


def log(msg: str) -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{time.strftime('%H:%M:%S')} [load {load}] {msg}", flush=True)


def fold_model(fold: int) -> str:
    return f"minilm-fold-{fold}"


def make_bench(work: Path, data: Path, overrides: dict) -> Bench:
    """The quality benchmark's setup: split seed 0, gold 200, test 400, the rest the pool."""
    return Bench(work / "seed-0", data, qs.SplitSizes(gold=200, test=400, pool=None), split_seed=0,
                 config=load_config(None, **{**TRAIN_DEFAULTS, **overrides}))


def read_pairs(lake: Lake, where: str = "true") -> dict:
    """pair_id, fold, conversation, chosen, rejected of the lake's silver_pairs matching `where`."""
    return duckdb.sql(f"""
        select pair_id, {crossfit.fold_sql(FOLDS, REPEAT)} as fold, conversation, chosen, rejected
        from read_parquet({lit(lake.table_glob('silver_pairs'))}) where {where} order by pair_id
    """).to_arrow_table().to_pydict()


def write_p(path: Path, pairs: dict, p: np.ndarray, column: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.register("scored", pa.table({"pair_id": pairs["pair_id"], "fold": pairs["fold"], column: p}))
        with atomic_path(path) as tmp:
            con.execute(f"copy (select * from scored order by pair_id) to {lit(tmp)} (format parquet)")


def score_into(path: Path, ref: rm_models.ModelRef, lake: Lake, where: str, column: str) -> None:
    """p_chosen of `ref` for the pairs matching `where`, into `path` (skipped when it is there)."""
    if path.exists():
        return
    pairs = read_pairs(lake, where)
    start = time.perf_counter()
    _, _, p = Scorer(ref.path).score(pairs["conversation"], pairs["chosen"], pairs["rejected"])
    write_p(path, pairs, p, column)
    log(f"{ref.name} {ref.version}: scored {len(p):,} pairs in {time.perf_counter() - start:.0f}s -> {path.name}")


def insample_scores(bench: Bench, lake: Lake, out: Path) -> rm_models.ModelRef:
    """The RM of the whole noisy pool, scoring every pair of the lake."""
    ref = bench.train(lake, INSAMPLE, stage1.silver_training_sql(lake), SEED)
    score_into(out / "insample.parquet", ref, lake, "true", "p_insample")
    return ref


def oof_scores(bench: Bench, lake: Lake, out: Path) -> list[rm_models.ModelRef]:
    """Fold model k trained on the pool outside fold k, scoring fold k."""
    refs = []
    for k in range(FOLDS):
        ref = bench.train(lake, fold_model(k), crossfit.member_training_sql(
            stage1.silver_training_sql(lake), k, REPEAT, FOLDS), SEED)
        score_into(out / f"oof-fold-{k}.parquet", ref, lake, f"{crossfit.fold_sql(FOLDS, REPEAT)} = {k}", "p_oof")
        refs.append(ref)
    return refs


def write_scores(bench: Bench, lake: Lake, out: Path) -> Path:
    """scores.parquet: both scores and the truth of every pair; checks one OOF score a pair."""
    path = out / "scores.parquet"
    if path.exists():
        return path
    with bench.connect() as con:
        con.execute(f"""
            create temp table scores as
            select s.pair_id, s.fold, i.p_insample, o.p_oof, t.injected_flip, t.split, o.n, o.oof_fold
            from (select pair_id, {crossfit.fold_sql(FOLDS, REPEAT)} as fold
                  from read_parquet({lit(lake.table_glob('silver_pairs'))})) as s
            left join read_parquet({lit(out / 'insample.parquet')}) as i using (pair_id)
            left join (select pair_id, any_value(p_oof) as p_oof, count(*) as n, any_value(fold) as oof_fold
                       from read_parquet({lit(out / 'oof-fold-*.parquet')}) group by pair_id) as o using (pair_id)
            left join ({qs.truth_sql(lake, bench.base.table_glob('silver_pairs'))}) as t using (pair_id)""")
        problems = con.execute("""
            select count(*) filter (where p_insample is null), count(*) filter (where n is distinct from 1),
                   count(*) filter (where oof_fold is distinct from fold),
                   count(*) filter (where split is null or split not in ('gold', 'pool')),
                   count(*) - count(distinct pair_id)
            from scores""").fetchone()
        if any(problems):
            raise RuntimeError("scores incomplete: pairs without p_insample {}, without exactly one OOF score {}, "
                               "scored by another fold's model {}, without a split {}; duplicate pair_ids {}"
                               .format(*problems))
        with atomic_path(path) as tmp:
            con.execute(f"copy (select * exclude (n, oof_fold) from scores order by pair_id) "
                        f"to {lit(tmp)} (format parquet)")
        counts = con.execute("select split, count(*), count(*) filter (where injected_flip) "
                             "from scores group by split order by split").fetchall()
        log(f"scores.parquet: every pair one OOF score; (split, pairs, flips): {counts}")
    return path


def update_arms(out: Path, arm: str, result: dict) -> None:
    arms = read_json(out / "arms.json") or {"train_seconds": {}, "models": {}}
    arms[arm] = result["accuracy"]
    arms["train_seconds"][arm] = result["train_seconds"]
    arms["models"][arm] = {"name": result["model"], "version": result["version"], "train_pairs": result["train_pairs"],
                           "best_step": result["best_step"], "steps": result["steps"],
                           "gold_accuracy": result["eval_accuracy"], "by_source": result["by_source"]}
    write_json(out / "arms.json", arms)


def test_arm(bench: Bench, ref: rm_models.ModelRef, out: Path, arm: str) -> float:
    """Held-out accuracy (400 test pairs) of one arm's RM, into arms.json."""
    result = bench.test_accuracy(ref, out / "test" / f"{ref.name}.json")
    update_arms(out, arm, result)
    log(f"arm {arm} ({ref.name} {ref.version}): test accuracy {result['accuracy']:.3f}, "
        f"trained in {result['train_seconds']}s")
    return result["accuracy"]


def train_on_pairs(bench: Bench, lake: Lake, name: str, pair_sql: str, out: Path, arm: str) -> float:
    """Train `name` on `pair_sql` (a SELECT over the lake's tables) and record its test accuracy as `arm`."""
    return test_arm(bench, bench.train(lake, name, pair_sql, SEED), out, arm)


def kept_sql(kept: Path, recycle: bool) -> str:
    """The pairs a filter kept (plus, with `recycle`, the flipped ones swapped), gold pairs left out."""
    statuses = "('kept', 'flipped')" if recycle else "('kept')"
    return f"""
        select s.pair_id, s.conversation,
               if(k.status = 'flipped', s.rejected, s.chosen) as chosen,
               if(k.status = 'flipped', s.chosen, s.rejected) as rejected, s.source
        from silver_pairs as s join read_parquet({lit(kept.resolve())}) as k using (pair_id)
        where k.status in {statuses} and s.pair_id not in (select pair_id from gold_pairs)"""


def _auroc(y: np.ndarray, score: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score)) if 0 < y.sum() < len(y) else None


def detection(flip: np.ndarray, p: np.ndarray) -> dict:
    """How well a score p(chosen) finds the injected flips of the pool."""
    drop = p <= 0.5
    hits = int((drop & flip).sum())
    return {"auroc": _auroc(flip, 1 - p), "dropped": int(drop.sum()),
            "precision": hits / drop.sum() if drop.sum() else None, "recall": hits / flip.sum() if flip.sum() else None,
            "pool_accuracy": float(((p > 0.5) != flip).mean())}


def summarize(scores: Path, out: Path, refs: dict[str, rm_models.ModelRef]) -> dict:
    pool = duckdb.sql(f"select injected_flip, p_insample, p_oof from read_parquet({lit(scores)}) "
                      f"where split = 'pool'").fetchnumpy()
    flip = np.asarray(pool["injected_flip"], dtype=bool)
    summary = {"noise": RATE, "seed": SEED, "folds": FOLDS, "repeat": REPEAT, "pool_pairs": len(flip),
               "injected_flips": int(flip.sum()),
               "insample": detection(flip, np.asarray(pool["p_insample"], dtype=float)),
               "oof": detection(flip, np.asarray(pool["p_oof"], dtype=float)),
               "train_seconds": {name: ref.metrics.get("train_seconds") for name, ref in refs.items()},
               "models": {name: ref.version for name, ref in refs.items()},
               "arms": read_json(out / "arms.json")}
    write_json(out / "summary.json", summary)
    return summary


def print_summary(summary: dict) -> None:
    print(f"\npool (gold left out): {summary['pool_pairs']:,} pairs, {summary['injected_flips']:,} injected flips")
    print(f"{'score':<12}{'AUROC':>8}{'dropped':>9}{'precision':>11}{'recall':>8}{'pool acc':>10}")
    for key in ("insample", "oof"):
        d = summary[key]
        print(f"{'p_' + key:<12}{d['auroc']:>8.3f}{d['dropped']:>9,}{d['precision'] or 0:>11.3f}"
              f"{d['recall'] or 0:>8.3f}{d['pool_accuracy']:>10.3f}")
    arms = summary["arms"] or {}
    print("test accuracy: " + ", ".join(f"{a} {arms[a]:.3f}" for a in ("noisy", "clean", "curated", "recycled")
                                        if a in arms))
    print("train seconds: " + ", ".join(f"{k} {v}" for k, v in summary["train_seconds"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--kept", type=Path, help="a filter's decisions (pair_id, status) for arms (b) and (c)")
    parser.add_argument("--set", dest="settings", nargs="*", default=[], metavar="KEY=VALUE",
                        help=f"training settings over {TRAIN_DEFAULTS} (e.g. max_steps=2 for a smoke run)")
    args = parser.parse_args()
    overrides = {k: parse_value(k, v) for k, v in (s.split("=", 1) for s in args.settings)}
    out = args.work / "minilm"
    bench = make_bench(args.work, args.data, overrides)
    lake = bench.lake(RATE, SEED)
    refs = {INSAMPLE: insample_scores(bench, lake, out)}
    test_arm(bench, refs[INSAMPLE], out, "noisy")
    clean_lake = bench.lake(0.0, SEED)
    refs[CLEAN] = bench.train(clean_lake, CLEAN, stage1.silver_training_sql(clean_lake), SEED)
    test_arm(bench, refs[CLEAN], out, "clean")
    refs.update({ref.name: ref for ref in oof_scores(bench, lake, out)})
    scores = write_scores(bench, lake, out)
    if args.kept:  # arms named after the decisions file (e.g. oof-ensemble), as noise_report reads them
        rule = args.kept.stem
        train_on_pairs(bench, lake, f"{CURATED}-{rule}", kept_sql(args.kept, recycle=False), out, f"curated/{rule}")
        ((flipped,),) = duckdb.execute(f"select count(*) from read_parquet({lit(args.kept)}) "
                                       f"where status = 'flipped'").fetchall()
        if flipped:
            train_on_pairs(bench, lake, f"{RECYCLED}-{rule}", kept_sql(args.kept, recycle=True), out,
                           f"recycled/{rule}")
        else:  # nothing recycled: arm (c) would train on (b)'s very pairs
            update_arms(out, f"recycled/{rule}", read_json(out / "test" / f"{CURATED}-{rule}.json"))
    print_summary(summarize(scores, out, refs))
    log(f"done: {out}")


if __name__ == "__main__":
    main()
