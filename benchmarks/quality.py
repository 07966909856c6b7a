"""Benchmark: does Stage 2 clean injected label noise out of real human-labelled pairs?

    HF_HUB_OFFLINE=1 PYTHONPATH=. nice -n 10 .venv/bin/python benchmarks/quality.py

Real pairs (../shared/data: hh-rlhf harmless-base test + the eight LLMBar sets, raw -> silver) are
split, seeded, into a gold set (human-verified: the original labels), a held-out test set that no
step ever sees, and a pool, into which label flips are injected at each noise level
(benchmarks/quality_split.py). Per noise level and seed, one lake goes through the pipeline's own
functions:
  1. raw_pairs (the gold and noisy pool rows) -> silver_pairs (the project's silver stage);
  2. the gold split's original labels imported into human_labels (source `import:original_labels`),
     then gold_pairs built from them;
  3. the round RM ("current best RM") trained on the pool with gold picking the checkpoint, as
     Stage 1 does, evaluated into rm_eval: arm (a), the RM of the noisy pool;
  4. the gold RM trained on gold_pairs, initialised from the best round RM (as `gold_reward_model`);
  5. Stage 2: pool_scores (both RMs) and filtered_pairs (the filter SQL, recycling on); the LLM
     judges are off on this CPU machine, so pairs the best RM does not confirm have no verdict;
  6. RMs trained with the same trainer and settings on (b) the kept pairs and (c) the kept plus the
     recycled (flipped) pairs. Arm (d), the clean pool, is the noise-0 lake's round RM (once per seed).
Every RM is then scored on the test set. Each step is skipped when its output exists (trained
models are reused by fingerprint, results are JSON files written atomically), so a killed run resumes.
Writes benchmarks/results/quality.md, quality.json and the plots (benchmarks/quality_report.py).
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

from benchmarks import quality_split as qs  # noqa: E402
from benchmarks.quality_metrics import write_pool_outcomes  # noqa: E402
from benchmarks.rm_accuracy import SHARED, build_lake  # noqa: E402
from models.launch import LaunchConfig  # noqa: E402
from models.scorer import Scorer  # noqa: E402
from models.train_config import TrainConfig, load_config, make_config, parse_value  # noqa: E402
from synpref.lake.duck import lit  # noqa: E402
from synpref.rm import rm_models  # noqa: E402
from synpref.gold import stage1  # noqa: E402
from synpref.filtered.filtering import FilterSettings, filter_shard  # noqa: E402
from synpref.gold.gold_pairs import build_gold_pairs  # noqa: E402
from synpref.gold.human_labels import append_labels  # noqa: E402
from synpref.lake import Lake, atomic_path  # noqa: E402
from synpref.rm.rm_eval import evaluate_reward_model  # noqa: E402
from synpref.rm.rm_training import train_reward_model  # noqa: E402
from synpref.silver.pool import build_silver  # noqa: E402
from synpref.raw.sources import load_sources  # noqa: E402
from synpref.rm.crossfit import N_FOLDS, CrossFitSettings  # noqa: E402
from synpref.filtered.stage2 import score_pool_shard  # noqa: E402

WORK = HERE / "_work" / "quality"
RESULTS = HERE / "results"
ROUND_RM, GOLD_RM = "round-1", "gold"
# Every RM's settings (over models/config/reward_model.yaml), sized for a shared 2-core CPU: ~40
# trainings must fit in about an hour (benchmarks/README.md has the measured speeds)
TRAIN_DEFAULTS = {"max_length": 64, "epochs": 1, "learning_rate": 1e-4, "warmup_steps": 5, "global_batch_size": 16,
                  "micro_batch_size": 16, "eval_every": 0, "save_every": 0}
ORIGINAL_LABELS = "original_labels"
KEPT_SQL = """select s.pair_id, s.conversation, s.chosen, s.rejected, s.source
              from silver_pairs as s join filtered_pairs as f using (pair_id)
              where f.status = 'kept' and not f.human_verified"""
# kept plus recycled pairs, swapped the way curated_export.sql swaps them
RECYCLED_SQL = """select s.pair_id, s.conversation,
                         if(f.status = 'flipped', s.rejected, s.chosen) as chosen,
                         if(f.status = 'flipped', s.chosen, s.rejected) as rejected, s.source
                  from silver_pairs as s join filtered_pairs as f using (pair_id)
                  where f.status in ('kept', 'flipped') and not f.human_verified"""


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", flush=True)


def write_json(path: Path, content) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(content, indent=2, default=str))


def read_json(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


class Bench:
    """The benchmark's folders and shared inputs: base lake, split, test set, training settings."""

    def __init__(self, work: Path, data: Path, sizes: qs.SplitSizes, split_seed: int, config: TrainConfig):
        self.work, self.config, self.split_seed = work, config, split_seed
        self.base = Lake.at(work / "base" / "lake")
        build_lake(self.base, data, work / "base")
        self.deco = load_sources(work / "base" / "sources.yaml").decontamination
        self.split_file, self.test_file = work / "split.parquet", work / "test.parquet"
        if not self.test_file.exists():
            with duckdb.connect() as con:
                qs.split_pairs(con, self.base.table_glob("silver_pairs"), sizes, split_seed)
                with atomic_path(self.split_file) as tmp:
                    con.execute(f"copy split to {lit(tmp)} (format parquet)")
                qs.write_test_set(con, self.base.table_glob("silver_pairs"), self.test_file)
        self.test = duckdb.sql(f"select conversation, chosen, rejected, source "
                               f"from read_parquet({lit(self.test_file)})").to_arrow_table().to_pydict()

    def connect(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        con.execute(f"create temp view split as select * from read_parquet({lit(self.split_file)})")
        return con

    def lake(self, rate: float, seed: int) -> Lake:
        """The lake of one noise level and seed: gold + noisy pool through raw -> silver -> gold_pairs."""
        lake = Lake.at(self.work / f"noise-{round(rate * 100):02d}" / f"seed-{seed}" / "lake")
        if lake.read_manifest("benchmark/ready"):
            return lake
        with self.connect() as con:
            flips = qs.write_noisy_raw(con, self.base.table_glob("raw_pairs"), lake, rate)
            build_silver(lake, self.deco)
            gold_ids = [pid for (pid,) in con.execute("select pair_id from split where split = 'gold'").fetchall()]
        # the gold split's own labels are human ones (hh-rlhf crowdworkers, LLMBar experts): imported as such
        append_labels(lake, [{"label_id": f"original:{pid}", "pair_id": pid, "annotator": "original_label",
                              "choice": "chosen", "guideline_version": ORIGINAL_LABELS} for pid in gold_ids],
                      source=f"import:{ORIGINAL_LABELS}")
        gold = build_gold_pairs(lake)
        lake.write_manifest("benchmark/ready", {"flips": flips, "gold_pairs": gold.rows})
        return lake

    def train(self, lake: Lake, name: str, pairs_sql: str, seed: int, eval_set: str = "gold",
              backbone: str | None = None) -> rm_models.ModelRef:
        config = make_config(self.config, seed=seed, backbone=backbone)
        summary = train_reward_model(lake, name, pairs_sql, config, eval_set=eval_set, holdout_fraction=0.2,
                                     launch=LaunchConfig(accelerator="cpu"), log=log)
        log(f"{name} {summary.version}: {summary.status}, {summary.train_pairs:,} pairs, {summary.seconds:.0f}s")
        return rm_models.resolve(lake, name, summary.version)

    def test_accuracy(self, ref: rm_models.ModelRef, out: Path) -> dict:
        """Held-out accuracy of a model (cached in `out`): overall and by source."""
        done = read_json(out)
        if done and done["model_dir"] == str(ref.version_dir):
            return done
        start = time.perf_counter()
        rc, rr, _ = Scorer(ref.path).score(self.test["conversation"], self.test["chosen"], self.test["rejected"])
        right = rc > rr
        by_source = {}
        for source in sorted(set(self.test["source"])):
            mask = [s == source for s in self.test["source"]]
            by_source[source] = float(right[mask].mean())
        metrics = ref.metrics
        result = {"model": ref.name, "version": ref.version, "model_dir": str(ref.version_dir),
                  "test_pairs": len(right), "accuracy": float(right.mean()), "by_source": by_source,
                  "train_pairs": ref.spec["train"]["rows"], "best_step": metrics["best"]["step"],
                  "steps": metrics["steps"], "eval_accuracy": metrics["best"].get("accuracy"),
                  "train_seconds": metrics.get("train_seconds"), "score_seconds": round(time.perf_counter() - start, 1)}
        write_json(out, result)
        return result


def run_clean(bench: Bench, seed: int) -> None:
    """Arm (d): the same training on the pool with no flips (the noise-0 lake)."""
    out = bench.work / "results" / "noise-00" / f"seed-{seed}"
    lake = bench.lake(0.0, seed)
    ref = bench.train(lake, ROUND_RM, stage1.silver_training_sql(lake), seed)
    log(f"clean seed {seed}: test accuracy {bench.test_accuracy(ref, out / 'clean.json')['accuracy']:.3f}")


def run_noisy(bench: Bench, rate: float, seed: int, settings: FilterSettings) -> None:
    """Stage 2 as built on one noisy pool, then arms (a)-(c)."""
    out = bench.work / "results" / f"noise-{round(rate * 100):02d}" / f"seed-{seed}"
    lake = bench.lake(rate, seed)
    best = bench.train(lake, ROUND_RM, stage1.silver_training_sql(lake), seed)
    if not lake.has_table("rm_eval") or not any(lake.table_dir("rm_eval").glob(f"{ROUND_RM}--{best.version}.*")):
        evaluate_reward_model(lake, best, lambda: Scorer(best.path), log=log)
    name, version, gold_accuracy = stage1.best_round_model(lake)
    best = rm_models.resolve(lake, name, version)
    bench.test_accuracy(best, out / "noisy.json")
    # the gold RM as the gold_reward_model asset trains it: gold_pairs, 20% held out, from the best round RM
    gold = bench.train(lake, GOLD_RM, "select pair_id, conversation, chosen, rejected, source from gold_pairs",
                       seed, eval_set="holdout", backbone=str(best.path))  # (the asset's default is now independent)
    bench.test_accuracy(gold, out / "gold_rm.json")
    if not read_json(out / "stage2.json"):
        start = time.perf_counter()
        # in-sample, as this benchmark measured it: the round RM stands in for every fold model
        scores = score_pool_shard(lake, 0, [(k, 0, best) for k in range(N_FOLDS)], gold, lambda ref: Scorer(ref.path),
                                  CrossFitSettings(N_FOLDS, 1), log=log, n_shards=1)
        decided = filter_shard(lake, 0, settings, n_shards=1, log=log)
        write_json(out / "stage2.json", {"best": [best.name, best.version, gold_accuracy],
                                         "gold": [gold.name, gold.version], "needs_judges": scores.needs_judges,
                                         "statuses": decided.statuses, "reasons": decided.reasons,
                                         "seconds": round(time.perf_counter() - start, 1)})
    if not (out / "pool.parquet").exists():
        with bench.connect() as con:
            write_pool_outcomes(con, lake, bench.base.table_glob("silver_pairs"), out / "pool.parquet")
    curated = bench.train(lake, "curated", KEPT_SQL, seed)
    bench.test_accuracy(curated, out / "curated.json")
    if read_json(out / "stage2.json")["statuses"]["flipped"]:
        recycled = bench.train(lake, "recycled", RECYCLED_SQL, seed)
        bench.test_accuracy(recycled, out / "recycled.json")
    elif not (out / "recycled.json").exists():  # nothing recycled: (c) trains on (b)'s very pairs
        write_json(out / "recycled.json", {**read_json(out / "curated.json"), "same_as": "curated"})


def run_seeds_in_parallel(args, config: TrainConfig) -> None:
    """The seeds in child processes, --jobs at a time (each its own lakes; the split is made first, once)."""
    import subprocess

    Bench(args.work, args.data, qs.SplitSizes(args.gold, args.test, args.pool or None), args.split_seed, config)
    base = [a for a in sys.argv[1:]]
    if "--seeds" in base:  # drop the seeds given; each child gets one
        i = base.index("--seeds")
        j = i + 1
        while j < len(base) and not base[j].startswith("--"):
            j += 1
        base = base[:i] + base[j:]
    pending = list(args.seeds)
    running: list[subprocess.Popen] = []
    while pending or running:
        while pending and len(running) < args.jobs:
            seed = pending.pop(0)
            with (args.work / f"seed-{seed}.log").open("a") as out:
                running.append(subprocess.Popen([sys.executable, __file__, *base, "--seeds", str(seed), "--no-report"],
                                                stdout=out, stderr=subprocess.STDOUT))
            log(f"seed {seed}: started, log in {args.work / f'seed-{seed}.log'}")
        time.sleep(5)
        for child in [c for c in running if c.poll() is not None]:
            running.remove(child)
            if child.returncode:
                raise SystemExit(f"a seed's process failed ({child.returncode}); see its log under {args.work}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.25, 0.10, 0.40])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--gold", type=int, default=200)
    parser.add_argument("--test", type=int, default=400)
    parser.add_argument("--pool", type=int, default=600, help="pool pairs (0: all the rest)")
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--flip-margin", type=float, default=FilterSettings.flip_margin)
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument("--set", dest="settings", nargs="*", default=[], metavar="KEY=VALUE",
                        help=f"training settings over models/config/reward_model.yaml and {TRAIN_DEFAULTS}")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the report and plots go")
    parser.add_argument("--jobs", type=int, default=3, help="seeds run at once, one process each")
    parser.add_argument("--no-report", action="store_true", help=argparse.SUPPRESS)  # a --jobs child
    parser.add_argument("--report-only", action="store_true", help="write the report from finished results")
    args = parser.parse_args()
    overrides = {**TRAIN_DEFAULTS, **{k: parse_value(k, v) for k, v in (s.split("=", 1) for s in args.settings)}}
    config = load_config(None, **overrides)
    start = time.perf_counter()
    if not args.report_only and args.jobs > 1 and len(args.seeds) > 1:
        run_seeds_in_parallel(args, config)
    elif not args.report_only:
        bench = Bench(args.work, args.data, qs.SplitSizes(args.gold, args.test, args.pool or None), args.split_seed, config)
        settings = FilterSettings(recycle_flipped=True, flip_margin=args.flip_margin)
        for i, rate in enumerate(args.noise):  # the first level whole (with the clean arm) before the next
            for seed in args.seeds:
                if i == 0:
                    run_clean(bench, seed)
                run_noisy(bench, rate, seed, settings)
    from benchmarks.quality_report import write_report

    run = {"command": " ".join(sys.argv), "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                                                      f"Python {platform.python_version()}",
           "config": config.to_dict(), "gold": args.gold, "test": args.test, "pool": args.pool,
           "split_seed": args.split_seed, "flip_margin": args.flip_margin, "noise": args.noise, "seeds": args.seeds,
           "wall_seconds": round(time.perf_counter() - start, 1)}
    if args.no_report:
        return
    if not args.report_only:  # every invocation's wall time, so a resumed benchmark reports its total
        with (args.work / "runs.jsonl").open("a") as f:
            f.write(json.dumps({"command": run["command"], "wall_seconds": run["wall_seconds"],
                                "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}) + "\n")
    runs = (args.work / "runs.jsonl").read_text().splitlines() if (args.work / "runs.jsonl").exists() else []
    run["total_wall_seconds"] = sum(json.loads(line)["wall_seconds"] for line in runs)
    if args.report_only and runs:  # the report is of the benchmark's runs, not of this rendering
        run["command"] = json.loads(runs[-1])["command"]
    write_report(args.work, args.results, run)


if __name__ == "__main__":
    main()
