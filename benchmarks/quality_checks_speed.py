"""Cold vs warm Great Expectations validation of the silver tables in one process, the code
before and after the kept GE context (synpref/checks/quality.py), side by side in one run.

    git worktree add /tmp/quality_before <commit before>      # the code to compare against
    .venv/bin/python benchmarks/quality_checks_speed.py --before /tmp/quality_before

Both sides run with this interpreter (one venv), each in child processes whose PYTHONPATH puts
its code first. A demo lake of --pairs pairs is generated, ingested and built to silver once;
every child validates a fresh copy of it (the quality folder each side's seeding run left, so
the GE project exists as it does after a first run and every child starts from the same
history).

Per child (--repeats per side, the sides taking turns):
  * imports: great_expectations and the vectors module (LanceDB) imported first and timed apart,
    as a Dagster step process has them imported already;
  * cold: silver_decisions, silver_pairs, silver_quarantine validated once each, in order (the
    first validation of each table in the process);
  * warm: the three validated again --warm times; the median per table.
Once with build_docs=False (the CLI's `synpref check`, and a QualityResource set so) and once
with build_docs=True (QualityResource's default). Also, per side, a fresh process that only
validates silver_pairs, nothing imported first (what one check step paid).

The outcomes (ExpectationOutcome lists) of every validation must be the same on both sides.
Writes benchmarks/results/quality_checks_speed.json, with os.getloadavg() before and after;
run it on a quiet machine (check `uptime`), not beside the test suite.
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
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TABLES = ("silver_decisions", "silver_pairs", "silver_quarantine")


# ---------------------------------------------------------------- in a child process


def _outcomes(v) -> list[dict]:
    return [asdict(o) for o in v.outcomes]


def _quality():
    """synpref's quality module, in either layout (the side before may predate synpref/checks/).
    Chosen by the files of the synpref on PYTHONPATH: an import attempt could be answered by the
    venv's editable install, which finds synpref.checks in the other checkout."""
    import importlib

    import synpref

    split = (Path(synpref.__file__).parent / "checks" / "quality.py").exists()
    return importlib.import_module("synpref.checks.quality" if split else "synpref.quality")


def _import_vectors() -> None:
    import importlib

    import synpref

    flat = (Path(synpref.__file__).parent / "vectors.py").exists()
    importlib.import_module("synpref.vectors" if flat else "synpref.silver.vectors")


def _code() -> str:
    """The checkout this child's quality module came from."""
    path = Path(_quality().__file__).resolve()
    return str(next(p.parent for p in path.parents if p.name == "synpref"))


def child_seed(lake_root: str) -> dict:
    """Make the lake's GE project as a first run does: each table validated once."""
    from synpref.lake import Lake

    for table in TABLES:
        _quality().validate_table(Lake.at(lake_root), table, build_docs=False)
    return {"code": _code()}


def child_rounds(lake_root: str, warm: int, docs: bool) -> dict:
    t = time.perf_counter()
    import great_expectations  # noqa: F401
    gx_s = time.perf_counter() - t
    t = time.perf_counter()
    _import_vectors()
    lance_s = time.perf_counter() - t
    from synpref.lake import Lake

    validate_table = _quality().validate_table

    lake = Lake.at(lake_root)
    cold, outcomes, rows = {}, {}, {}
    for table in TABLES:
        t = time.perf_counter()
        v = validate_table(lake, table, build_docs=docs)
        cold[table] = time.perf_counter() - t
        outcomes[table], rows[table] = _outcomes(v), v.rows
    warm_s: dict[str, list[float]] = {table: [] for table in TABLES}
    same = True
    for _ in range(warm):
        for table in TABLES:
            t = time.perf_counter()
            v = validate_table(lake, table, build_docs=docs)
            warm_s[table].append(time.perf_counter() - t)
            same &= _outcomes(v) == outcomes[table]
    return {"import_gx_s": gx_s, "import_lancedb_s": lance_s, "cold_s": cold, "warm_s": warm_s,
            "outcomes": outcomes, "warm_same_as_cold": same, "rows": rows, "code": _code()}


