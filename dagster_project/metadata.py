"""Small builders for asset metadata: counts tables and row previews as Markdown."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl

PREVIEW_ROWS = 5
PREVIEW_CHARS = 80


def counts_table(counts: dict[str, int], key: str = "reason") -> dg.MetadataValue:
    lines = [f"| {key} | rows |", "|---|---:|"] + [f"| {k} | {v:,} |" for k, v in counts.items()]
    return dg.MetadataValue.md("\n".join(lines) if counts else "_none_")


def preview(files: list[Path], columns: list[str]) -> dg.MetadataValue:
    """The first rows of a table, long texts clipped, as a Markdown table."""
    if not files:
        return dg.MetadataValue.md("_empty_")
    frame = pl.scan_parquet(files).select(columns).head(PREVIEW_ROWS).collect()
    frame = frame.with_columns(_as_text(c, dtype).str.slice(0, PREVIEW_CHARS) for c, dtype in frame.schema.items())
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.iter_rows()]
    return dg.MetadataValue.md("\n".join([header, rule, *rows]))


def _as_text(column: str, dtype) -> pl.Expr:
    if isinstance(dtype, pl.List):  # e.g. a judge's answers: "Candidate 1, Candidate 2"
        return pl.col(column).list.eval(pl.element().cast(pl.String)).list.join(", ")
    return pl.col(column).cast(pl.String)


def _cell(value) -> str:
    return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")


def records_table(records: list[dict], columns: list[str], digits: int = 4) -> dg.MetadataValue:
    """Rows of dicts as a Markdown table, floats rounded."""
    if not records:
        return dg.MetadataValue.md("_none_")
    fmt = lambda v: f"{v:.{digits}f}" if isinstance(v, float) else _cell(v)  # noqa: E731
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in records]
    return dg.MetadataValue.md("\n".join(lines))
