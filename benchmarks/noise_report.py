"""The noise-detection benchmark's report: figures per (noise, rule, RM) over seeds, the JSON rows,
the Markdown tables and the plots (benchmarks/noise_detection.py writes the inputs).

A pool pair counts as *detected* when the rule did not keep it (dropped, or recycled flipped);
gold pairs inside the lake are left out. AUROC is that of the rule's noise_score for the injected
flips (threshold-free); retention is the kept share of the pool.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
from sklearn.metrics import roc_auc_score

from synpref.lake.duck import lit  # noqa: E402
from synpref.lake import atomic_path

RULE_ORDER = ["insample-paper", "oof-paper", "oof-confident_learning", "oof-ensemble"]
RULE_NAMES = {"insample-paper": "paper, in-sample (before)", "oof-paper": "paper, out of fold",
              "oof-confident_learning": "confident learning, out of fold", "oof-ensemble": "ensemble, out of fold"}
METRICS = ["auroc", "precision", "recall", "kept_flip_rate", "retention"]  # the tables' column order
ARMS = ["acc_noisy", "acc_curated", "acc_recycled", "acc_clean"]


def decision_metrics(path: Path) -> dict:
    d = duckdb.sql(f"select injected_flip, status, noise_score from read_parquet({lit(path)})").fetchnumpy()
    flip, kept = np.asarray(d["injected_flip"], bool), np.asarray(d["status"]) == "kept"
    detected = ~kept
    return {"precision": (flip & detected).sum() / max(detected.sum(), 1),
            "recall": (flip & detected).sum() / flip.sum(),
            "auroc": roc_auc_score(flip, np.asarray(d["noise_score"], float)),
            "kept_flip_rate": (flip & kept).sum() / max(kept.sum(), 1), "retention": kept.mean()}


def collect(work: Path, noise: list[float], seeds: list[int]) -> list[dict]:
    """One row per (noise, rule, rm, seed)."""
    rows = []
    for rate in noise:
        for seed in seeds:
            out = work / "results" / f"noise-{round(rate * 100):02d}" / f"seed-{seed}"
            arms = json.loads((out / "arms.json").read_text()) if (out / "arms.json").exists() else None
            clean = work / "results" / "noise-00" / f"seed-{seed}" / "arms.json"
            if not arms or not clean.exists():
                continue
            for rule in RULE_ORDER:
                rows.append({"noise": rate, "rule": rule, "rm": "embedding", "seed": seed,
                             **decision_metrics(out / f"{rule}.parquet"), "acc_noisy": arms["noisy"],
                             "acc_curated": arms[f"curated/{rule}"], "acc_recycled": arms[f"recycled/{rule}"],
                             "acc_clean": json.loads(clean.read_text())["clean"], "acc_gold_rm": arms["gold_rm"],
                             "acc_fold_models": arms["fold_models"]})
    minilm = work / "minilm"
    for rule in RULE_ORDER:
        path = minilm / "decisions" / f"{rule}.parquet"
        if path.exists():
            arms = json.loads((minilm / "arms.json").read_text()) if (minilm / "arms.json").exists() else {}
            rows.append({"noise": 0.25, "rule": rule, "rm": "minilm", "seed": 0, **decision_metrics(path),
                         "acc_noisy": arms.get("noisy"), "acc_curated": arms.get(f"curated/{rule}"),
                         "acc_recycled": arms.get(f"recycled/{rule}"), "acc_clean": arms.get("clean")})
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Means over seeds with _std twins, per (noise, rule, rm)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["noise"], r["rule"], r["rm"]), []).append(r)
    out = []
    for (noise, rule, rm), group in sorted(groups.items(), key=lambda g: (g[0][2], g[0][0], RULE_ORDER.index(g[0][1]))):
        row = {"noise": noise, "rule": rule, "rm": rm, "seeds": len(group)}
        for g in group:  # paired over seeds: each seed has its own test set, which moves both arms
            g["curated_minus_noisy"] = g["acc_curated"] - g["acc_noisy"] \
                if g.get("acc_curated") is not None and g.get("acc_noisy") is not None else None
        for key in METRICS + ARMS + ["curated_minus_noisy"]:
            values = [g[key] for g in group if g.get(key) is not None]
            row[key] = round(float(np.mean(values)), 4) if values else None
            row[f"{key}_std"] = round(float(np.std(values)), 4) if values else None
        out.append(row)
    return out


def _cell(row: dict, key: str) -> str:
    if row.get(key) is None:
        return "n/a"
    return f"{row[key]:.3f}" + (f" ± {row[key + '_std']:.3f}" if row["seeds"] > 1 else "")


def tables(summary: list[dict]) -> str:
    lines = []
    for rm in ("embedding", "minilm"):
        chosen = [r for r in summary if r["rm"] == rm]
        if not chosen:
            continue
        title = "Embedding RM (linear BT head on frozen MiniLM embeddings)" if rm == "embedding" \
            else "Fine-tuned MiniLM (DeepSpeed, CPU)"
        lines += [f"\n**{title}**, seeds per row: {', '.join(sorted({str(r['seeds']) for r in chosen}))}\n",
                  "| injected | rule | AUROC | precision | recall | kept-set flip rate | retention | "
                  "(a) noisy | (b) curated | (c) + recycled | (d) clean | (b) - (a), paired |",
                  "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in chosen:
            lines.append(f"| {r['noise']:.0%} | {RULE_NAMES[r['rule']]} | " + " | ".join(
                _cell(r, k) for k in METRICS + ARMS + ["curated_minus_noisy"]) + " |")
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    emb = [r for r in summary if r["rm"] == "embedding"]
    for rule in RULE_ORDER:
        pts = sorted((r["noise"], r["auroc"], r["auroc_std"]) for r in emb if r["rule"] == rule)
        if pts:
            x, y, e = zip(*pts)
            axes[0].errorbar([v * 100 for v in x], y, yerr=e, marker="o", capsize=3, label=RULE_NAMES[rule])
    axes[0].axhline(0.5, color="grey", linestyle="--", linewidth=1)
    axes[0].set(xlabel="injected flips (%)", ylabel="AUROC of the noise score", title="finding the flips")
    axes[0].legend(fontsize=8)
    at25 = [r for r in emb if abs(r["noise"] - 0.25) < 1e-9]
    labels = ["(a) noisy"] + [RULE_NAMES[r["rule"]].replace(", ", "\n") for r in at25] + ["(d) clean"]
    values = [at25[0]["acc_noisy"]] + [r["acc_curated"] for r in at25] + [at25[0]["acc_clean"]] if at25 else []
    errors = [at25[0]["acc_noisy_std"]] + [r["acc_curated_std"] for r in at25] + [at25[0]["acc_clean_std"]] \
        if at25 else []
    axes[1].bar(range(len(values)), values, yerr=errors, capsize=3, color="#4c72b0")
    axes[1].set_xticks(range(len(values)), labels, fontsize=7)
    axes[1].set(ylim=(0.5, max(values + [0.6]) + 0.02) if values else None, ylabel="held-out test accuracy",
                title="RM trained on each set (25% flips)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


SIM_RULES = ("paper", "confident_learning", "ensemble")
SIM_ACCURACIES = (0.57, 0.60, 0.62, 0.65, 0.68, 0.70, 0.75)


def measured_point(work: Path, rate: float, seeds: list[int]) -> tuple[float, float]:
    """(the fold models' accuracy on the pool's true labels, the two RMs' logit correlation),
    means over seeds: where the measured pipeline sits on the simulated curves."""
    from benchmarks.quality_sim import logit_correlation

    accuracy, rho = [], []
    for seed in seeds:
        path = work / "results" / f"noise-{round(rate * 100):02d}" / f"seed-{seed}" / "oof-paper.parquet"
        if path.exists():
            d = duckdb.sql(f"select injected_flip, p_best, p_gold from read_parquet({lit(path)})").fetchnumpy()
            accuracy.append(float(((d["p_best"] > 0.5) != d["injected_flip"]).mean()))
            rho.append(logit_correlation(d["p_best"], d["p_gold"]))
    return (float(np.mean(accuracy)), float(np.mean(rho))) if accuracy else (float("nan"), float("nan"))


def simulation(rate: float, rho: float) -> str:
    """Each rule's SQL on simulated scores of two RMs with logit correlation rho (quality_sim)."""
    from benchmarks.quality_sim import simulate

    lines = ["| RM accuracy | " + " | ".join(f"{r}: AUROC / precision / kept-set flip rate / retention"
                                              for r in SIM_RULES) + " |",
             "|---:|" + "---:|" * len(SIM_RULES)]
    for accuracy in SIM_ACCURACIES:
        cells = []
        for rule in SIM_RULES:
            r = simulate(accuracy, round(rho, 2), rate, pairs=8000, rule=rule)
            cells.append(f"{r['auroc']:.3f} / {r['precision']:.3f} / {r['kept_flip_rate']:.3f} / {r['retention']:.3f}")
        lines.append(f"| {accuracy:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_report(work: Path, results: Path, run: dict) -> list[dict]:
    rows = collect(work, run["noise"], run["seeds"])
    summary = summarise(rows)
    results.mkdir(parents=True, exist_ok=True)
    keys = ["noise", "rule", "rm", "seeds"] + [k for m in METRICS + ARMS + ["curated_minus_noisy"]
                                               for k in (m, f"{m}_std")]
    with atomic_path(results / "noise_detection.json") as tmp:
        tmp.write_text(json.dumps([{k: r[k] for k in keys} for r in summary], indent=2))
    runs = [json.loads(line) for line in (work / "runs.jsonl").read_text().splitlines()] \
        if (work / "runs.jsonl").exists() else []
    wall = sum(r["wall_seconds"] for r in runs)
    loads = [r["load_average"][0] for r in runs if r.get("load_average")]
    header = (f"Command: `benchmarks/noise_detection.py` (folds {run['folds']}, repeats {run['repeats']}); machine: "
              f"{run['machine']}; wall time over every invocation {wall / 60:.1f} min"
              + (f", 1-min load average at the end {min(loads):.1f}-{max(loads):.1f}" if loads else "") + ".\n")
    accuracy, rho = measured_point(work, 0.25, run["seeds"])
    sim = (f"\nSimulation at 25% flips (benchmarks/quality_sim.py: each rule's SQL on simulated scores of two RMs "
           f"whose logits correlate {rho:.2f}, as measured here; no judges). Measured: the fold models' accuracy "
           f"on the pool's true labels is {accuracy:.3f} (mean over seeds).\n\n" + simulation(0.25, rho))
    with atomic_path(results / "noise_detection.md") as tmp:
        tmp.write_text(header + tables(summary) + sim)
    if summary:
        plot(summary, results / "noise_detection.png")
    return summary
