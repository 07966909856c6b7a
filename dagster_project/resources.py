"""Resources: the lake (root, DuckDB settings) and the sources file."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from synpref.duck import DuckSettings
from synpref.lake import Lake
from synpref.sources import SourcesConfig, SourcesError, load_sources


class LakeResource(dg.ConfigurableResource):
    """The lake: Parquet tables under one root, with a DuckDB file of views over them."""

    root: str | None = Field(
        default=None, description="Lake root folder; default $SYNPREF_LAKE, else ./lake (read at run time).")
    duckdb_memory_limit: str = Field(
        default="1GB", description="DuckDB memory limit per stage; larger stages spill to <lake>/_tmp.")
    duckdb_threads: int | None = Field(default=None, description="DuckDB threads; default all cores.")

    def lake(self) -> Lake:
        return Lake.at(self.root)

    def duck_settings(self) -> DuckSettings:
        return DuckSettings(memory_limit=self.duckdb_memory_limit, threads=self.duckdb_threads)


class SourcesResource(dg.ConfigurableResource):
    """The sources YAML: what to ingest and which benchmark prompts to decontaminate against."""

    path: str | None = Field(default=None, description="Sources YAML; default <lake>/sources.yaml.")

    def load(self, lake: Lake) -> SourcesConfig:
        path = self.path or str(lake.default_sources_file)
        try:
            return load_sources(path)
        except SourcesError as e:
            raise dg.Failure(description=str(e)) from e


class QualityResource(dg.ConfigurableResource):
    """Where the Great Expectations suites live and how big a validation batch is."""

    suites_dir: str | None = Field(default=None, description="Folder of <table>.json/.sql suites; "
                                                             "default the project's expectations/.")
    batch_rows: int = Field(default=100_000, description="Rows validated at a time (bounds memory).")
    build_docs: bool = Field(default=True, description="Rebuild GE Data Docs under <lake>/quality.")

    def folder(self) -> Path | None:
        return Path(self.suites_dir) if self.suites_dir else None
