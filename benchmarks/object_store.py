"""The sharded assets with the lake on a local folder and on an S3 object store (SeaweedFS on
this machine, tests/support/object_store.py), turn about (ABBA), in one run of this script.

    PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/object_store.py --lake /path/to/demo/lake

--lake: a lake where Stage 1 and the gold RM are done (after `synpref demo`); it is not changed.
Give it the judge panel the lake was made with (SYNPREF_JUDGES_CONFIG), so that the judge steps
find the votes there and only check that nothing is left to judge.
Each turn runs one phase on a fresh copy, either a local folder or uploaded to the store:
`stage2` (the stage2 job: pool_scores, the judges and filtered_pairs over every shard, Stage 2's shard
outputs removed, the judges' votes kept) or `embeddings` (pair_embeddings into LanceDB, the table
removed), under the multiprocess executor. Both copies must give the same rows. Writes a JSON
and a Markdown table under benchmarks/results/.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the local S3 store is the tests' (tests/support/)

from dagster_project.run_events import shard_steps, step_records  # noqa: E402
from synpref.lake.duck import lit  # noqa: E402
from synpref.silver import vectors  # noqa: E402
from synpref.lake.duck import connect as duck_connect  # noqa: E402
from synpref.lake import CACHE_ENV, Lake, copy_lake, remove  # noqa: E402
from synpref.lake.shards import shard_keys  # noqa: E402
from synpref.filtered.stage2 import reset_shards  # noqa: E402
from tests.support.object_store import LocalObjectStore  # noqa: E402

PHASES = {
    # phase: (selection, partitioned, shard ops, how the copy is made ready, rows compared)
    "stage2": ("stage2",  # the job: pool_scores, judge_queue, judge_votes, silver_labels, filtered_pairs
               True, ("score_shard", "judge_shard", "filter_one_shard"),
               reset_shards, ("filtered_pairs", "pair_id, status, reason, p_best, p_gold")),
    "embeddings": ("pair_embeddings", False, ("embed_pool_shard",),
                   lambda lake: remove(lake.root / "lancedb", recursive=True), "lancedb"),
}


def measure(source: Lake, work: Path, where: str, phase: str, turn: int, env: dict) -> dict:
    select, partitioned, ops, reset, compare = PHASES[phase]
    copy = Lake.at(work / f"copy-{turn}")
    shutil.copytree(source.root, copy.root, symlinks=True)
    reset(copy)
    started = time.perf_counter()
    lake = copy
    if where == "store":
        lake = Lake.at(f"s3://bench/turn-{turn}-{phase}")  # a fresh prefix: no earlier phase's objects
        copy_lake(copy, lake)
    upload_s = time.perf_counter() - started if where == "store" else 0.0
    keys = shard_keys()
    # the stage2 job over every shard (one run), else `asset materialize` of the selection
    what = (["job", "execute", "-m", "dagster_project.definitions", "-j", select, "--tags",
             json.dumps({"dagster/asset_partition_range_start": keys[0],
                         "dagster/asset_partition_range_end": keys[-1]})]
            if partitioned else ["asset", "materialize", "-m", "dagster_project.definitions", "--select", select])
    started = time.time()
    done = subprocess.run(
        ["env", "--default-signal=INT,TERM", str(Path(sys.executable).with_name("dagster")), *what],
        cwd=ROOT, env={**env, "SYNPREF_LAKE": str(lake.root)}, capture_output=True, text=True, timeout=1800)
    if done.returncode:
        raise RuntimeError(done.stdout[-3000:] + done.stderr[-3000:])
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        record = next(r for r in instance.get_run_records(limit=5) if r.create_timestamp.timestamp() >= started)
        records = step_records(instance, record.dagster_run.run_id)
    steps = {op: [round(r.succeeded - r.started, 2) for r in shard_steps(records, op).values()] for op in ops}
    if compare == "lancedb":
        rows = sorted((r["pair_id"], r["text"]) for r in vectors.open_table(lake).to_arrow().to_pylist())
    else:
        con = duck_connect(lake)
        rows = con.execute(f"select {compare[1]} from read_parquet({lit(lake.table_glob(compare[0]))}) "
                           f"order by pair_id").fetchall()
        con.close()
    shutil.rmtree(copy.root, ignore_errors=True)
    return {"phase": phase, "where": where, "run_wall_s": round(record.end_time - record.start_time, 2),
            "upload_s": round(upload_s, 2), "step_s": steps, "pairs": len(rows), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lake", required=True, type=Path)
    parser.add_argument("--order", default="LSSL", help="L (local folder) and S (store) in turn; ABBA by default")
    parser.add_argument("--phases", default="stage2,embeddings", help=f"comma-separated, of {sorted(PHASES)}")
    parser.add_argument("--out", default=ROOT / "benchmarks" / "results" / "object_store", type=Path)
    args = parser.parse_args()
    source = Lake.at(args.lake)
    runs = []
    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "home").mkdir()
        with LocalObjectStore(tmp / "store") as store:
            store.make_bucket("bench")
            env = {**os.environ, **store.env, "DAGSTER_HOME": str(tmp / "home"), CACHE_ENV: str(tmp / "cache")}
            os.environ.update({k: env[k] for k in (*store.env, CACHE_ENV)})
            for turn, letter in enumerate(args.order, 1):
                for phase in args.phases.split(","):
                    where = {"L": "local", "S": "store"}[letter]
                    runs.append(measure(source, tmp, where, phase, turn, env))
                    print(f"{phase} on {where}: {runs[-1]['run_wall_s']} s", flush=True)
    write(args.out, runs)


def write(out: Path, runs: list[dict]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
               "ratio_store_over_local": {}, "same_rows": {}, "runs": []}
    lines = []
    for phase in dict.fromkeys(r["phase"] for r in runs):
        mine = [r for r in runs if r["phase"] == phase]
        wall = {w: statistics.mean(r["run_wall_s"] for r in mine if r["where"] == w) for w in ("local", "store")}
        summary["ratio_store_over_local"][phase] = round(wall["store"] / wall["local"], 2)
        summary["same_rows"][phase] = len({json.dumps(r["rows"], default=str) for r in mine}) == 1
    lines += [f"Sharded assets, the lake on a local folder vs on S3 (SeaweedFS on 127.0.0.1; {summary['machine']}); "
              "ratio of mean run walls, store / local: "
              + ", ".join(f"{p} **{x}x**" for p, x in summary["ratio_store_over_local"].items())
              + "; same rows on both: " + ", ".join(f"{p} {s}" for p, s in summary["same_rows"].items()), "",
              "| turn | phase | lake | pairs out | run wall (s) | upload before (s) | shard step s (median, per op) |",
              "|---:|---|---|---:|---:|---:|---|"]
    for i, r in enumerate(runs, 1):
        medians = ", ".join(f"{op} {statistics.median(s):.2f}" for op, s in r["step_s"].items())
        lines.append(f"| {i} | {r['phase']} | {r['where']} | {r['pairs']} | {r['run_wall_s']} | {r['upload_s']} | "
                     f"{medians} |")
        summary["runs"].append({k: v for k, v in r.items() if k != "rows"})
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
