"""Benchmark: Great Expectations validation of silver_pairs in batches (time, peak RSS).

    .venv/bin/python benchmarks/silver_stage.py --sizes 1000000 4000000 --pandas-sizes   # makes the lakes
    .venv/bin/python benchmarks/validate_silver.py --sizes 1000000 4000000

Each validation runs in a fresh process, so its peak RSS (getrusage) is its own.
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


def child(lake_root: str, batch_rows: int) -> None:
    from synpref.lake import Lake
    from synpref.checks.quality import validate_table

    start = time.perf_counter()
    v = validate_table(Lake.at(lake_root), "silver_pairs", batch_rows=batch_rows, build_docs=False)
    print(json.dumps({"rows": v.rows, "batches": v.batches, "seconds": time.perf_counter() - start,
                      "expectations": len(v.outcomes), "failed": [o.expectation for o in v.outcomes if not o.success],
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 4_000_000])
    ap.add_argument("--batch-rows", type=int, default=100_000)
    ap.add_argument("--work", type=Path, default=HERE / "_work")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return
    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} cores; batches of {args.batch_rows:,} rows.", "",
             "| generated pairs | silver_pairs rows | batches | expectations | seconds | rows/s | peak RSS (MB) |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for n in args.sizes:
        lake = args.work / f"n{n}" / "lake"
        out = subprocess.run([sys.executable, __file__, "--child", str(lake), str(args.batch_rows)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(r, flush=True)
        lines.append(f"| {n:,} | {r['rows']:,} | {r['batches']} | {r['expectations']} | {r['seconds']:.1f} | "
                     f"{r['rows'] / r['seconds']:,.0f} | {r['peak_rss_mb']:,.0f} |")
    report = "\n".join(lines) + "\n"
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "validate_silver.md").write_text(report)
    print("\n" + report)


if __name__ == "__main__":
    main()
