"""Benchmark: the ingest stage (source files -> raw_pairs + ingest_quarantine Parquet parts),
the DuckDB path (this checkout) against the Python readers before it (commit b7010a7), side by
side in one run.

    .venv/bin/python benchmarks/ingest_speed.py --sizes 1000000 4000000 --old-sizes 1000000

For each size the seeded demo data (`synpref.demo.generate_demo(landing, pairs=n, seed=0)`:
four source files, demo_chat / demo_hh / demo_labelled / demo_prompts, with planted defects)
is generated once under --work (reused on a later run), then each side runs
`ingest_sources(Lake.at(lake), load_sources(landing / "sources.yaml"))` in a fresh process
(PYTHONPATH = that side's checkout, same interpreter) on a fresh empty lake, so its peak RSS
(`getrusage` max RSS) is its own. The old side is a `git archive` of --old-commit taken from
the repository this script lives in, into a temporary folder removed at the end; the Python
readers are slow, so by default they run only at 1M (--old-sizes).

Reported per run: seconds (the ingest_sources call only), records/s (records read / seconds),
peak RSS, load average before and after; per source: records read, raw pairs, quarantined rows
and their reasons. Where both sides ran, their counts must agree per source and per reason, and
the raw pairs themselves are compared on a sample: --sample raw_ids present on both sides
(md5(source_file \\x1f source_row)[:16] on both), conversation / chosen / rejected /
rejected_conversation equal. The new raw_pairs has an extra `meta` column (not compared).

Headline: the new path's records/s at each size, its speed-up over the old one where both
ran, and its peak RSS at the largest size over the smallest (target: within 1.25x).
Writes --out (JSON) and a Markdown table beside it (same stem, .md). Run it on a quiet
machine (check `uptime`); the load averages are recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SOURCES = ("demo_chat", "demo_hh", "demo_labelled", "demo_prompts")
COMPARED = ("conversation", "chosen", "rejected", "rejected_conversation")
RSS_LIMIT = 1.25
SIDES = ("new", "old")


# ---------------------------------------------------------------- in a child process


def child(side: str, lake_root: str, sources_file: str) -> None:
    """Ingest once with the synpref on PYTHONPATH; print the figures as one JSON line."""
    t0 = time.perf_counter()
    import synpref
    from synpref.lake import Lake
    from synpref.raw.ingest import ingest_sources
    from synpref.raw.sources import load_sources

    def log(msg: str) -> None:
        print(f"    [{side}] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)

    lake = Lake.at(lake_root)
    config = load_sources(sources_file)
    start = time.perf_counter()
    summary = ingest_sources(lake, config, log=log)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    files = [{"source": f.source, "file": f.file, "read": f.read, "raw": f.raw, "quarantined": f.quarantined,
              "reasons": f.reasons, "reused": f.reused} for f in summary.files]
    print(json.dumps({
        "side": side, "seconds": seconds, "process_s": time.perf_counter() - t0, "peak_rss_mb": peak_mb,
        "synpref": str(Path(synpref.__file__).resolve().parent),
        "tables": {t: str(lake.table_dir(t)) for t in ("raw_pairs", "ingest_quarantine")},
        "files": files,
    }))


# ---------------------------------------------------------------- the driver


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True).stdout.strip()


def new_commit() -> str:
    """HEAD of this checkout, and a note if the ingest code differs from it in the working tree."""
    head = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--", "synpref", "sql")
    return head + (" + uncommitted changes under synpref/ or sql/" if dirty else "")


def old_checkout(commit: str, into: Path) -> str:
    """Extract `commit` (from this repository) into `into`; its full hash."""
    full = git("rev-parse", "--verify", f"{commit}^{{commit}}")
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(["git", "-C", str(REPO), "archive", full], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(into)], stdin=archive.stdout, check=True)
    archive.stdout.close()
    if archive.wait() != 0:
        raise RuntimeError(f"git archive {full} failed")
    return full


def demo_data(n: int, work: Path) -> Path:
    """The seeded demo landing folder for n records: generated once, reused after."""
    from synpref.demo import generate_demo

    landing, marker = work / f"n{n}" / "landing", work / f"n{n}" / "generated.json"
    if marker.exists() and (landing / "sources.yaml").exists():
        print(f"  demo data reused: {landing}", flush=True)
        return landing
    if landing.exists():  # a generation that did not finish
        shutil.rmtree(landing)
    t = time.perf_counter()
    summary = generate_demo(landing, pairs=n, seed=0)
    seconds = time.perf_counter() - t
    marker.write_text(json.dumps({"pairs": n, "seed": 0, "records": summary.records, "files": dict(summary.files),
                                  "seconds": seconds, "generated_by": new_commit()}, indent=1))
    print(f"  generated {summary.records:,} records in {seconds:.1f}s: {landing}", flush=True)
    return landing


def run_side(side: str, code: Path, lake_dir: Path, sources: Path) -> dict:
    if lake_dir.exists():
        shutil.rmtree(lake_dir)
    lake_dir.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(code)}
    load_before = os.getloadavg()
    t = time.perf_counter()
    # stderr passes through: the child's progress lines (and a traceback if it fails) show as they come
    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", side, str(lake_dir),
                          str(sources)], stdout=subprocess.PIPE, text=True, env=env, cwd=str(code), check=False)
    wall = time.perf_counter() - t
    load_after = os.getloadavg()
    if out.returncode != 0:
        raise RuntimeError(f"the {side} side ({code}) failed with exit status {out.returncode}: see its stderr above")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if Path(r["synpref"]) != (code / "synpref").resolve():
        raise RuntimeError(f"the {side} side ran the synpref in {r['synpref']}, not {code} (PYTHONPATH?)")
    if any(f["reused"] for f in r["files"]):
        raise RuntimeError(f"the {side} side reused parts: its lake {lake_dir} was not empty")
    r["process_wall_s"] = wall
    r["load_1min_before"], r["load_1min_after"] = round(load_before[0], 2), round(load_after[0], 2)
    r["loadavg_before"], r["loadavg_after"] = [round(x, 2) for x in load_before], [round(x, 2) for x in load_after]
    r["read"] = sum(f["read"] for f in r["files"])
    r["raw"] = sum(f["raw"] for f in r["files"])
    r["quarantined"] = sum(f["quarantined"] for f in r["files"])
    r["records_per_s"] = r["read"] / r["seconds"]
    per_source: dict[str, dict] = {}
    for f in r["files"]:
        s = per_source.setdefault(f["source"], {"read": 0, "raw": 0, "quarantined": 0, "reasons": {}})
        for k in ("read", "raw", "quarantined"):
            s[k] += f[k]
        for reason, k in f["reasons"].items():
            s["reasons"][reason] = s["reasons"].get(reason, 0) + k
    r["per_source"] = {name: {**s, "reasons": dict(sorted(s["reasons"].items()))}
                       for name, s in sorted(per_source.items())}
    return r


def compare_counts(new: dict, old: dict) -> dict:
    """Per source: read, raw, quarantined and each reason, new against old."""
    diffs = []
    for source in sorted(set(new["per_source"]) | set(old["per_source"])):
        a, b = new["per_source"].get(source), old["per_source"].get(source)
        if a is None or b is None:
            diffs.append(f"{source}: only on the {'old' if a is None else 'new'} side")
            continue
        for key in ("read", "raw", "quarantined"):
            if a[key] != b[key]:
                diffs.append(f"{source} {key}: new {a[key]:,}, old {b[key]:,}")
        for reason in sorted(set(a["reasons"]) | set(b["reasons"])):
            x, y = a["reasons"].get(reason, 0), b["reasons"].get(reason, 0)
            if x != y:
                diffs.append(f"{source} {reason}: new {x:,}, old {y:,}")
    return {"identical": not diffs, "differences": diffs}


def compare_sample(new: dict, old: dict, k: int) -> dict:
    """k raw_ids found on both sides (a seeded pseudo-random choice): the pairs must be equal."""
    import duckdb

    con = duckdb.connect()
    for side, r in (("new", new), ("old", old)):
        glob = str(Path(r["tables"]["raw_pairs"]) / "*.parquet")
        con.execute(f"create view {side}_raw as select * from read_parquet('{glob}')")
    schema = {side: dict(con.execute(f"select column_name, column_type from (describe {side}_raw)").fetchall())
              for side in ("new", "old")}
    counts = con.execute("""
        select (select count(*) from new_raw), (select count(distinct raw_id) from new_raw),
               (select count(*) from old_raw), (select count(distinct raw_id) from old_raw),
               (select count(*) from (select raw_id from new_raw intersect select raw_id from old_raw))
    """).fetchone()
    con.execute(f"""create temp table sample as
        select raw_id from (select raw_id from new_raw intersect select raw_id from old_raw)
        order by md5(raw_id || 'ingest_speed-0') limit {int(k)}""")
    cols = ", ".join(COMPARED)
    rows = {side: {} for side in ("new", "old")}
    for side, found in rows.items():
        for raw_id, *values in con.execute(f"select raw_id, source, source_row, {cols} from {side}_raw "
                                           f"where raw_id in (select raw_id from sample) order by all").fetchall():
            found.setdefault(raw_id, []).append(values)
    mismatches, by_column = [], {c: 0 for c in ("source", "source_row", *COMPARED)}
    for raw_id in sorted(rows["new"]):
        a, b = rows["new"][raw_id], rows["old"].get(raw_id, [])
        if a != b:
            if len(a) == len(b):
                for x, y in zip(a, b):
                    for name, u, v in zip(by_column, x, y):
                        by_column[name] += u != v
            if len(mismatches) < 5:
                mismatches.append({"raw_id": raw_id, "new": repr(a)[:600], "old": repr(b)[:600]})
    n_bad = sum(rows["new"][i] != rows["old"].get(i, []) for i in rows["new"])
    con.close()
    return {
        "rows_new": counts[0], "raw_ids_new": counts[1], "rows_old": counts[2], "raw_ids_old": counts[3],
        "raw_ids_both": counts[4], "sampled": len(rows["new"]), "equal": n_bad == 0, "unequal": n_bad,
        "unequal_by_column": {c: n for c, n in by_column.items() if n}, "examples": mismatches,
        "columns_compared": list(COMPARED),
        "extra_columns_new": sorted(set(schema["new"]) - set(schema["old"])),
        "extra_columns_old": sorted(set(schema["old"]) - set(schema["new"])),
        "type_differences": {c: {"new": schema["new"][c], "old": schema["old"][c]}
                             for c in schema["new"] if c in schema["old"] and schema["new"][c] != schema["old"][c]},
    }


def headline(rows: list[dict]) -> dict:
    new = [r for r in rows if "new" in r["runs"]]
    both = [r for r in rows if "old" in r["runs"] and "new" in r["runs"]]
    out: dict = {
        "new_records_per_s": {str(r["records"]): round(r["runs"]["new"]["records_per_s"]) for r in new},
        "speedup_new_over_old": {str(r["records"]): round(r["runs"]["old"]["seconds"] / r["runs"]["new"]["seconds"], 2)
                                 for r in both},
        "counts_identical": all(r["counts"]["identical"] for r in both) if both else None,
        "sample_equal": all(r["sample"]["equal"] for r in both) if both else None,
    }
    if len(new) > 1:
        lo, hi = min(new, key=lambda r: r["records"]), max(new, key=lambda r: r["records"])
        ratio = hi["runs"]["new"]["peak_rss_mb"] / lo["runs"]["new"]["peak_rss_mb"]
        out["new_peak_rss_ratio"] = {"from": lo["records"], "to": hi["records"], "ratio": round(ratio, 3),
                                     "limit": RSS_LIMIT, "within_limit": ratio <= RSS_LIMIT}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 4_000_000])
    ap.add_argument("--old-sizes", type=int, nargs="*", default=[1_000_000],
                    help="sizes (among --sizes) at which the old Python readers run too")
    ap.add_argument("--old-commit", default="b7010a7", help="the code before (a commit of this repository)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "synpref-ingest-speed",
                    help="demo data (kept, reused) and the lakes (removed after each size)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "ingest_speed.json")
    ap.add_argument("--sample", type=int, default=1000, help="raw pairs compared value by value per size")
    ap.add_argument("--keep-lakes", action="store_true", help="keep each size's two lakes under --work")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    sys.path.insert(0, str(REPO))  # the driver generates the demo data with this checkout's synpref
    stray = sorted(set(args.old_sizes) - set(args.sizes))
    if stray:
        ap.error(f"--old-sizes {stray} not among --sizes {args.sizes}")
    import duckdb

    args.work.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in load_start)}", flush=True)
    code = {"new": {"path": str(REPO), "commit": new_commit()}}
    old_dir = Path(tempfile.mkdtemp(prefix="ingest_speed-old-"))
    rows: list[dict] = []
    try:
        if args.old_sizes:
            code["old"] = {"path": f"git archive {args.old_commit} (temporary)",
                           "commit": old_checkout(args.old_commit, old_dir)}
            print(f"old side: {code['old']['commit'][:12]} extracted to {old_dir}", flush=True)
        paths = {"new": REPO, "old": old_dir}
        for n in args.sizes:
            print(f"{n:,} records", flush=True)
            landing = demo_data(n, args.work)
            row: dict = {"records": n, "runs": {}}
            for side in SIDES if n in args.old_sizes else ("new",):
                print(f"  {side}: ingesting ...", flush=True)
                r = run_side(side, paths[side], args.work / f"n{n}" / f"lake-{side}", landing / "sources.yaml")
                row["runs"][side] = r
                print(f"  {side}: {r['read']:,} read, {r['raw']:,} raw, {r['quarantined']:,} quarantined in "
                      f"{r['seconds']:.1f}s = {r['records_per_s']:,.0f} records/s, peak RSS {r['peak_rss_mb']:,.0f} MB "
                      f"(load {r['load_1min_before']:.2f} -> {r['load_1min_after']:.2f})", flush=True)
            if "old" in row["runs"]:
                new, old = row["runs"]["new"], row["runs"]["old"]
                row["speedup_new_over_old"] = old["seconds"] / new["seconds"]
                row["counts"] = compare_counts(new, old)
                row["sample"] = compare_sample(new, old, args.sample)
                s = row["sample"]
                print(f"  speed-up new over old: {row['speedup_new_over_old']:.2f}x", flush=True)
                print(f"  counts identical per source and reason: {row['counts']['identical']}", flush=True)
                for d in row["counts"]["differences"]:
                    print(f"    {d}", flush=True)
                print(f"  sample: {s['sampled']:,} of {s['raw_ids_both']:,} raw_ids on both sides "
                      f"(new {s['raw_ids_new']:,}, old {s['raw_ids_old']:,}): equal {s['equal']}"
                      + (f" ({s['unequal']} unequal: {s['unequal_by_column']})" if not s["equal"] else ""),
                      flush=True)
            if not args.keep_lakes:
                for side in row["runs"]:
                    shutil.rmtree(args.work / f"n{n}" / f"lake-{side}", ignore_errors=True)
            rows.append(row)
    finally:
        shutil.rmtree(old_dir, ignore_errors=True)
    load_end = os.getloadavg()

    for row in rows:  # the per-file detail and paths stay out of the results file
        for r in row["runs"].values():
            for key in ("files", "tables", "synpref"):
                r.pop(key, None)
    result = {
        "benchmark": "ingest_speed",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "platform": platform.platform(), "cores": os.cpu_count(), "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "loadavg_start": [round(x, 2) for x in load_start], "loadavg_end": [round(x, 2) for x in load_end],
        "code": code,
        "sizes": args.sizes, "old_sizes": args.old_sizes, "sample": args.sample,
        "headline": headline(rows),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    report = render(result)
    args.out.with_suffix(".md").write_text(report)
    print("\n" + report)
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


def render(result: dict) -> str:
    h, code = result["headline"], result["code"]
    start, end = (" ".join(map(str, result[k])) for k in ("loadavg_start", "loadavg_end"))
    lines = [(f"Machine: {result['machine']} ({result['platform']}); DuckDB {result['duckdb']}; "
              f"load average {start} at the start, {end} at the end."),
             f"New: {code['new']['commit']} (DuckDB). "
             + (f"Old: {code['old']['commit']} (Python readers)." if "old" in code else ""), "",
             "| records | side | seconds | records/s | peak RSS (MB) | speed-up vs old | load before → after |",
             "|---:|---|---:|---:|---:|---:|---|"]
    for row in result["rows"]:
        for side, r in row["runs"].items():
            speed = (f"{row['speedup_new_over_old']:.2f}x" if side == "new" else "1.00x") if "old" in row["runs"] else "n/a"
            lines.append(f"| {row['records']:,} | {side} | {r['seconds']:.1f} | {r['records_per_s']:,.0f} | "
                         f"{r['peak_rss_mb']:,.0f} | {speed} | {r['load_1min_before']:.2f} → {r['load_1min_after']:.2f} |")
    lines += ["", "Per source (new side; old side's figure in brackets where it differs):", "",
              "| records | source | read | raw pairs | quarantined | reasons |", "|---:|---|---:|---:|---:|---|"]

    def cell(new, old) -> str:
        text = f"{new:,}" if isinstance(new, int) else str(new)
        return text if old is None or old == new else f"{text} ({old:,})" if isinstance(old, int) else f"{text} ({old})"

    for row in result["rows"]:
        new, old = row["runs"]["new"]["per_source"], row["runs"].get("old", {}).get("per_source", {})
        for source in sorted(set(new) | set(old)):
            a, b = new.get(source, {}), old.get(source)
            reasons = ", ".join(f"{k} {v:,}" for k, v in a.get("reasons", {}).items()) or "none"
            if b is not None and b["reasons"] != a.get("reasons"):
                reasons += " (old: " + (", ".join(f"{k} {v:,}" for k, v in b["reasons"].items()) or "none") + ")"
            lines.append(f"| {row['records']:,} | {source} | "
                         + " | ".join(cell(a.get(k, "-"), b[k] if b else None) for k in ("read", "raw", "quarantined"))
                         + f" | {reasons} |")
    lines.append("")
    for row in result["rows"]:
        if "old" not in row["runs"]:
            continue
        c, s = row["counts"], row["sample"]
        lines.append(f"At {row['records']:,}: raw_pairs and quarantine counts per source and reason "
                     + ("identical on both sides." if c["identical"] else "DIFFER: " + "; ".join(c["differences"]) + "."))
        lines.append(f"Sample of {s['sampled']:,} raw_ids present on both sides ({s['raw_ids_both']:,} of new "
                     f"{s['raw_ids_new']:,} / old {s['raw_ids_old']:,}): {', '.join(s['columns_compared'])} "
                     + ("equal." if s["equal"] else f"UNEQUAL in {s['unequal']} ({s['unequal_by_column']}).")
                     + (f" Columns only in the new raw_pairs: {', '.join(s['extra_columns_new'])}."
                        if s["extra_columns_new"] else "")
                     + (f" Columns only in the old: {', '.join(s['extra_columns_old'])}." if s["extra_columns_old"] else "")
                     + (f" Column types differ: {s['type_differences']}." if s["type_differences"] else ""))
    lines += ["", "New path records/s: " + ", ".join(f"{int(k):,}: {v:,}" for k, v in h["new_records_per_s"].items())
              + "."]
    if h["speedup_new_over_old"]:
        lines.append("Speed-up new over old: " + ", ".join(f"{int(k):,}: {v:.2f}x"
                                                           for k, v in h["speedup_new_over_old"].items()) + ".")
    if "new_peak_rss_ratio" in h:
        q = h["new_peak_rss_ratio"]
        lines.append(f"New path peak RSS at {q['to']:,} over {q['from']:,}: {q['ratio']:.2f}x "
                     f"(target within {q['limit']}x: {'met' if q['within_limit'] else 'NOT met'}).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
