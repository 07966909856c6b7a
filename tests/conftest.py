"""Shared fixtures: a lake in tmp_path, a sources-file writer, and the raw+silver run."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml

from synpref.ingest import ingest_sources
from synpref.lake import Lake
from synpref.silver import build_silver
from synpref.sources import load_sources

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake.at(tmp_path / "lake")


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def write_sources(path: Path, sources: list[dict], benchmark_prompts: list[str] | None = None,
                  field: str | None = None) -> Path:
    doc: dict = {"sources": sources}
    if benchmark_prompts is not None:
        doc["decontamination"] = {"benchmark_prompts": benchmark_prompts}
        if field:
            doc["decontamination"]["field"] = field
    path.write_text(yaml.safe_dump(doc))
    return path


def run_stages(lake: Lake, sources_file: Path):
    """Ingest then silver, the way the assets do; returns both summaries."""
    config = load_sources(sources_file)
    ingest = ingest_sources(lake, config)
    silver = build_silver(lake, config.decontamination) if lake.has_table("raw_pairs") else None
    return ingest, silver


def rows(lake: Lake, table: str, order: str = "source_file, source_row") -> list[dict]:
    con = duckdb.connect()
    try:
        rel = con.sql(f"select * from read_parquet('{lake.table_glob(table)}', union_by_name = true) "
                      f"order by {order}")
        return [dict(zip(rel.columns, r)) for r in rel.fetchall()]
    finally:
        con.close()


def tamper(lake, table: str, select: str) -> None:
    """Rewrite a table as `select` over its current rows (the planted violation)."""
    con = duckdb.connect()
    try:
        files = lake.table_files(table)
        con.execute(f"create table t as select * from read_parquet({[str(f) for f in files]}, union_by_name = true)")
        for f in files:
            f.unlink()
        con.execute(f"copy ({select.format(t='t')}) to '{lake.table_dir(table) / 'part-0.parquet'}' (format parquet)")
    finally:
        con.close()


LAKE_STAGES = "*silver_pairs"  # raw and silver tables, without the model stages


def lake_stages():
    """LAKE_STAGES as an asset selection, whole multi-asset stages included."""
    import dagster as dg

    return dg.AssetSelection.from_string(LAKE_STAGES).required_multi_asset_neighbors()


def dagster_resources(lake: Lake, sources_file, **overrides) -> dict:
    """Every resource the definitions need, pointed at a test lake."""
    from dagster_project.resources import (AnnotatorResource, EmbedderResource, LakeResource, QualityResource,
                                           SourcesResource)

    return {"lake": LakeResource(root=str(lake.root)), "sources": SourcesResource(path=str(sources_file)),
            "quality": QualityResource(), "annotator": AnnotatorResource(), "embedder": EmbedderResource(),
            **overrides}
