"""Small builders for asset metadata: counts tables and row previews as Markdown."""

from __future__ import annotations


import dagster as dg
import polars as pl

from synpref.lake import is_remote

PREVIEW_ROWS = 5
PREVIEW_CHARS = 80


def counts_table(counts: dict[str, int], key: str = "reason") -> dg.MetadataValue:
    lines = [f"| {key} | rows |", "|---|---:|"] + [f"| {k} | {v:,} |" for k, v in counts.items()]
    return dg.MetadataValue.md("\n".join(lines) if counts else "_none_")


def preview(files: list, columns: list[str]) -> dg.MetadataValue:
    """The first rows of a table, long texts clipped, as a Markdown table."""
    if not files:
        return dg.MetadataValue.md("_empty_")
    frame = _head(files, columns)
    frame = frame.with_columns(_as_text(c, dtype).str.slice(0, PREVIEW_CHARS) for c, dtype in frame.schema.items())
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.iter_rows()]
    return dg.MetadataValue.md("\n".join([header, rule, *rows]))


def _head(files: list, columns: list[str]) -> pl.DataFrame:
    if is_remote(files[0]):  # a store's files: read the first rows of the first non-empty part
        import pyarrow.parquet as pq

        for path in files:
            with pq.ParquetFile(path.path, filesystem=path.fs) as f:
                batch = next(f.iter_batches(batch_size=PREVIEW_ROWS, columns=columns), None)
            if batch is not None and batch.num_rows:
                return pl.from_arrow(batch)
        return pl.from_arrow(pq.read_schema(files[0].path, filesystem=files[0].fs).empty_table().select(columns))
    return pl.scan_parquet(files).select(columns).head(PREVIEW_ROWS).collect()


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


def in_lake(lake, path) -> str:
    """A path as metadata shows it: relative to the lake root when under it, so a copied or moved
    lake's history still names its own files; else as given (a sources file elsewhere)."""
    from synpref.lake import relative_to_root

    try:
        return relative_to_root(lake, path)
    except ValueError:
        return str(path)