def child_fresh(lake_root: str) -> dict:
    """A process that validates one table and ends: everything it needs is imported on the way."""
    t = time.perf_counter()
    from synpref.lake import Lake

    v = _quality().validate_table(Lake.at(lake_root), "silver_pairs", build_docs=False)
    return {"seconds": time.perf_counter() - t, "outcomes": _outcomes(v), "code": _code()}


# ---------------------------------------------------------------- the driver


def make_lake(work: Path, pairs: int) -> Path:
    from synpref.demo import generate_demo
    from synpref.raw.ingest import ingest_sources
    from synpref.lake import Lake
    from synpref.silver.pool import build_silver
    from synpref.raw.sources import load_sources

    landing, lake = work / "landing", Lake.at(work / "base" / "lake")
    generate_demo(landing, pairs=pairs, seed=0, workers=1)
    config = load_sources(landing / "sources.yaml")
    ingest_sources(lake, config)
    build_silver(lake, config.decontamination)
    return lake.root


def run_child(code: Path, args: list[str]) -> dict:
    path = os.pathsep.join(p for p in (str(code), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "GX_ANALYTICS_ENABLED": "false"}
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env,
                         cwd=str(code))
    if out.returncode != 0:
        raise RuntimeError(f"child {args} ({code}) failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["code"] != str(code):
        raise RuntimeError(f"child meant for {code} ran the code in {result['code']} (PYTHONPATH?)")
    return result


def quality_blob(code: Path) -> str:
    """The git blob id of the side's quality module (compare: git rev-parse <commit>:<path>)."""
    path = next(p for p in (code / "synpref" / "checks" / "quality.py", code / "synpref" / "quality.py") if p.exists())
    out = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True)
    return f"{path.relative_to(code)} {out.stdout.strip()}"


def commit_of(code: Path) -> str:
    out = subprocess.run(["git", "-C", str(code), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(code), "status", "--porcelain", "--", "synpref/checks/quality.py",
                            "synpref/quality.py"], capture_output=True, text=True).stdout.split()[1::2]
    return out.stdout.strip() + "".join(f" + working tree {path}" for path in dirty)


def fresh_copy(seed: Path, to: Path) -> Path:
    if to.exists():
        shutil.rmtree(to)
    shutil.copytree(seed, to, symlinks=True)
    return to


