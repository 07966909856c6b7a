"""The quality benchmark's report: tables (Markdown + JSON) and plots from the finished results.

Reads <work>/results/noise-NN/seed-S/{noisy,curated,recycled,clean,gold_rm,stage2}.json and the
pool outcomes (pool.parquet) written by benchmarks/quality.py; writes quality.md, quality.json,
quality_accuracy.png and quality_p_chosen.png to benchmarks/results/.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from synpref.lake.duck import lit  # noqa: E402
from benchmarks.quality_metrics import flip_metrics

ARMS = (("noisy", "(a) noisy pool"), ("curated", "(b) curated (kept)"),
        ("recycled", "(c) kept + recycled flips"), ("clean", "(d) clean pool (oracle)"))
FILTER_FIGURES = ("kept_flip_rate", "precision", "recall", "retention", "recycled", "recycle_precision",
                  "recycled_set_flip_rate", "needs_judges", "best_rm_pool_accuracy", "gold_rm_pool_accuracy",
                  "best_agrees_clean", "best_agrees_flipped", "gold_agrees_clean", "gold_agrees_flipped")


def _load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def collect(work: Path) -> dict:
    """{noise pct: {seed: {arm: result, "stage2": ..., "filter": ...}}}; clean results under every level."""
    levels: dict[int, dict[int, dict]] = {}
    clean = {int(d.name.split("-")[1]): _load(d / "clean.json") for d in (work / "results" / "noise-00").glob("seed-*")}
    for level in sorted((work / "results").glob("noise-*")):
        pct = int(level.name.split("-")[1])
        if pct == 0:
            continue
        for seed_dir in sorted(level.glob("seed-*")):
            seed = int(seed_dir.name.split("-")[1])
            row = {arm: _load(seed_dir / f"{arm}.json") for arm, _ in ARMS if arm != "clean"}
            row["clean"] = clean.get(seed)
            row["gold_rm"] = _load(seed_dir / "gold_rm.json")
            row["stage2"] = _load(seed_dir / "stage2.json")
            if (seed_dir / "pool.parquet").exists():
                row["filter"] = flip_metrics(str(seed_dir / "pool.parquet"))
            levels.setdefault(pct, {})[seed] = row
    return levels


def mean_sd(values: list[float]) -> tuple[float, float] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(stat, digits: int = 3) -> str:
    return "n/a" if stat is None else f"{stat[0]:.{digits}f} ± {stat[1]:.{digits}f}"


def summarise(levels: dict) -> dict:
    summary = {}
    for pct, seeds in levels.items():
        acc = {arm: mean_sd([(r.get(arm) or {}).get("accuracy") for r in seeds.values()]) for arm, _ in ARMS}
        acc["gold_rm"] = mean_sd([(r.get("gold_rm") or {}).get("accuracy") for r in seeds.values()])
        filt = {k: mean_sd([(r.get("filter") or {}).get(k) for r in seeds.values()]) for k in FILTER_FIGURES}
        some = next((r["filter"] for r in seeds.values() if r.get("filter")), {})
        summary[pct] = {"seeds": sorted(seeds), "accuracy": acc, "filter": filt,
                        "pool": some.get("pool"), "injected": some.get("injected")}
    return summary


def verdict(summary: dict, pct: int = 25) -> list[str]:
    s = summary.get(pct)
    if not s or not s["accuracy"]["curated"] or not s["accuracy"]["noisy"] or not s["filter"]["kept_flip_rate"]:
        return [f"The {pct}% level is not finished: no verdict."]
    (cm, cs), (nm, ns) = s["accuracy"]["curated"], s["accuracy"]["noisy"]
    gain, spread = cm - nm, max(cs, ns)
    rate = s["filter"]["kept_flip_rate"][0]
    return [
        f"- Curated RM beats the noisy RM by more than the seed spread: curated {cm:.3f} ± {cs:.3f}, noisy "
        f"{nm:.3f} ± {ns:.3f}, difference {gain:+.3f} against a spread of {spread:.3f}: "
        f"**{'met' if gain > spread else 'not met'}**.",
        f"- Kept set's flip rate at most half the injected rate ({pct / 200:.3f}): {rate:.3f}: "
        f"**{'met' if rate <= pct / 200 else 'not met'}**.",
    ]


def render(levels: dict, summary: dict, run: dict) -> str:
    c = run["config"]
    lines = [
        f"Command: `{run['command']}`",
        f"Machine: {run['machine']} (shared with other jobs, no GPU). Wall time: "
        f"{run.get('total_wall_seconds', run['wall_seconds']) / 60:.1f} min over every invocation of the command.",
        f"Split (seed {run['split_seed']}): gold {run['gold']}, test {run['test']}, pool "
        f"{run['pool'] or 'the rest'}; flip margin {run['flip_margin']}; recycling on; LLM judges off (CPU).",
        f"Training (every RM, arms (a)-(d) and the gold RM alike): backbone {c['backbone']}, max_length "
        f"{c['max_length']}, {c['epochs']} epoch(s), LR {c['learning_rate']:g} ({c['lr_schedule']}, warmup "
        f"{c['warmup_steps']}), global batch {c['global_batch_size']} (micro {c['micro_batch_size']}), "
        + (f"best checkpoint on gold every {c['eval_every']} steps" if c["eval_every"] else
           "evaluated on gold once, at the end (the last checkpoint is kept)")
        + " (the gold RM: on its 20% held-out gold share), "
        f"DeepSpeed {c['zero_config']}, fp32, 1 process; seeds {run['seeds']}.",
        "",
        "Held-out test accuracy (mean ± standard deviation over seeds):",
        "",
        "| injected flips | " + " | ".join(name for _, name in ARMS) + " | gold RM |",
        "|---:|" + "---:|" * (len(ARMS) + 1),
    ]
    for pct, s in sorted(summary.items()):
        lines.append(f"| {pct}% | " + " | ".join(fmt(s["accuracy"][arm]) for arm, _ in ARMS)
                     + f" | {fmt(s['accuracy']['gold_rm'])} |")
    lines += ["", "Stage 2's filter on the pool (mean ± standard deviation over seeds; detected = not kept):", "",
              "| injected | pool | kept-set flip rate | precision | recall | retention | recycled | recycle "
              "precision | (c) set flip rate | no verdict (p_best <= 0.5) | best RM acc. on pool truth | gold RM acc. on pool truth |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for pct, s in sorted(summary.items()):
        f = s["filter"]
        lines.append(f"| {pct}% ({s['injected']}) | {s['pool']} | {fmt(f['kept_flip_rate'])} | {fmt(f['precision'])} | "
                     f"{fmt(f['recall'])} | {fmt(f['retention'])} | {fmt(f['recycled'], 0)} | "
                     f"{fmt(f['recycle_precision'])} | {fmt(f['recycled_set_flip_rate'])} | "
                     f"{fmt(f['needs_judges'], 0)} | {fmt(f['best_rm_pool_accuracy'])} | "
                     f"{fmt(f['gold_rm_pool_accuracy'])} |")
    lines += ["", "Agreement of each RM with the pool's label (p > 0.5), on clean and on injected-flipped pairs "
                  "(an RM with symmetric errors at accuracy q agrees q and 1 - q):", "",
              "| injected | best RM, clean | best RM, flipped | gold RM, clean | gold RM, flipped |",
              "|---:|---:|---:|---:|---:|"]
    for pct, s in sorted(summary.items()):
        f = s["filter"]
        lines.append(f"| {pct}% | {fmt(f['best_agrees_clean'])} | {fmt(f['best_agrees_flipped'])} | "
                     f"{fmt(f['gold_agrees_clean'])} | {fmt(f['gold_agrees_flipped'])} |")
    lines += ["", "Per seed:", "",
              "| injected | seed | " + " | ".join(name.split()[0] for _, name in ARMS) + " | gold RM | kept | kept flips | "
              "dropped | recycled | train pairs (a) / (b) / (c) |", "|---:|---:|" + "---:|" * (len(ARMS) + 6)]
    for pct, seeds in sorted(levels.items()):
        for seed, r in sorted(seeds.items()):
            f = r.get("filter") or {}
            acc = " | ".join(f"{r[a]['accuracy']:.3f}" if r.get(a) else "" for a, _ in ARMS)
            trained = " / ".join(str(r[a]["train_pairs"]) if r.get(a) else "-" for a in ("noisy", "curated", "recycled"))
            kept_flips = round(f["kept_flip_rate"] * f["kept"]) if f.get("kept") else ""
            statuses = (r.get("stage2") or {}).get("statuses", {})
            lines.append(f"| {pct}% | {seed} | {acc} | {r['gold_rm']['accuracy'] if r.get('gold_rm') else '':.3} | "
                         f"{f.get('kept', '')} | {kept_flips} | {statuses.get('dropped', '')} | "
                         f"{f.get('recycled', '')} | {trained} |" if r.get("gold_rm") else
                         f"| {pct}% | {seed} | {acc} | | | | | | {trained} |")
    lines += ["", "Verdict at 25% injected flips:", "", *verdict(summary)]
    return "\n".join(lines) + "\n"


def plot_accuracy(summary: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = sorted(summary)
    fig, ax = plt.subplots(figsize=(7.5, 4))
    width = 0.8 / len(ARMS)
    for i, (arm, name) in enumerate(ARMS):
        stats = [summary[p]["accuracy"][arm] or (float("nan"), 0) for p in levels]
        ax.bar([j + (i - (len(ARMS) - 1) / 2) * width for j in range(len(levels))], [s[0] for s in stats], width,
               yerr=[s[1] for s in stats], capsize=3, label=name)
    ax.set_xticks(range(len(levels)), [f"{p}% flips" for p in levels])
    ax.set_ylabel("held-out test accuracy")
    low = min((summary[p]["accuracy"][a] or (1, 0))[0] for p in levels for a, _ in ARMS)
    ax.set_ylim(max(0.0, low - 0.08), None)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_title("RMs trained on each pool (error bars: seed standard deviation)")
    ax.legend(fontsize=8, loc="lower left")
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_p_chosen(work: Path, levels: list[int], out: Path) -> None:
    """p_gold and p_best of injected-flipped vs clean pool pairs, pooled over seeds, per level."""
    import duckdb
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(levels), 2, figsize=(9, 2.6 * len(levels)), squeeze=False)
    for row, pct in enumerate(levels):
        glob = str(work / "results" / f"noise-{pct:02d}" / "seed-*" / "pool.parquet")
        data = duckdb.sql(f"select injected_flip, p_best, p_gold from read_parquet({lit(glob)})").fetchall()
        for col, (index, name) in enumerate(((2, "gold RM (p_gold)"), (1, "current best RM (p_best)"))):
            ax = axes[row][col]
            # the data's own range: weak RMs keep p close to 0.5, fixed 0-1 bins would hide the shape
            low, high = min(d[index] for d in data), max(d[index] for d in data)
            bins = [low + (high - low) * i / 40 for i in range(41)]
            for flag, label, colour in ((False, "clean pairs", "#4c72b0"), (True, "injected flips", "#dd8452")):
                ax.hist([d[index] for d in data if d[0] == flag], bins=bins, alpha=0.6, density=True, label=label,
                        color=colour)
            ax.axvline(0.5, color="black", lw=0.8)
            ax.set_title(f"{pct}% flips: {name}", fontsize=9)
            ax.set_xlabel("p_chosen of the pool label")
            if col == 0:
                ax.set_ylabel("density")
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def measured_points(work: Path, pct: int) -> list[dict]:
    """Per seed: the two RMs' mean accuracy on the pool's true labels, their logit correlation and the
    kept-set flip rate, to set beside the simulation."""
    import duckdb

    from benchmarks.quality_sim import logit_correlation

    points = []
    for path in sorted((work / "results" / f"noise-{pct:02d}").glob("seed-*/pool.parquet")):
        m = flip_metrics(str(path))
        p = duckdb.sql(f"select p_best, p_gold from read_parquet({lit(path)})").fetchnumpy()
        points.append({"seed": int(path.parent.name.split("-")[1]), "kept_flip_rate": m["kept_flip_rate"],
                       # the accuracy of a symmetric RM that separates clean from flipped pairs as well
                       "accuracy": (2 + m["best_agrees_clean"] - m["best_agrees_flipped"] + m["gold_agrees_clean"]
                                    - m["gold_agrees_flipped"]) / 4,
                       "rho": logit_correlation(p["p_best"], p["p_gold"]), "retention": m["retention"],
                       "recall": m["recall"], "precision": m["precision"]})
    return points


def plot_simulation(sim: list[dict], points: list[dict], pct: int, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, key, title in zip(axes, ("kept_flip_rate", "recall", "retention"),
                              ("kept-set flip rate", "recall of flip detection", "retention")):
        for rho in sorted({r["rho"] for r in sim}):
            rows = [r for r in sim if r["rho"] == rho]
            ax.plot([r["accuracy"] for r in rows], [r[key] for r in rows], marker=".", label=f"simulated, rho {rho}")
        ax.scatter([p["accuracy"] for p in points], [p[key] for p in points], color="black", zorder=3,
                   label="measured (seeds)")
        if key == "kept_flip_rate":
            ax.axhline(pct / 200, color="red", ls="--", lw=0.8, label=f"target: half of {pct}%")
            ax.axhline(pct / 100, color="grey", ls=":", lw=0.8, label="injected")
        ax.set_xlabel("RM accuracy (measured: (1 + agree on clean - agree on flipped) / 2)", fontsize=8)
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Stage 2's filter (its SQL) on simulated RM scores, {pct}% injected flips, judges off", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def render_analysis(sim: list[dict], points: list[dict], pct: int) -> str:
    lines = ["", f"Simulation at {pct}% flips (the filter's SQL on simulated scores; rho = the correlation of the "
                 "two RMs' errors): kept-set flip rate / recall / retention by RM accuracy on the pool's true labels:",
             "", "| RM accuracy | " + " | ".join(f"rho {rho}" for rho in sorted({r["rho"] for r in sim})) + " |",
             "|---:|" + "---:|" * len({r["rho"] for r in sim})]
    for acc in sorted({r["accuracy"] for r in sim}):
        cells = [next(r for r in sim if r["accuracy"] == acc and r["rho"] == rho) for rho in sorted({r["rho"] for r in sim})]
        lines.append(f"| {acc:.2f} | " + " | ".join(f"{c['kept_flip_rate']:.3f} / {c['recall']:.2f} / {c['retention']:.2f}"
                                                   for c in cells) + " |")
    lines += ["", "Measured per seed: " + "; ".join(
        f"seed {p['seed']}: effective RM accuracy {p['accuracy']:.3f}, logit correlation {p['rho']:.2f}, kept-set flip "
        f"rate {p['kept_flip_rate']:.3f}" for p in points) + "."]
    return "\n".join(lines) + "\n"


def write_report(work: Path, results: Path, run: dict, sim_level: int = 25) -> str:
    from benchmarks.quality_sim import sweep

    levels = collect(work)
    summary = summarise(levels)
    results.mkdir(parents=True, exist_ok=True)
    report = render(levels, summary, run)
    if summary:
        plot_accuracy(summary, results / "quality_accuracy.png")
        plot_p_chosen(work, sorted(p for p, s in summary.items() if s["pool"]), results / "quality_p_chosen.png")
        points = measured_points(work, sim_level)
        sim = sweep(sim_level / 100)
        plot_simulation(sim, points, sim_level, results / "quality_simulation.png")
        report += render_analysis(sim, points, sim_level)
    (results / "quality.md").write_text(report)
    (results / "quality.json").write_text(json.dumps({"run": run, "summary": {str(k): v for k, v in summary.items()},
                                                      "per_seed": {str(k): v for k, v in levels.items()}},
                                                     indent=2, default=str))
    print(report)
    return report
