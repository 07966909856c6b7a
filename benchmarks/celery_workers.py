"""The sharded assets under Dagster's Celery executor: the same shards with 1 and with 2 workers,
in one run of this script, turn about (ABBA), on a real Redis and real dagster-celery workers.

    PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/celery_workers.py --lake /path/to/demo/lake

--lake: a lake where Stage 1 and the gold RM are done (after `synpref demo`); it is not changed:
each measurement runs on a fresh copy. A turn is two runs: `stage2`, one `dagster job execute`
of the stage2 job (pool_scores, judge_queue, judge_votes, silver_labels, filtered_pairs) over every
shard, with Stage 2's shard outputs removed (the judges' votes kept, so the judge steps only
confirm that nothing is left to judge); and `embeddings`, pair_embeddings (one step per shard) with the LanceDB table
removed. Writes a JSON and a Markdown table under benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
import duckdb
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the local Redis + workers are the tests' (tests/support/)

from dagster_project.run_events import shard_steps, step_records  # noqa: E402
from synpref.lake.duck import lit  # noqa: E402
from synpref.lake import Lake  # noqa: E402
from synpref.lake.shards import shard_keys  # noqa: E402
from synpref.filtered.stage2 import reset_shards  # noqa: E402
from tests.support.celery_cluster import LocalCluster, stage2_run_config  # noqa: E402

OPS = ("score_shard", "judge_shard", "filter_one_shard")


PHASES = {
    # phase: (selection, extra CLI arguments, the shard ops, how the copy is made ready)
    "stage2": ("stage2",  # the job: pool_scores, judge_queue, judge_votes, silver_labels, filtered_pairs
               True, OPS, reset_shards),
    "embeddings": ("pair_embeddings", False, ("embed_pool_shard",),
                   lambda lake: shutil.rmtree(lake.root / "lancedb", ignore_errors=True)),
}


def measure(cluster: LocalCluster, source: Lake, work: Path, workers: int, phase: str) -> dict:
    select, partitioned, ops, reset = PHASES[phase]
    lake = Lake.at(work / "lake")
    shutil.rmtree(lake.root, ignore_errors=True)
    shutil.copytree(source.root, lake.root, symlinks=True)
    reset(lake)
    config = work / "run.yaml"
    config.write_text(yaml.safe_dump(stage2_run_config(cluster.settings, lake.root)))
    keys = shard_keys()
    # the stage2 job over every shard (one run), else `asset materialize` of the selection
    what = (["job", "execute", "-m", "dagster_project.definitions", "-j", select, "--tags",
             json.dumps({"dagster/asset_partition_range_start": keys[0],
                         "dagster/asset_partition_range_end": keys[-1]})]
            if partitioned else ["asset", "materialize", "-m", "dagster_project.definitions", "--select", select])
    started = time.time()
    done = subprocess.run(
        ["env", "--default-signal=INT,TERM", str(Path(sys.executable).with_name("dagster")), *what,
         "-c", str(config)],
        cwd=ROOT, env=cluster.env, capture_output=True, text=True, timeout=1800)
    if done.returncode:
        raise RuntimeError(done.stdout[-3000:] + done.stderr[-3000:])
    with dg.DagsterInstance.from_config(cluster.env["DAGSTER_HOME"]) as instance:
        record = next(r for r in instance.get_run_records(limit=5) if r.create_timestamp.timestamp() >= started)
        records = step_records(instance, record.dagster_run.run_id)
    with duckdb.connect() as con:
        pairs = con.execute(f"select count(*) from read_parquet({lit(lake.table_glob('silver_pairs'))})").fetchone()[0]
    steps = {op: {shard: {"worker": r.workers[-1].split("@")[0], "seconds": round(r.succeeded - r.started, 2)}
                  for shard, r in sorted(shard_steps(records, op).items())} for op in ops}
    wall = record.end_time - record.start_time
    return {"phase": phase, "workers": workers, "run_id": record.dagster_run.run_id, "run_wall_s": round(wall, 2),
            "pairs": pairs, "pairs_per_s": round(pairs / wall, 2), "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", required=True, type=Path)
    parser.add_argument("--order", default="1221", help="worker counts in turn (ABBA by default)")
    parser.add_argument("--threads-per-worker", type=int, default=1,
                        help="torch/BLAS threads per worker: a worker stands for a machine, so two workers "
                             "must not each take every core of this one (0: the libraries' default)")
    parser.add_argument("--phases", default="stage2,embeddings", help=f"comma-separated, of {sorted(PHASES)}")
    parser.add_argument("--out", default=ROOT / "benchmarks" / "results" / "celery_workers", type=Path)
    args = parser.parse_args()
    phases = args.phases.split(",")
    if unknown := set(phases) - set(PHASES):
        parser.error(f"unknown phases {sorted(unknown)}; known: {sorted(PHASES)}")
    source = Lake.at(args.lake)
    with tempfile.TemporaryDirectory(prefix="celery-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "home").mkdir()
        env = {**os.environ, "DAGSTER_HOME": str(tmp / "home")}
        if args.threads_per_worker:
            env.update({v: str(args.threads_per_worker) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
        runs = []
        with LocalCluster(tmp / "cluster", env) as cluster:
            cluster.start_worker("w1")
            for n in map(int, args.order):
                for name in [f"w{i}" for i in range(2, n + 1)]:  # start the second worker, or stop it
                    if name not in cluster.workers:
                        cluster.start_worker(name)
                for name in [w for w in cluster.workers if int(w[1:]) > n]:
                    cluster.stop_worker(name)
                for phase in phases:
                    load = os.getloadavg()[0]
                    runs.append({**measure(cluster, source, tmp, n, phase), "load_avg_1m_before": round(load, 2)})
                    print(f"{phase}, {n} worker(s): {runs[-1]['run_wall_s']} s, {runs[-1]['pairs_per_s']} pairs/s",
                          flush=True)
    write(args.out, runs)


def _ratio(runs: list[dict]) -> float:
    one = statistics.mean(r["run_wall_s"] for r in runs if r["workers"] == 1)
    two = statistics.mean(r["run_wall_s"] for r in runs if r["workers"] == 2)
    return round(one / two, 2)


def write(out: Path, runs: list[dict]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    phases = list(dict.fromkeys(r["phase"] for r in runs))
    summary = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
               "ratio_1_over_2_workers": {p: _ratio([r for r in runs if r["phase"] == p]) for p in phases},
               "runs": runs}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    lines = [f"Sharded assets under Celery ({summary['machine']}); ratio of mean run walls, 1 worker / 2 workers: "
             + ", ".join(f"{p} **{x}x**" for p, x in summary["ratio_1_over_2_workers"].items()), "",
             "| turn | phase | workers | run wall (s) | pool pairs/s | load avg before | shard steps per worker | "
             "shard step s (median, per op) |",
             "|---:|---|---:|---:|---:|---:|---|---|"]
    for i, r in enumerate(runs, 1):
        per_worker: dict[str, int] = {}
        for steps in r["steps"].values():
            for step in steps.values():
                per_worker[step["worker"]] = per_worker.get(step["worker"], 0) + 1
        medians = {op: statistics.median(s["seconds"] for s in steps.values()) for op, steps in r["steps"].items()}
        lines.append(f"| {i} | {r['phase']} | {r['workers']} | {r['run_wall_s']} | {r['pairs_per_s']} | "
                     f"{r['load_avg_1m_before']} | {', '.join(f'{w}: {n}' for w, n in sorted(per_worker.items()))} | "
                     + ", ".join(f"{op} {m:.2f}" for op, m in medians.items()) + " |")
    lines += ["", "Which worker ran which shard (2-worker turns):", ""]
    for i, r in enumerate(runs, 1):
        if r["workers"] == 2:
            lines.append(f"- turn {i} ({r['phase']}): " + "; ".join(
                f"{op} " + ", ".join(f"{k[-3:]}→{s['worker']}" for k, s in steps.items())
                for op, steps in r["steps"].items()))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
