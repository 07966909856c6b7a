"""The one summary table that opens benchmarks/README.md, made from benchmarks/results/*.json.

    python benchmarks/summary.py            # print the table (Markdown)
    python benchmarks/summary.py --write    # replace the block between the markers in benchmarks/README.md
    python benchmarks/summary.py --check    # exit 1 if that block is not what this script makes now

One row per results JSON: the benchmark (linked to the README section that first cites its results
file), what it measures, its headline figures, the machine and load where the file records them, and
the file. A benchmark this script knows gets its own headline (`HEADLINES`); any other JSON still gets
a row, with the numbers found at its top level, so a new results file is never left out.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE / "README.md"
START, END = "<!-- summary:start -->", "<!-- summary:end -->"
GENERATED = "<!-- made by `python benchmarks/summary.py --write` from results/*.json: edit the script, not this block -->"

BACKBONES = {"minilm": "MiniLM", "embedding": "embedding"}
RULE_NAMES = {"paper": "paper", "confident_learning": "confident learning", "ensemble": "ensemble"}


def _num(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}"


def _signed(x: float, digits: int = 3) -> str:
    return f"{x:+.{digits}f}"


def _mean(xs: list[float]) -> float:
    return statistics.fmean(xs)


# --- the known benchmarks: (what it measures, headline figures) -------------------------------------

def celery_workers(data: dict) -> tuple[str, str]:
    ratio = data["ratio_1_over_2_workers"]
    walls: dict[tuple[str, int], list[float]] = {}
    pairs = {r["pairs"] for r in data["runs"]}
    for run in data["runs"]:
        walls.setdefault((run["phase"], run["workers"]), []).append(run["run_wall_s"])
    what = ("Stage 2 (scoring, judging, filtering) and the pair embeddings over 8 shards on 1 against "
            f"2 dagster-celery workers ({'/'.join(f'{p:,}' for p in sorted(pairs))} pool pairs)")
    parts = []
    for phase, label in (("stage2", "Stage 2"), ("embeddings", "embeddings")):
        if phase in ratio:
            one, two = walls.get((phase, 1)), walls.get((phase, 2))
            walls_txt = f" ({_mean(one):.1f} s → {_mean(two):.1f} s a run)" if one and two else ""
            parts.append(f"{label} **{ratio[phase]:.2f}x**{walls_txt}")
    return what, "throughput of 2 workers over 1: " + ", ".join(parts)


def object_store(data: dict) -> tuple[str, str]:
    ratio, same = data["ratio_store_over_local"], data.get("same_rows", {})
    pairs = {r["pairs"] for r in data["runs"]}
    what = ("Stage 2 and the pair embeddings over 8 shards on a lake in an S3 store (SeaweedFS) against "
            f"a local folder ({'/'.join(f'{p:,}' for p in sorted(pairs))} pool pairs)")
    parts = [f"{label} **{ratio[phase]:.2f}x**" for phase, label in (("stage2", "Stage 2"), ("embeddings", "embeddings"))
             if phase in ratio]
    headline = "run wall on the store over the local folder: " + ", ".join(parts)
    if same:
        headline += "; same rows: " + ("yes" if all(same.values()) else
                                       ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in same.items()))
    return what, headline


def _headline_level(levels: list[float]) -> float:
    """25% injected flips where measured (the level the verdicts are given at), else the middle one."""
    levels = sorted(set(levels))
    return 0.25 if 0.25 in levels else levels[len(levels) // 2]


def noise_detection(rows: list[dict]) -> tuple[str, str]:
    level = _headline_level([r["noise"] for r in rows])
    rms = [r["rm"] for r in rows]
    rm = "embedding" if "embedding" in rms else rms[0]
    at = [r for r in rows if r["noise"] == level and r["rm"] == rm]
    seeds = max(r.get("seeds", 0) for r in at)
    oof = [r for r in at if r["rule"].startswith("oof-")]
    best = max(oof, key=lambda r: r["auroc"])
    rule = lambda r: RULE_NAMES.get(r["rule"].split("-", 1)[1], r["rule"].split("-", 1)[1])  # noqa: E731
    aurocs = ", ".join((f"{rule(r)} **{_num(r['auroc'])}**" if r is best else f"{rule(r)} {_num(r['auroc'])}")
                       for r in sorted(oof, key=lambda r: -r["auroc"]))
    insample = [r for r in at if r["rule"].startswith("insample-")]
    insample_txt = f" (in-sample paper {_num(insample[0]['auroc'])})" if insample else ""
    levels = ", ".join(f"{x:.0%}" for x in sorted({r["noise"] for r in rows}))
    what = (f"how well Stage 2's rules, out of fold, find label flips injected ({levels}) into real "
            "human-labelled pairs, and whether an RM trained on what a rule keeps beats one on the noisy pool")
    headline = (f"at {level:.0%} flips, {rm} RMs, {seeds} seeds: AUROC {aurocs}{insample_txt}; "
                f"{rule(best)}: precision {_num(best['precision'])}, retention {_num(best['retention'])}, "
                f"kept-set flip rate {_num(best['kept_flip_rate'])}")
    if best.get("curated_minus_noisy") is not None:
        headline += f", curated − noisy RM accuracy {_signed(best['curated_minus_noisy'])}"
    return what, headline


def quality(data: dict) -> tuple[str, str]:
    summary = data["summary"]
    level = _headline_level([int(k) / 100 for k in summary])
    s = summary[str(round(level * 100))]
    acc, filt = s["accuracy"], s["filter"]
    backbone = data.get("run", {}).get("config", {}).get("backbone", "")
    backbone = BACKBONES.get(backbone, backbone)
    levels = ", ".join(f"{k}%" for k in sorted(summary, key=int))
    what = (f"the in-sample Stage 2 design (superseded by noise detection): flips injected ({levels}) into "
            "real pairs, held-out accuracy of RMs trained on the noisy, curated and clean pool")
    headline = (f"at {level:.0%} flips, {backbone + ' ' if backbone else ''}RMs, {len(s['seeds'])} seeds: "
                f"held-out accuracy curated **{_num(acc['curated'][0])}** against noisy {_num(acc['noisy'][0])} "
                f"(clean {_num(acc['clean'][0])}); kept-set flip rate {_num(filt['kept_flip_rate'][0])}, "
                f"retention {_num(filt['retention'][0])}")
    return what, headline


def silver_checks(data: dict) -> tuple[str, str]:
    before, after = data["summary"]["before"], data["summary"]["after"]
    what = ("materialising silver_pairs with its data-quality checks (the silver stage reused, a 927-pair demo "
            f"lake) under the multiprocess executor, before ({data['before']}: a check step each) and after "
            "(checks in the asset's own step)")
    headline = (f"wall **{before['wall_s_median']:g} s → {after['wall_s_median']:g} s** "
                f"({data['wall_ratio_before_over_after']:g}x); steps {before['steps']} → {after['steps']}; "
                f"checks' share of step time {before['checks_share_of_steps']:.1%} (check steps "
                f"{before['check_steps_s_median']:g} s beside a {before['work_step_s_median']:g} s silver step) → "
                f"validation {after['validation_s_median']:g} s inside the one {after['work_step_s_median']:g} s step")
    return what, headline


def ingest_speed(data: dict) -> tuple[str, str]:
    h, code = data["headline"], data["code"]
    sizes = "/".join(f"{n:,}" for n in data["sizes"])
    old = f" against the Python readers before it ({code['old']['commit'][:7]})" if "old" in code else ""
    what = ("ingest (source files → raw_pairs + ingest_quarantine Parquet parts) through DuckDB "
            f"({code['new']['commit'][:7]}){old}, each side in a fresh process on the seeded demo data "
            f"({sizes} records)")
    parts = ["records/s " + ", ".join(f"{int(n):,}: **{v:,}**" for n, v in h["new_records_per_s"].items())]
    if h["speedup_new_over_old"]:
        parts.append("over the Python readers " + ", ".join(f"at {int(n):,}: **{v:.2f}x**"
                                                             for n, v in h["speedup_new_over_old"].items()))
    if "new_peak_rss_ratio" in h:
        q = h["new_peak_rss_ratio"]
        peaks = {r["records"]: r["runs"]["new"]["peak_rss_mb"] for r in data["rows"] if "new" in r["runs"]}
        parts.append(f"peak RSS {peaks[q['from']]:,.0f} → {peaks[q['to']]:,.0f} MB ({q['from']:,} → {q['to']:,}: "
                     f"**{q['ratio']:.2f}x**, target ≤ {q['limit']:g}x {'met' if q['within_limit'] else 'NOT met'})")
    if h["counts_identical"] is not None:
        parts.append("counts per source and reason identical: " + ("yes" if h["counts_identical"] else "NO")
                     + f"; {data['sample']:,}-pair sample equal: " + ("yes" if h["sample_equal"] else "NO"))
    return what, "new path " + "; ".join(parts)


def retrieval_scale(data: dict) -> tuple[str, str]:
    rows = data["rows"]
    sizes = sorted({r["rows"] for r in rows if not r["kind"].startswith("real")})
    what = ("recall@10 against exact search (plain and within the query's task category) and single-query "
            "latency of the pipeline's LanceDB index settings, derived from the row count, on generated "
            f"clustered vectors ({'/'.join(f'{n:,}' for n in sizes)} rows) and on the real pairs of "
            "../shared/data, against the fixed settings chosen at 50k")
    parts = []
    for n in sizes:
        mine = next(r for r in rows if r["rows"] == n and r["kind"] == "defaults")
        old = next((r for r in rows if r["rows"] == n and r["kind"].startswith("fixed")), None)
        text = (f"{n:,}: **{_num(mine['recall_at_10'])} / {_num(mine['recall_at_10_filtered'])}**, "
                f"p50 {mine['p50_ms']:.1f} ms ({mine['num_partitions']:,} partitions, nprobes {mine['nprobes']})")
        if old:
            text += f", fixed 50k choice {_num(old['recall_at_10'])} / {_num(old['recall_at_10_filtered'])}"
        parts.append(text)
    for r in rows:
        if r["kind"].startswith("real"):
            parts.append(f"{r['kind']}: {_num(r['recall_at_10'])} / {_num(r['recall_at_10_filtered'])}")
    return what, "recall@10 plain / filtered at " + "; ".join(parts)


def embeddings(data: dict) -> tuple[str, str]:
    h, rows = data["headline"], {r["backend"]: r for r in data["rows"]}
    torch, int8, fp32 = rows["torch"], rows["openvino int8"], rows["openvino fp32"]
    what = (f"pair embeddings (MiniLM) of the {data['texts']:,} real pairs of ../shared/data on the CPU, "
            f"{data['threads']} threads: today's PyTorch path against OpenVINO fp32 and int8 (NNCF), side by side")
    headline = (f"int8 over torch **{h['int8_speedup_vs_torch']:.2f}x** ({torch['pairs_per_s']:g} → "
                f"{int8['pairs_per_s']:g} pairs/s; target 3x {'met' if h['speedup_target_met'] else 'NOT met'}), "
                f"fp32 {fp32['speedup_vs_torch']:.2f}x; int8 cosine with torch fp32 min **{h['int8_cosine_min']:.4f}**, "
                f"p1 {h['int8_cosine_p1']:.4f}, mean {h['int8_cosine_mean']:.4f}; recall@10 of exact search "
                f"{h['int8_recall_at_10']:.3f}")
    return what, headline


HEADLINES: dict[str, Callable[[Any], tuple[str, str]]] = {
    "embeddings": embeddings,
    "retrieval_scale": retrieval_scale,
    "silver_checks": silver_checks,
    "celery_workers": celery_workers,
    "object_store": object_store,
    "noise_detection": noise_detection,
    "quality": quality,
    "ingest_speed": ingest_speed,
}


# --- any other results file ------------------------------------------------------------------------

def generic(data: Any) -> tuple[str, str]:
    """Numbers at the top level (and one level down), for a results file this script does not know."""
    found: list[str] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, bool):
                continue
            if isinstance(value, (int, float)):
                found.append(f"{key} {value:g}")
            elif isinstance(value, dict):
                found += [f"{key}.{k} {v:g}" for k, v in value.items()
                          if isinstance(v, (int, float)) and not isinstance(v, bool)]
    elif isinstance(data, list):
        found.append(f"{len(data)} rows")
    return ("(not described yet: add it to HEADLINES in benchmarks/summary.py)",
            ", ".join(found[:6]) or "(no top-level figures)")


# --- machine and load, wherever the file records them ----------------------------------------------

def _walk(data: Any):
    if isinstance(data, dict):
        for key, value in data.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(data, list):
        for value in data:
            yield from _walk(value)


def machine_and_load(data: Any) -> str:
    machines, loads = [], []
    for key, value in _walk(data):
        if key == "machine" and isinstance(value, str) and value not in machines:
            machines.append(value)
        elif key.startswith("load") and isinstance(value, (int, float)) and not isinstance(value, bool):
            loads.append(float(value))
    parts = machines[:]
    if loads:
        low, high = min(loads), max(loads)
        parts.append(f"load average {low:g}" + (f"-{high:g}" if high != low else ""))
    if isinstance(data, dict) and isinstance(data.get("run"), dict):
        wall = data["run"].get("total_wall_seconds") or data["run"].get("wall_seconds")
        if isinstance(wall, (int, float)):
            parts.append(f"{wall / 60:.0f} min in all")
    return "; ".join(parts) or "not recorded in the file"


# --- the table ---------------------------------------------------------------------------------------

def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _outside_block(readme: str) -> str:
    if START in readme and END in readme:
        return readme[:readme.index(START)] + readme[readme.index(END) + len(END):]
    return readme


def section_of(stem: str, readme: str) -> tuple[str, str] | None:
    """(heading, anchor) of the `## ` section of the README that first cites results/<stem>.*"""
    heading = None
    fenced = False
    for line in _outside_block(readme).split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            heading = line[3:].strip()
        elif heading and re.search(rf"results/{re.escape(stem)}\.", line):
            return heading, _slug(heading)
    return None


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def rows(results: Path = RESULTS, readme_text: str = "") -> list[dict[str, str]]:
    out = []
    for path in sorted(results.glob("*.json")):
        data = json.loads(path.read_text())
        stem = path.stem
        try:
            what, headline = HEADLINES.get(stem, generic)(data)
        except (KeyError, TypeError, ValueError, IndexError) as e:  # the file's shape changed: say so
            what, headline = generic(data)
            headline = f"(summary.py could not read its usual figures: {type(e).__name__} {e}) " + headline
        section = section_of(stem, readme_text)
        name = stem.replace("_", " ")
        files = f"[{path.name}](results/{path.name})"
        if path.with_suffix(".md").exists():
            files += f", [{stem}.md](results/{stem}.md)"
        out.append({
            "benchmark": f"[{name}](#{section[1]})" if section else name,
            "what": what, "headline": headline, "machine": machine_and_load(data), "files": files,
        })
    return out


def table(results: Path = RESULTS, readme_text: str | None = None) -> str:
    if readme_text is None:
        readme_text = README.read_text() if README.exists() else ""
    lines = ["| benchmark | what it measures | headline figures | machine / load | results |",
             "|---|---|---|---|---|"]
    for row in rows(results, readme_text):
        lines.append("| " + " | ".join(_cell(row[k]) for k in ("benchmark", "what", "headline", "machine", "files"))
                     + " |")
    only_md = sorted(p.name for p in results.glob("*.md") if not p.with_suffix(".json").exists())
    text = "\n".join(lines)
    if only_md:
        text += ("\n\nResults kept only as Markdown reports (see the sections below): "
                 + ", ".join(f"[{n}](results/{n})" for n in only_md) + ".")
    return text


def block(results: Path = RESULTS, readme_text: str | None = None) -> str:
    """What goes between the markers, markers included."""
    return f"{START}\n{GENERATED}\n{table(results, readme_text)}\n{END}"


def current_block(readme_text: str) -> str | None:
    if START not in readme_text or END not in readme_text:
        return None
    return readme_text[readme_text.index(START):readme_text.index(END) + len(END)]


def write(readme: Path = README, results: Path = RESULTS) -> bool:
    """Replace the block in the README; True if it changed."""
    text = readme.read_text()
    old = current_block(text)
    if old is None:
        raise SystemExit(f"{readme}: the markers {START} and {END} are missing")
    new = block(results, text)
    if new == old:
        return False
    readme.write_text(text.replace(old, new, 1))
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="replace the summary block in benchmarks/README.md")
    group.add_argument("--check", action="store_true", help="exit 1 if the README's block is stale")
    args = parser.parse_args(argv)
    if args.write:
        changed = write()
        print(f"{README}: summary {'updated' if changed else 'already up to date'}")
        return 0
    if args.check:
        text = README.read_text()
        if current_block(text) != block(RESULTS, text):
            print(f"{README}: the summary block is stale; run python benchmarks/summary.py --write", file=sys.stderr)
            return 1
        return 0
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
