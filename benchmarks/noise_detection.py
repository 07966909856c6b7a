"""Benchmark: does Stage 2 find wrong labels in real human-labelled pairs? Out-of-fold scores,
the three rules, and the RMs trained on what each rule keeps.

    HF_HUB_OFFLINE=1 PYTHONPATH=. nice -n 10 .venv/bin/python benchmarks/noise_detection.py

All real pairs of ../shared/data (hh-rlhf harmless-base test + the eight LLMBar sets; 3,181 after
silver) are split per seed, each seed its own split and flips (benchmarks/quality_split.py), into
gold 200 (their original, human-given labels), test 400 (never written into a lake) and a pool of
the other 2,581, into which 10%, 25% and 40% label flips are injected. Per noise level and seed
one lake goes through the pipeline's own functions and tables (the LLM judges are off on a CPU):
  1. raw_pairs -> silver_pairs -> human_labels -> gold_pairs (benchmarks/quality.py's Bench.lake);
  2. the fold models: K = 5 folds x R = 3 repeats of embedding RMs (a BT head on frozen MiniLM
     embeddings, models/embedding_rm.py) trained by train_reward_model on the round's recipe
     (synpref.rm.crossfit), and the gold RM on gold_pairs alone (independent of them);
  3. pool_scores by score_pool_shard: p_best out of fold; then filtered_pairs by filter_shard under
     each rule (paper, confident_learning, ensemble); the in-sample baseline is the same path with
     one RM trained on the whole pool standing in for every fold (today's design before this change);
  4. arms, each an embedding RM scored on the test set: (a) the noisy pool, (b) the pairs a rule
     kept, (c) kept + recycled (flipped back), (d) the clean pool (the noise-0 lake).
The fine-tuned MiniLM row (25%, seed 0) comes from benchmarks/noise_minilm.py's scores.
Every step's output is reused when it exists (models by fingerprint, results as JSON), so a killed
run resumes. Writes benchmarks/results/noise_detection.{md,json} and its plots.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from benchmarks import quality_split as qs  # noqa: E402
from benchmarks.quality import Bench, read_json, write_json  # noqa: E402
from benchmarks.rm_accuracy import SHARED  # noqa: E402
from models.launch import LaunchConfig  # noqa: E402
from models.scorer import make_scorer  # noqa: E402
from models.train_config import load_config, make_config  # noqa: E402
from synpref.lake.duck import lit  # noqa: E402
from synpref.rm import crossfit, rm_models  # noqa: E402
from synpref.lake import schemas  # noqa: E402
from synpref.gold import stage1  # noqa: E402
from synpref.filtered.filtering import RULES, FilterSettings, filter_shard  # noqa: E402
from synpref.lake import Lake, atomic_path  # noqa: E402
from synpref.rm.rm_training import train_reward_model  # noqa: E402
from synpref.rm.rm_predictions import part_path  # noqa: E402
from synpref.lake.shards import shard_key  # noqa: E402
from synpref.filtered.stage2 import pool_scores_part, score_pool_shard  # noqa: E402

WORK = HERE / "_work" / "noise"
RESULTS = HERE / "results"
EMBEDDING = {"backbone": "embedding"}  # every RM of this benchmark but the MiniLM row
GOLD_SQL = "select pair_id, conversation, chosen, rejected, source from gold_pairs"
INSAMPLE = "insample"


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def bench_for(seed: int, data: Path) -> Bench:
    """Seed s: its own split (split seed s) and flip order, in WORK/seed-s."""
    return Bench(WORK / f"seed-{seed}", data, qs.SplitSizes(gold=200, test=400, pool=None), seed,
                 load_config(None, **EMBEDDING))


def lake_for(bench: Bench, rate: float, seed: int) -> Lake:
    """The benchmark lake, its embedding cache shared with every other lake (a vector depends on
    the text alone, so each of the 6,255 real texts is embedded once for the whole benchmark)."""
    lake = bench.lake(rate, seed)
    cache = lake.root / "models" / "embedding_cache"
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        (WORK / "embedding_cache").mkdir(parents=True, exist_ok=True)
        cache.symlink_to((WORK / "embedding_cache").resolve(), target_is_directory=True)
    return lake


def train(lake: Lake, name: str, pairs, seed: int, eval_set: str = "gold") -> rm_models.ModelRef:
    summary = train_reward_model(lake, name, pairs, make_config(load_config(None, **EMBEDDING), seed=seed),
                                 eval_set=eval_set, holdout_fraction=0.2, launch=LaunchConfig(accelerator="cpu"),
                                 log=lambda m: None)
    return rm_models.resolve(lake, name, summary.version)


def test_accuracy(bench: Bench, ref: rm_models.ModelRef) -> float:
    t = bench.test
    rc, rr, _ = make_scorer(ref.path).score(t["conversation"], t["chosen"], t["rejected"])
    return float((rc > rr).mean())


def fold_members(lake: Lake, settings: crossfit.CrossFitSettings, seed: int) -> list:
    pairs = stage1.silver_training_sql(lake)
    return [(k, r, train(lake, crossfit.member_name(k, r), crossfit.member_training_sql(pairs, k, r, settings.folds),
                         seed)) for r in range(settings.repeats) for k in range(settings.folds)]


def outcomes(bench: Bench, lake: Lake, out: Path) -> None:
    """Each pool pair's truth beside its decision and evidence (gold pairs left out)."""
    with bench.connect() as con:
        with atomic_path(out) as tmp:
            con.execute(f"""
                copy (select t.pair_id, t.injected_flip, f.status, f.reason, f.noise_score, f.p_best,
                             f.p_best_spread, f.p_gold, f.label_issue
                      from ({qs.truth_sql(lake, bench.base.table_glob('silver_pairs'))}) as t
                      join read_parquet({lit(lake.table_glob('filtered_pairs'))}) as f using (pair_id)
                      where t.split = 'pool' and not f.human_verified order by t.pair_id)
                to {lit(tmp)} (format parquet)""")


