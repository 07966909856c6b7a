"""Benchmark: raw -> silver on generated pairs, DuckDB SQL stage against plain pandas.

    .venv/bin/python benchmarks/silver_stage.py --sizes 1000000 4000000 --pandas-sizes 1000000

For each size: generate the seeded demo data, ingest it (timed, reported), then run the
silver stage once per engine, each in a fresh process so that its peak RSS is its own.
Both engines must agree on every count; the table goes to benchmarks/results/.
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


def child(engine: str, lake_root: str, sources_file: str, out: str) -> None:
    """Run one engine and print its figures as JSON (runs in its own process)."""
    from synpref.lake import Lake
    from synpref.raw.sources import load_sources

    lake = Lake.at(lake_root)
    deco = load_sources(sources_file).decontamination
    start = time.perf_counter()
    if engine == "duckdb":
        from synpref.silver.pool import build_silver

        summary = build_silver(lake, deco, force=True)
        counts = {**summary.reasons, "kept": summary.silver_rows}
    else:
        from pandas_silver import build_silver_pandas

        counts = build_silver_pandas(lake.table_dir("raw_pairs"), deco.prompts(), Path(out))
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"engine": engine, "seconds": seconds, "peak_rss_mb": peak_mb,
                      "counts": dict(sorted(counts.items()))}))


def prepare(n: int, work: Path) -> tuple[Path, Path, dict]:
    """Generate and ingest n demo pairs once; later runs reuse them."""
    from synpref.demo import generate_demo
    from synpref.raw.ingest import ingest_sources
    from synpref.lake import Lake
    from synpref.raw.sources import load_sources

    landing, lake = work / f"n{n}" / "landing", Lake.at(work / f"n{n}" / "lake")
    if not (landing / "sources.yaml").exists():
        t = time.perf_counter()
        generate_demo(landing, pairs=n, seed=0)
        print(f"  generated {n:,} records in {time.perf_counter() - t:.0f}s", flush=True)
    t = time.perf_counter()
    summary = ingest_sources(lake, load_sources(landing / "sources.yaml"))
    ingest = {"seconds": time.perf_counter() - t, "read": summary.read, "raw": summary.raw}
    record = work / f"n{n}" / "ingest.json"  # the rate measured when the ingest really ran
    if all(f.reused for f in summary.files) and record.exists():
        ingest = json.loads(record.read_text())
    else:
        record.write_text(json.dumps(ingest))
    print(f"  ingest: {summary.read:,} read, {summary.raw:,} raw in {ingest['seconds']:.0f}s", flush=True)
    return landing / "sources.yaml", lake.root, ingest


def run_engine(engine: str, lake_root: Path, sources: Path, work: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{HERE}:{HERE.parent}"}
    out = subprocess.run([sys.executable, __file__, "--child", engine, str(lake_root), str(sources),
                          str(work / "pandas_out")], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{engine} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 4_000_000])
    ap.add_argument("--pandas-sizes", type=int, nargs="*", default=[1_000_000])
    ap.add_argument("--work", type=Path, default=HERE / "_work")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return

    rows = []
    for n in args.sizes:
        print(f"{n:,} pairs", flush=True)
        sources, lake_root, ingest = prepare(n, args.work)
        results = {"duckdb": run_engine("duckdb", lake_root, sources, args.work / f"n{n}")}
        if n in args.pandas_sizes:
            results["pandas"] = run_engine("pandas", lake_root, sources, args.work / f"n{n}")
            same = results["pandas"]["counts"] == results["duckdb"]["counts"]
            print(f"  engines agree on every count: {same}", flush=True)
            if not same:
                print(f"  duckdb {results['duckdb']['counts']}\n  pandas {results['pandas']['counts']}")
        for engine, r in results.items():
            r["pairs_per_s"] = ingest["raw"] / r["seconds"]
            print(f"  {engine:>6}: {r['seconds']:.1f}s, {r['pairs_per_s']:,.0f} pairs/s, "
                  f"peak RSS {r['peak_rss_mb']:,.0f} MB", flush=True)
        rows.append({"pairs": n, "raw": ingest["raw"], "ingest": ingest, **results})

    report = render(rows)
    out = HERE / "results" / "silver_stage.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(report)
    print("\n" + report)


def render(rows: list[dict]) -> str:
    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.", "",
             "| generated pairs | raw pairs | engine | seconds | pairs/s | peak RSS (MB) | speed vs pandas |",
             "|---:|---:|---|---:|---:|---:|---:|"]
    for row in rows:
        for engine in ("duckdb", "pandas"):
            if engine not in row:
                continue
            r = row[engine]
            ratio = f"{row['pandas']['seconds'] / r['seconds']:.2f}x" if "pandas" in row else "n/a"
            lines.append(f"| {row['pairs']:,} | {row['raw']:,} | {engine} | {r['seconds']:.1f} | "
                         f"{r['pairs_per_s']:,.0f} | {r['peak_rss_mb']:,.0f} | {ratio} |")
    duck = [r for r in rows if "duckdb" in r]
    if len(duck) > 1:
        base = duck[0]["duckdb"]["peak_rss_mb"]
        lines += ["", "DuckDB peak RSS relative to the smallest size: " + ", ".join(
            f"{r['pairs']:,}: {r['duckdb']['peak_rss_mb'] / base:.2f}x" for r in duck)]
    lines += ["", "Ingest (Python readers + Parquet parts, not part of the comparison): " + ", ".join(
        f"{r['pairs']:,}: {r['ingest']['read'] / r['ingest']['seconds']:,.0f} records/s" for r in rows)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
