"""The gold_pairs figure: what became of the labelled pairs, and how far annotators agree."""

from __future__ import annotations

from synpref.gold.gold_pairs import OUTCOMES, GoldSummary


def gold_figure(summary: GoldSummary):
    """A matplotlib figure: labelled pairs by outcome, beside Cohen's kappa for each two annotators."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    pairs = summary.agreement.cohen
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [1.1, 1]})
    counts = [summary.outcomes.get(o, 0) for o in OUTCOMES]
    colours = ["#4c8c5a", "#c07a2c", "#8a8fa3", "#b5b8c4", "#a33"]
    left.barh(list(OUTCOMES)[::-1], counts[::-1], color=colours[::-1])
    for y, n in enumerate(counts[::-1]):
        left.text(n, y, f" {n:,}", va="center", fontsize=9)
    left.set_title("labelled pairs by outcome")
    left.set_xlabel("pairs")
    left.margins(x=0.15)
    names = sorted({p.a for p in pairs} | {p.b for p in pairs})
    if names:
        index = {n: i for i, n in enumerate(names)}
        grid = np.full((len(names), len(names)), np.nan)
        for p in pairs:
            if p.kappa is not None:
                grid[index[p.a], index[p.b]] = grid[index[p.b], index[p.a]] = p.kappa
        image = right.imshow(grid, vmin=-1, vmax=1, cmap="RdYlGn")
        right.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        right.set_yticks(range(len(names)), names, fontsize=8)
        for p in pairs:
            if p.kappa is not None:
                for i, j in ((index[p.a], index[p.b]), (index[p.b], index[p.a])):
                    right.text(j, i, f"{p.kappa:.2f}", ha="center", va="center", fontsize=8)
        fig.colorbar(image, ax=right, fraction=0.046)
        fleiss = summary.agreement.fleiss_kappa
        right.set_title(f"Cohen's kappa per annotator pair (Fleiss' {fleiss:.2f})" if fleiss is not None
                        else "Cohen's kappa per annotator pair")
    else:
        right.axis("off")
        right.text(0.5, 0.5, "no pair judged by two annotators yet", ha="center", va="center")
    fig.tight_layout()
    return fig