def decide(bench: Bench, lake: Lake, members, gold, settings, rules: list[str], out: Path, label: str) -> None:
    """pool_scores from `members`, then each rule's decisions saved as out/<label>-<rule>.parquet."""
    if all((out / f"{label}-{rule}.parquet").exists() for rule in rules):
        return
    score_pool_shard(lake, 0, members, gold, lambda ref: make_scorer(ref.path), settings, n_shards=1)
    for rule in rules:
        filter_shard(lake, 0, FilterSettings(rule=rule), n_shards=1)
        outcomes(bench, lake, out / f"{label}-{rule}.parquet")


def curated_pairs(lake: Lake, decisions: Path, with_recycled: bool) -> str:
    """The training pairs of arm (b) (kept) or (c) (kept + recycled, swapped) as a SELECT."""
    statuses = "('kept', 'flipped')" if with_recycled else "('kept')"
    return f"""select s.pair_id, s.conversation,
                      if(d.status = 'flipped', s.rejected, s.chosen) as chosen,
                      if(d.status = 'flipped', s.chosen, s.rejected) as rejected, s.source
               from silver_pairs as s join read_parquet({lit(decisions)}) as d using (pair_id)
               where d.status in {statuses}"""


def run_lake(bench: Bench, rate: float, seed: int, settings: crossfit.CrossFitSettings) -> None:
    out = WORK / "results" / f"noise-{round(rate * 100):02d}" / f"seed-{seed}"
    if read_json(out / "arms.json"):
        return
    start = time.perf_counter()
    lake = lake_for(bench, rate, seed)
    gold = train(lake, "gold", GOLD_SQL, seed, eval_set="holdout")
    members = fold_members(lake, settings, seed)
    decide(bench, lake, members, gold, settings, list(RULES), out, "oof")
    # the in-sample baseline: one RM on the whole pool plays every fold (it saw every pair it scores)
    insample = train(lake, INSAMPLE, stage1.silver_training_sql(lake), seed)
    decide(bench, lake, [(k, 0, insample) for k in range(settings.folds)], gold,
           crossfit.CrossFitSettings(settings.folds, 1), ["paper"], out, INSAMPLE)
    arms = {"noisy": test_accuracy(bench, insample), "gold_rm": test_accuracy(bench, gold),
            "fold_models": float(np.mean([test_accuracy(bench, ref) for _, r, ref in members if r == 0]))}
    for label, rule in [("oof", r) for r in RULES] + [(INSAMPLE, "paper")]:
        decisions = out / f"{label}-{rule}.parquet"
        for arm, recycled in (("curated", False), ("recycled", True)):
            ref = train(lake, f"{arm}-{label}-{rule}", curated_pairs(lake, decisions, recycled), seed)
            arms[f"{arm}/{label}-{rule}"] = test_accuracy(bench, ref)
    arms["seconds"] = round(time.perf_counter() - start, 1)
    write_json(out / "arms.json", arms)
    log(f"noise {rate:.0%} seed {seed}: done in {arms['seconds']:.0f}s; noisy {arms['noisy']:.3f}, curated "
        + ", ".join(f"{k.split('/')[1]} {v:.3f}" for k, v in arms.items() if k.startswith("curated/")))


