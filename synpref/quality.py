"""Data-quality validation of lake tables with Great Expectations, in bounded memory.

A table is read by DuckDB in batches (hash buckets of the suite's key column, so a
uniqueness expectation seen per batch holds for the whole table), each batch is projected
by ``expectations/<table>.sql`` and validated as a pandas DataFrame (GE has no Polars
datasource, and its DuckDB SQL path gave wrong results here). Results are kept in a GE
file context under ``<lake>/quality`` (so Data Docs can show them) and folded into one
outcome per expectation.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

import expectations as suites
from synpref.duck import connect as duck_connect, lit
from synpref.lake import Lake

BATCH_ROWS = 100_000
SAMPLE_IDS = 10


@dataclass
class ExpectationOutcome:
    expectation: str  # e.g. expect_column_values_to_be_unique(pair_id)
    severity: str  # critical | warning | info
    success: bool
    unexpected_count: int
    element_count: int
    sample_ids: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> bool:
        return self.severity == "critical"


@dataclass
class TableValidation:
    table: str
    rows: int
    batches: int
    seconds: float
    outcomes: list[ExpectationOutcome]
    docs: Path | None = None

    def failed(self, blocking: bool) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success and o.blocking == blocking]

    @property
    def success(self) -> bool:
        return not self.failed(blocking=True)


def quality_root(lake: Lake) -> Path:
    """The GE file context (suites, results, Data Docs): on a local disk, the lake's home."""
    return lake.home / "quality"


def docs_index(lake: Lake) -> Path:
    return quality_root(lake) / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def _label(config) -> str:
    column = config.kwargs.get("column")
    return f"{config.type}({column})" if column else config.type


class _Tally:
    """Per-expectation totals over batches; `mostly` is judged on the totals."""

    def __init__(self, label: str, severity: str, mostly: float | None):
        self.label, self.severity, self.mostly = label, severity, mostly
        self.batch_failed = False
        self.unexpected = self.elements = self.missing = 0
        self.sample: list[str] = []

    def add(self, result, key: str) -> None:
        r = result.result or {}
        self.unexpected += int(r.get("unexpected_count") or 0)
        self.elements += int(r.get("element_count") or 0)
        self.missing += int(r.get("missing_count") or 0)
        self.batch_failed |= not result.success
        for item in r.get("partial_unexpected_index_list") or []:
            if len(self.sample) < SAMPLE_IDS and isinstance(item, dict) and key in item:
                self.sample.append(str(item[key]))

    def outcome(self) -> ExpectationOutcome:
        if self.mostly is not None and self.elements:
            checked = max(self.elements - self.missing, 1)
            success = (checked - self.unexpected) / checked >= self.mostly
        else:
            success = not self.batch_failed
        return ExpectationOutcome(self.label, self.severity, success, self.unexpected, self.elements, self.sample)


def gx_context(lake: Lake):
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    ctx = gx.get_context(mode="file", project_root_dir=str(quality_root(lake)))
    bars = ctx.variables.progress_bars  # a config object when new, a dict once read back from disk
    globally = bars.get("globally") if isinstance(bars, dict) else getattr(bars, "globally", None)
    if globally is not False:
        # a bar per batch would drown the run's log
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        ctx.variables.save()
    return ctx


def table_exists(lake: Lake, table: str) -> bool:
    from synpref import vectors

    return vectors.has_table(lake) if table == vectors.TABLE else lake.has_table(table)


def _register_source(con, lake: Lake, table: str) -> tuple[str, int]:
    """Make the whole table scannable by `con` without loading it; returns (its name, rows)."""
    from synpref import vectors

    if table == vectors.TABLE:  # LanceDB: scanned lazily through its Lance dataset
        dataset = vectors.open_table(lake).to_lance()
        con.register(f"{table}_source", dataset)
        return f"{table}_source", dataset.count_rows()
    files = [str(f) for f in lake.table_files(table)]
    rows = con.execute("select coalesce(sum(num_rows), 0) from parquet_file_metadata(?)", [files]).fetchone()[0]
    return f"read_parquet({lit(lake.table_glob(table))}, union_by_name = true)", int(rows)


def validate_table(lake: Lake, table: str, batch_rows: int = BATCH_ROWS, suites_dir: Path | None = None,
                   build_docs: bool = True, log=lambda msg: None) -> TableValidation:
    """Validate one lake table against its suite; raises if the table has no files."""
    import great_expectations as gx
    from great_expectations.core import ExpectationSuite

    if not table_exists(lake, table):
        raise FileNotFoundError(f"{table} has no data under {lake.root}")
    suite_doc = suites.load_suite(table, suites_dir)
    projection = suites.load_projection(table, suites_dir)
    key = suite_doc.get("meta", {}).get("synpref", {}).get("batch_key", "raw_id")
    start = time.perf_counter()
    quality_root(lake).mkdir(parents=True, exist_ok=True)
    # The GE file context is shared by every check of this lake; one writer at a time.
    with FileLock(str(quality_root(lake) / ".lock")):
        ctx = gx_context(lake)
        suite = ctx.suites.add_or_update(ExpectationSuite(**{k: v for k, v in suite_doc.items() if k != "id"}))
        source = ctx.data_sources.add_or_update_pandas("lake")
        asset = next((a for a in source.assets if a.name == table), None) or source.add_dataframe_asset(table)
        batch_def = next((b for b in asset.batch_definitions if b.name == "batch"), None) \
            or asset.add_batch_definition_whole_dataframe("batch")
        definition = ctx.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=table, data=batch_def, suite=suite))

        # GE does not return results in suite order: match them by expectation id
        tallies = {c.id: _Tally(_label(c), c.severity.value if hasattr(c.severity, "value") else str(c.severity),
                                c.kwargs.get("mostly")) for c in suite.expectation_configurations}
        con = duck_connect(lake)
        try:
            source, rows = _register_source(con, lake, table)
            batches = max(1, math.ceil(rows / batch_rows))
            for b in range(batches):
                con.execute(f"create or replace temp view {table} as select * from {source} "
                            f"where hash({key}) % {batches} = {b}")
                frame = con.execute(projection).df()
                result = definition.run(batch_parameters={"dataframe": frame}, result_format={
                    "result_format": "SUMMARY", "unexpected_index_column_names": [key],
                    "partial_unexpected_count": SAMPLE_IDS})
                for res in result.results:
                    tallies[res.expectation_config.id].add(res, key)
                log(f"{table}: batch {b + 1}/{batches} validated ({len(frame):,} rows)")
        finally:
            con.close()
        docs = None
        if build_docs:
            ctx.build_data_docs()
            docs = docs_index(lake)
    return TableValidation(table, int(rows), batches, round(time.perf_counter() - start, 3),
                           [t.outcome() for t in tallies.values()], docs)


def build_docs(lake: Lake) -> Path:
    """Rebuild the GE Data Docs site from every validation kept under the lake."""
    with FileLock(str(quality_root(lake) / ".lock")):
        gx_context(lake).build_data_docs()
    return docs_index(lake)
