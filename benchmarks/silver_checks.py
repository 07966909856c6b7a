"""Materialising silver_pairs with its checks, before and after the checks moved into the asset's
own step (issue 20): wall time of `dagster asset materialize --select silver_decisions,silver_pairs,
silver_quarantine` (the silver stage; a lone silver_pairs is the same multi-asset) under the
project's default multiprocess executor, and how much of the run its steps took.

Both versions run on their own copy of the same demo lake, side by side in one process, turns
alternating; "before" is a git worktree of the given commit, run with the same venv (PYTHONPATH).

    .venv/bin/python benchmarks/silver_checks.py --lake "<a finished demo lake>" --before c32526a [--turns 3]
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

REPO = Path(__file__).resolve().parents[1]
SELECT = "silver_decisions,silver_pairs,silver_quarantine"
WORK_STEP = "silver"  # the multi-asset's own step; every other step is a check


def materialize(code: Path, lake: Path, home: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), "SYNPREF_LAKE": str(lake), "DAGSTER_HOME": str(home)}
    start = time.perf_counter()
    done = subprocess.run([str(Path(sys.executable).with_name("dagster")), "asset", "materialize", "--select",
                           SELECT, "-m", "dagster_project.definitions"], cwd=code, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{code}: materialize failed\n{done.stderr[-3000:]}")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_runs(limit=1)[0]
        stats = instance.get_run_step_stats(run.run_id)
        record = instance.get_run_record_by_id(run.run_id)
        run_s = record.end_time - record.start_time
        # the validations' own seconds, wherever they ran (a check step, or inside the asset's step)
        validation = sum(e.dagster_event.asset_check_evaluation_data.metadata["seconds"].value
                         for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
                         if "seconds" in e.dagster_event.asset_check_evaluation_data.metadata) / 2  # 2 checks/suite
    steps = {s.step_key: round(s.end_time - s.start_time, 2) for s in stats}
    work = sum(v for k, v in steps.items() if k == WORK_STEP)
    return {"wall_s": round(wall, 2), "run_s": round(run_s, 2), "steps": steps, "work_step_s": round(work, 2),
            "check_steps_s": round(sum(steps.values()) - work, 2), "step_count": len(steps),
            "validation_s": round(validation, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="a finished demo lake (copied, never changed)")
    parser.add_argument("--before", default="c32526a", help="the commit before the change")
    parser.add_argument("--turns", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="silver-checks-"))
    before = tmp / "before-code"
    subprocess.run(["git", "worktree", "add", "--detach", str(before), args.before], cwd=REPO, check=True,
                   capture_output=True)
    try:
        versions = {"before": before, "after": REPO}
        for name in versions:
            shutil.copytree(args.lake, tmp / f"{name}-lake", symlinks=True)
            (tmp / f"{name}-home").mkdir()
            materialize(versions[name], tmp / f"{name}-lake", tmp / f"{name}-home")  # warm: silver reused after
        turns = {name: [] for name in versions}
        for turn in range(args.turns):
            for name in (("before", "after") if turn % 2 == 0 else ("after", "before")):
                result = materialize(versions[name], tmp / f"{name}-lake", tmp / f"{name}-home")
                turns[name].append(result)
                print(name, json.dumps(result))
        summary = {name: {"wall_s_median": statistics.median(r["wall_s"] for r in rs),
                          "run_s_median": statistics.median(r["run_s"] for r in rs),
                          "work_step_s_median": statistics.median(r["work_step_s"] for r in rs),
                          "check_steps_s_median": statistics.median(r["check_steps_s"] for r in rs),
                          "validation_s_median": statistics.median(r["validation_s"] for r in rs),
                          "steps": rs[-1]["step_count"]} for name, rs in turns.items()}
        for s in summary.values():
            s["checks_share_of_steps"] = round(s["check_steps_s_median"] /
                                               (s["check_steps_s_median"] + s["work_step_s_median"]), 3)
        result = {"benchmark": "silver_checks", "select": SELECT, "before": args.before, "turns": args.turns,
                  "load_average": [round(x, 2) for x in os.getloadavg()], "load_1m": round(os.getloadavg()[0], 2),
                  "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
                  "cpus": os.cpu_count(),
                  "summary": summary, "runs": turns,
                  "wall_ratio_before_over_after": round(summary["before"]["wall_s_median"] /
                                                        summary["after"]["wall_s_median"], 2)}
        out = REPO / "benchmarks" / "results" / "silver_checks.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(summary, indent=2), f"\nwritten to {out}")
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(before)], cwd=REPO, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
