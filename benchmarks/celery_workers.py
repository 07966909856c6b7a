"""Stage 2 under Dagster's Celery executor: the same shards with 1 and with 2 workers, in one run
of this script, turn about (ABBA), on a real Redis and real dagster-celery workers.

    PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/celery_workers.py --lake /path/to/demo/lake

--lake: a lake where Stage 1 and the gold RM are done (after `synpref demo`); it is not changed:
each measurement runs on a fresh copy with Stage 2's shard outputs removed (the judges' votes
kept, so the judge steps only confirm that nothing is left to judge). Each measurement is one
`dagster asset materialize` of pool_scores, pool_judgements and filtered_pairs over every
shard. Writes a JSON and a Markdown table under benchmarks/results/.
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

from dagster_project.celery_cluster import LocalCluster, stage2_run_config
from dagster_project.run_events import shard_steps, step_records
from synpref.lake import Lake
from synpref.shards import shard_keys
from synpref.stage2 import reset_shards

ROOT = Path(__file__).resolve().parents[1]
OPS = ("score_shard", "judge_shard", "filter_one_shard")


def measure(cluster: LocalCluster, source: Lake, work: Path, workers: int) -> dict:
    lake = Lake.at(work / "lake")
    shutil.rmtree(lake.root, ignore_errors=True)
    shutil.copytree(source.root, lake.root, symlinks=True)
    reset_shards(lake)
    config = work / "run.yaml"
    config.write_text(yaml.safe_dump(stage2_run_config(cluster.settings, lake.root)))
    keys = shard_keys()
    started = time.time()
    done = subprocess.run(
        ["env", "--default-signal=INT,TERM", str(Path(sys.executable).with_name("dagster")), "asset", "materialize",
         "-m", "dagster_project.definitions", "--select", "pool_scores,pool_judgements,filtered_pairs",
         "--partition-range", f"{keys[0]}...{keys[-1]}", "-c", str(config)],
        cwd=ROOT, env=cluster.env, capture_output=True, text=True, timeout=1800)
    if done.returncode:
        raise RuntimeError(done.stdout[-3000:] + done.stderr[-3000:])
    with dg.DagsterInstance.from_config(cluster.env["DAGSTER_HOME"]) as instance:
        record = next(r for r in instance.get_run_records(limit=5) if r.create_timestamp.timestamp() >= started)
        records = step_records(instance, record.dagster_run.run_id)
    con = duckdb.connect()
    pairs = con.execute(f"select count(*) from read_parquet('{lake.table_glob('pool_scores')}')").fetchone()[0]
    con.close()
    steps = {op: {shard: {"worker": r.workers[-1].split("@")[0], "seconds": round(r.succeeded - r.started, 2)}
                  for shard, r in sorted(shard_steps(records, op).items())} for op in OPS}
    wall = record.end_time - record.start_time
    return {"workers": workers, "run_id": record.dagster_run.run_id, "run_wall_s": round(wall, 2), "pairs": pairs,
            "pairs_per_s": round(pairs / wall, 2), "steps": steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", required=True, type=Path)
    parser.add_argument("--order", default="1221", help="worker counts in turn (ABBA by default)")
    parser.add_argument("--out", default=ROOT / "benchmarks" / "results" / "celery_workers", type=Path)
    args = parser.parse_args()
    source = Lake.at(args.lake)
    with tempfile.TemporaryDirectory(prefix="celery-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "home").mkdir()
        env = {**os.environ, "DAGSTER_HOME": str(tmp / "home")}
        runs = []
        with LocalCluster(tmp / "cluster", env) as cluster:
            cluster.start_worker("w1")
            for n in map(int, args.order):
                for name in [f"w{i}" for i in range(2, n + 1)]:  # start the second worker, or stop it
                    if name not in cluster.workers:
                        cluster.start_worker(name)
                for name in [w for w in cluster.workers if int(w[1:]) > n]:
                    cluster.stop_worker(name)
                load = os.getloadavg()[0]
                runs.append({**measure(cluster, source, tmp, n), "load_avg_1m_before": round(load, 2)})
                print(f"{n} worker(s): {runs[-1]['run_wall_s']} s, {runs[-1]['pairs_per_s']} pairs/s", flush=True)
    write(args.out, runs)


def _ratio(runs: list[dict]) -> float:
    one = statistics.mean(r["run_wall_s"] for r in runs if r["workers"] == 1)
    two = statistics.mean(r["run_wall_s"] for r in runs if r["workers"] == 2)
    return round(one / two, 2)


def write(out: Path, runs: list[dict]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
               "ratio_1_over_2_workers": _ratio(runs), "runs": runs}
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    lines = [f"Stage 2 under Celery ({summary['machine']}); ratio of mean run walls, 1 worker / 2 workers: "
             f"**{summary['ratio_1_over_2_workers']}x**", "",
             "| turn | workers | run wall (s) | pool pairs/s | load avg before | shard steps per worker | "
             "score_shard s (median) | judge_shard s (median) | filter_one_shard s (median) |",
             "|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for i, r in enumerate(runs, 1):
        per_worker: dict[str, int] = {}
        for op in OPS:
            for step in r["steps"][op].values():
                per_worker[step["worker"]] = per_worker.get(step["worker"], 0) + 1
        medians = [statistics.median(s["seconds"] for s in r["steps"][op].values()) for op in OPS]
        lines.append(f"| {i} | {r['workers']} | {r['run_wall_s']} | {r['pairs_per_s']} | {r['load_avg_1m_before']} | "
                     f"{', '.join(f'{w}: {n}' for w, n in sorted(per_worker.items()))} | "
                     + " | ".join(f"{m:.2f}" for m in medians) + " |")
    lines += ["", "Which worker ran which shard (2-worker turns):", ""]
    for i, r in enumerate(runs, 1):
        if r["workers"] == 2:
            lines.append(f"- turn {i}: " + "; ".join(
                f"{op} " + ", ".join(f"{k[-3:]}→{s['worker']}" for k, s in r["steps"][op].items()) for op in OPS))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