def run_clean(bench: Bench, seed: int) -> None:
    out = WORK / "results" / "noise-00" / f"seed-{seed}" / "arms.json"
    if not read_json(out):
        lake = lake_for(bench, 0.0, seed)
        write_json(out, {"clean": test_accuracy(bench, train(lake, INSAMPLE, stage1.silver_training_sql(lake), seed))})


def run_minilm(bench: Bench, settings: crossfit.CrossFitSettings) -> None:
    """The fine-tuned MiniLM row (25%, seed 0): its in-sample and out-of-fold p_best from
    benchmarks/noise_minilm.py's scores, written as this lake's pool_scores (p_gold from the
    embedding gold RM, as in the embedding rows) and decided by each rule's own SQL."""
    scores, out = WORK / "minilm" / "scores.parquet", WORK / "minilm" / "decisions"
    if not scores.exists() or all((out / f"{r}.parquet").exists() for r in
                                  ["insample-paper"] + [f"oof-{rule}" for rule in RULES]):
        return
    lake = lake_for(bench, 0.25, 0)
    gold = rm_models.resolve(lake, "gold")
    with duckdb.connect() as con:
        for label, column in (("insample", "p_insample"), ("oof", "p_oof")):
            table = con.execute(f"""
                select m.pair_id, 0::int as shard, m.fold::int as fold, m.{column} as p_best,
                       0.0::double as p_best_spread, 1::int as members, g.p_chosen as p_gold,
                       m.{column} <= 0.5 as needs_judges, 'minilm-{label}' as best_model, 'v001' as best_version,
                       'gold' as gold_model, '{gold.version}' as gold_version
                from read_parquet({lit(scores)}) as m
                join read_parquet({lit(part_path(lake, gold, 'silver_pairs', shard_key(0)))}) as g using (pair_id)
                order by m.pair_id""").fetch_arrow_table().cast(schemas.POOL_SCORES)
            with atomic_path(pool_scores_part(lake, 0)) as tmp:
                pq.write_table(table, tmp)
            for rule in ["paper"] if label == "insample" else list(RULES):
                filter_shard(lake, 0, FilterSettings(rule=rule), n_shards=1)
                outcomes(bench, lake, out / f"{label}-{rule}.parquet")
    log(f"MiniLM row: decisions under {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.25, 0.10, 0.40])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--folds", type=int, default=crossfit.N_FOLDS)
    parser.add_argument("--repeats", type=int, default=crossfit.N_REPEATS)
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    settings = crossfit.CrossFitSettings(args.folds, args.repeats)
    start = time.perf_counter()
    if not args.report_only:
        for seed in args.seeds:
            bench = bench_for(seed, args.data)
            run_clean(bench, seed)
            for rate in args.noise:
                run_lake(bench, rate, seed, settings)
            if seed == 0:
                run_minilm(bench, settings)
        with (WORK / "runs.jsonl").open("a") as f:
            f.write(json.dumps({"command": " ".join(sys.argv), "wall_seconds": round(time.perf_counter() - start, 1),
                                "load_average": os.getloadavg(),
                                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
    from benchmarks.noise_report import write_report

    write_report(WORK, RESULTS, {"noise": args.noise, "seeds": args.seeds, "folds": args.folds,
                                 "repeats": args.repeats, "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                                                                     f"Python {platform.python_version()}"})


if __name__ == "__main__":
    main()