def median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=False, help="checkout of the code before (a git worktree)")
    ap.add_argument("--after", type=Path, default=REPO, help="checkout of the code after (default: this one)")
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3, help="child processes per side and docs setting")
    ap.add_argument("--warm", type=int, default=5, help="warm rounds per child")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "quality_checks_speed.json")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, lake_root, *rest = args.child
        result = {"rounds": lambda: child_rounds(lake_root, int(rest[0]), rest[1] == "docs"),
                  "fresh": lambda: child_fresh(lake_root), "seed": lambda: child_seed(lake_root)}[mode]()
        print(json.dumps(result))
        return
    if args.before is None:
        ap.error("--before is required")

    load_start = os.getloadavg()
    sides = {"before": args.before.resolve(), "after": args.after.resolve()}
    with tempfile.TemporaryDirectory(prefix="quality_checks_speed-") as tmp:
        work = Path(tmp)
        t = time.perf_counter()
        base = make_lake(work, args.pairs)
        print(f"demo lake of {args.pairs:,} pairs in {time.perf_counter() - t:.1f}s", flush=True)
        seeds = {}
        for side, code in sides.items():  # the GE project made once, by the side's own code
            seeds[side] = fresh_copy(base, work / f"seed-{side}" / "lake")
            run_child(code, ["seed", str(seeds[side])])

        children: dict[str, dict[str, list[dict]]] = {d: {s: [] for s in sides} for d in ("no_docs", "docs")}
        fresh: dict[str, list[dict]] = {s: [] for s in sides}
        turn = 0
        for i in range(args.repeats):
            order = list(sides) if i % 2 == 0 else list(sides)[::-1]  # ABBA: load drifts hit both sides
            for side in order:
                for docs in ("no_docs", "docs"):
                    lake = fresh_copy(seeds[side], work / f"run{turn}" / "lake")
                    turn += 1
                    r = run_child(sides[side], ["rounds", str(lake), str(args.warm), docs])
                    children[docs][side].append(r)
                    print(f"{side:6} {docs:7} cold " + " ".join(f"{t}={r['cold_s'][t]:.3f}" for t in TABLES)
                          + " | warm " + " ".join(f"{t}={statistics.median(r['warm_s'][t]):.3f}" for t in TABLES),
                          flush=True)
                lake = fresh_copy(seeds[side], work / f"run{turn}" / "lake")
                turn += 1
                fresh[side].append(run_child(sides[side], ["fresh", str(lake)]))
    load_end = os.getloadavg()

    reference = children["no_docs"]["before"][0]["outcomes"]
    identical = all(r["outcomes"] == reference and r["warm_same_as_cold"]
                    for d in children.values() for runs in d.values() for r in runs) \
        and all(f["outcomes"] == reference["silver_pairs"] for runs in fresh.values() for f in runs)

    summary: dict = {}
    for docs, by_side in children.items():
        summary[docs] = {}
        for side, runs in by_side.items():
            summary[docs][side] = {
                "cold_s": {t: median([r["cold_s"][t] for r in runs]) for t in TABLES},
                "warm_s": {t: median([w for r in runs for w in r["warm_s"][t]]) for t in TABLES},
                "cold_three_tables_s": median([sum(r["cold_s"].values()) for r in runs]),
                "warm_three_tables_s": median([sum(statistics.median(r["warm_s"][t]) for t in TABLES)
                                               for r in runs]),
            }
        b, a = summary[docs]["before"], summary[docs]["after"]
        summary[docs]["ratio_before_over_after"] = {
            "cold": {t: round(b["cold_s"][t] / a["cold_s"][t], 2) for t in TABLES},
            "warm": {t: round(b["warm_s"][t] / a["warm_s"][t], 2) for t in TABLES},
            "cold_three_tables": round(b["cold_three_tables_s"] / a["cold_three_tables_s"], 2),
            "warm_three_tables": round(b["warm_three_tables_s"] / a["warm_three_tables_s"], 2),
        }
    first = children["no_docs"]["after"][0]
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in load_end],
        "code": {side: {"path": str(code), "commit": commit_of(code), "quality_blob": quality_blob(code)}
                 for side, code in sides.items()},
        "lake": {"pairs": args.pairs, "rows": first["rows"]},
        "repeats": args.repeats, "warm_rounds": args.warm,
        "outcomes_identical": identical,
        "imports_s": {side: {"great_expectations": median([r["import_gx_s"] for d in children.values()
                                                           for r in d[side]]),
                             "lancedb": median([r["import_lancedb_s"] for d in children.values() for r in d[side]])}
                      for side in sides},
        "fresh_process_silver_pairs_s": {side: median([f["seconds"] for f in runs]) for side, runs in fresh.items()},
        "build_docs_false": summary["no_docs"],
        "build_docs_true": summary["docs"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")

    print(f"\noutcomes identical on both sides, cold and warm: {identical}")
    print(f"load average {result['loadavg_start']} -> {result['loadavg_end']}")
    print(f"fresh process, silver_pairs only: before {result['fresh_process_silver_pairs_s']['before']:.2f}s, "
          f"after {result['fresh_process_silver_pairs_s']['after']:.2f}s")
    for docs, key in (("no_docs", "build_docs_false"), ("docs", "build_docs_true")):
        s = result[key]
        print(f"\n{key}: seconds per table (median), before -> after (ratio)")
        print("| table | cold before | cold after | ratio | warm before | warm after | ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for t in TABLES:
            print(f"| {t} | {s['before']['cold_s'][t]:.3f} | {s['after']['cold_s'][t]:.3f} | "
                  f"{s['ratio_before_over_after']['cold'][t]} | {s['before']['warm_s'][t]:.3f} | "
                  f"{s['after']['warm_s'][t]:.3f} | {s['ratio_before_over_after']['warm'][t]} |")
        print(f"| three tables | {s['before']['cold_three_tables_s']:.3f} | {s['after']['cold_three_tables_s']:.3f} | "
              f"{s['ratio_before_over_after']['cold_three_tables']} | {s['before']['warm_three_tables_s']:.3f} | "
              f"{s['after']['warm_three_tables_s']:.3f} | {s['ratio_before_over_after']['warm_three_tables']} |")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
