"""Benchmark: Stage 2 over a generated pool, shard by shard, in bounded memory.

    .venv/bin/python benchmarks/stage2_shards.py --pairs 220000 --shard-counts 2 8

Generates the seeded demo data, ingests it and builds silver (the pool), then runs Stage 2's
per-shard work the way the pipeline's steps do: both reward models score the shard
(`rm_predictions`, streamed from DuckDB in chunks, length-bucketed batches), the scores are
joined into `pool_scores`, and the filter decides (`filtered_pairs`). Each shard runs in a
fresh process, whose peak RSS is recorded, once with the pool split into 2 shards and once
into 8: a stage that held its shard (or the pool) in memory would need about 4x more with 2.
The tiny random encoder (models/tiny_rm.py) is both RMs, so each pair is scored once (on this
shared 2-core machine scoring twice would double a run that already takes long): memory
behaviour, not accuracy, is measured; the LLM judges are not run (no pair gets
a verdict, so pairs the best RM does not confirm are dropped as not_judged).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def child(lake_root: str, model_dir: str, shard: int, n_shards: int) -> None:
    """One shard's Stage 2 work; prints its figures as JSON (in its own process)."""
    from models.scorer import Scorer
    from synpref.rm import rm_models
    from synpref.filtered.filtering import FilterSettings, filter_shard
    from synpref.lake import Lake
    from synpref.rm.crossfit import N_FOLDS, CrossFitSettings
    from synpref.filtered.stage2 import score_pool_shard

    lake = Lake.at(lake_root)
    # one model as both RMs: the gold RM's part is the best RM's (same name and version), so
    # each pair is scored once; the join, the filter and the memory path are Stage 2's own
    best = gold = rm_models.external(model_dir, "rm")
    start = time.perf_counter()
    # ... and as every fold model (one repeat): the out-of-fold path, with each pair scored once
    settings = CrossFitSettings(folds=N_FOLDS, repeats=1)
    scores = score_pool_shard(lake, shard, [(k, 0, best) for k in range(N_FOLDS)], gold, lambda ref: Scorer(ref.path),
                              settings, n_shards=n_shards)
    scored = time.perf_counter() - start
    decided = filter_shard(lake, shard, FilterSettings(), n_shards=n_shards, force=True)
    print(json.dumps({"shard": shard, "pairs": scores.pairs, "score_s": round(scored, 1),
                      "filter_s": decided.seconds, "statuses": decided.statuses,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def build_pool(work: Path, pairs: int) -> Path:
    from synpref.demo import generate_demo
    from synpref.raw.ingest import ingest_sources
    from synpref.lake import Lake
    from synpref.silver.pool import build_silver
    from synpref.raw.sources import load_sources

    lake = Lake.at(work / "lake")
    if not lake.has_table("silver_pairs"):
        summary = generate_demo(work / "landing", pairs=pairs, seed=0)
        config = load_sources(summary.sources_file)
        ingest_sources(lake, config)
        build_silver(lake, config.decontamination)
    return lake.root


def run_shards(lake_root: Path, model_dir: Path, n_shards: int, max_shards: int | None = None) -> list[dict]:
    from synpref.lake import Lake
    from synpref.filtered.stage2 import reset_shards

    lake = Lake.at(lake_root)
    reset_shards(lake)  # each split starts from the pool alone
    results = []
    for shard in range(min(n_shards, max_shards or n_shards)):
        out = subprocess.run([sys.executable, __file__, "--child", str(lake_root), str(model_dir), str(shard),
                              str(n_shards)], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(HERE.parent)})
        if out.returncode:
            raise RuntimeError(out.stderr[-3000:])
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"  {n_shards} shards, shard {shard}: {results[-1]}", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=220_000, help="generated records (the pool is ~93% of them)")
    ap.add_argument("--shard-counts", type=int, nargs="+", default=[2, 8])
    ap.add_argument("--work", type=Path, default=HERE / "_work" / "stage2_shards")
    ap.add_argument("--max-shards", type=int, default=None,
                    help="run only the first N shards of each split (a sample, where time is short)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        lake_root, model_dir, shard, n_shards = args.child
        child(lake_root, model_dir, int(shard), int(n_shards))
        return
    from models.tiny_rm import make_tiny_encoder

    args.work.mkdir(parents=True, exist_ok=True)
    model_dir = make_tiny_encoder(args.work / "tiny-encoder")
    start = time.perf_counter()
    lake_root = build_pool(args.work, args.pairs)
    print(f"pool built in {time.perf_counter() - start:.0f} s", flush=True)
    rows = []
    for n in args.shard_counts:
        shards = run_shards(lake_root, model_dir, n, args.max_shards)
        pool = sum(s["pairs"] for s in shards)
        rss = [s["peak_rss_mb"] for s in shards]
        rows.append((n, pool, pool // len(shards), max(rss), sorted(rss)[len(rss) // 2], sum(s["score_s"] for s in shards),
                     sum(s["filter_s"] for s in shards)))
    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
             f"RMs: the tiny encoder as both; judges not run.", "",
             "| shards | pairs run | pairs per shard | peak RSS per shard, max (MB) | median (MB) | "
             "scoring s (all shards) | filter s (all shards) |", "|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {n} | {pool:,} | {per:,} | {mx:,.0f} | {med:,.0f} | {sc:,.0f} | {fi:,.1f} |"
              for n, pool, per, mx, med, sc, fi in rows]
    if len(rows) >= 2:
        lines += ["", f"Peak RSS per shard with {rows[0][0]} shards relative to {rows[-1][0]}: "
                      f"{rows[0][3] / rows[-1][3]:.2f}x for {rows[0][2] / rows[-1][2]:.1f}x the pairs per shard."]
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "stage2_shards.md").write_text(table)


if __name__ == "__main__":
    main()
