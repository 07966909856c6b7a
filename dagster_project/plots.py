"""Pictures for asset metadata: a matplotlib figure as a Markdown image the Dagster UI shows."""

from __future__ import annotations

import base64
import io

import dagster as dg


def figure_md(fig, caption: str = "") -> dg.MetadataValue:
    """The figure as an inline PNG (closed afterwards, so runs do not pile up figures)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return dg.MetadataValue.md(f"![{caption}](data:image/png;base64,{data})")


def retention_bars(rows: list[tuple], title: str) -> dg.MetadataValue:
    """Stacked bars of kept / flipped / dropped per group; rows are (name, pool, kept, flipped, dropped, ...)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [str(r[0]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(rows) + 1.2))
    left = [0] * len(rows)
    for i, (label, colour) in enumerate((("kept", "#4c9f70"), ("flipped", "#e0a030"), ("dropped", "#c0504d"))):
        values = [r[2 + i] for r in rows]
        ax.barh(names, values, left=left, label=label, color=colour)
        left = [a + b for a, b in zip(left, values)]
    ax.invert_yaxis()
    ax.set_xlabel("pool pairs")
    ax.set_title(title)
    ax.legend(loc="lower right")
    return figure_md(fig, title)


def line_plot(series: dict[str, tuple[list, list]], xlabel: str, ylabel: str, title: str) -> dg.MetadataValue:
    """Lines of (x, y) points per label, e.g. a loss curve or accuracy per checkpoint."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for label, (x, y) in series.items():
        ax.plot(x, y, marker="o" if len(x) <= 30 else None, label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return figure_md(fig, title)


def histograms(series: dict[str, list[int]], xlabel: str, title: str) -> dg.MetadataValue:
    """Overlaid histograms of scores in [0, 1], given as counts per equal-width bin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    for label, counts in series.items():
        width = 1 / max(len(counts), 1)
        ax.bar([i * width for i in range(len(counts))], counts, width=width, align="edge", alpha=0.5, label=label)
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel=xlabel, ylabel="pairs", title=title, xlim=(0, 1))
    ax.legend()
    return figure_md(fig, title)
