"""Data-quality validation of lake tables with Great Expectations, in bounded memory.

A table is read by DuckDB in batches (hash buckets of the suite's key column, so a
uniqueness expectation seen per batch holds for the whole table), each batch is projected
by ``expectations/<table>.sql`` and validated as a pandas DataFrame (GE has no Polars
datasource, and its DuckDB SQL path gave wrong results here). Results are kept in a GE
file context under ``<lake>/quality`` (so Data Docs can show them) and folded into one
outcome per expectation.

A process keeps the GE context of each lake it validates (per suites folder): the first
validation makes the context, the suite and the definitions (a few hundred ms, after GE's
import of seconds); the next ones, of any table of that lake, reuse them and cost what GE's
validation of the rows costs. Threads take turns on a context, processes on the lake's
quality folder (a FileLock); a forked child makes its own.
"""

from __future__ import annotations

import copy
import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

import expectations as suites
from synpref.lake.duck import connect as duck_connect, lit
from synpref.lake import Lake

BATCH_ROWS = 100_000
SAMPLE_IDS = 10
VECTORS_TABLE = "pair_embeddings"  # synpref.silver.vectors.TABLE, named here: other tables never import LanceDB


@dataclass
class ExpectationOutcome:
    expectation: str  # e.g. expect_column_values_to_be_unique(pair_id)
    severity: str  # critical | warning | info
    success: bool
    unexpected_count: int
    element_count: int
    sample_ids: list[str] = field(default_factory=list)
    mostly: float | None = None  # the share of rows that must pass; None: every row

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
        return ExpectationOutcome(self.label, self.severity, success, self.unexpected, self.elements, self.sample,
                                  self.mostly)


def gx_context(lake: Lake):
    """A new GE file context on the lake's quality folder (validate_table keeps one per process)."""
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


# ---------------------------------------------------------------- one GE context per lake, per process

MAX_CONTEXTS = 8  # (lake, suites folder) pairs whose context a process keeps, least recently used dropped


@dataclass
class _Defined:
    suite_doc: dict  # the suite file as it was when `definition` was made from it
    definition: object  # a ValidationDefinition; its .suite is the suite as stored


def _content(suite) -> tuple:
    """What a suite checks, in order, without the ids GE gives it."""
    expectations = [{k: v for k, v in c.to_json_dict().items() if k != "id"} for c in suite.expectation_configurations]
    return suite.name, expectations, suite.meta, suite.suite_parameters


class _LakeContext:
    """A GE file context of one lake for one suites folder, kept by the process: the suites, the
    pandas datasource, the tables' assets, batch and validation definitions are made once and
    reused by every later validation (made again for a table whose suite file changed)."""

    def __init__(self, lake: Lake):
        self.pid = os.getpid()
        self.config = quality_root(lake) / "gx" / "great_expectations.yml"
        self.ctx = gx_context(lake)
        self.source = None  # the pandas datasource, made with the first table's definitions
        self.tables: dict[str, _Defined] = {}

    def usable(self) -> bool:
        """False in a forked child, or once the lake's quality folder was removed."""
        return self.pid == os.getpid() and self.config.exists()

    def definition(self, table: str, suite_doc: dict):
        known = self.tables.get(table)
        if known is None or known.suite_doc != suite_doc:
            known = self.tables[table] = _Defined(copy.deepcopy(suite_doc), self._define(table, suite_doc))
        return known.definition

    def _define(self, table: str, suite_doc: dict):
        import great_expectations as gx
        from great_expectations.core import ExpectationSuite
        from great_expectations.exceptions import DataContextError

        if self.source is None:
            self.source = self.ctx.data_sources.add_or_update_pandas("lake")
        asset = next((a for a in self.source.assets if a.name == table), None) \
            or self.source.add_dataframe_asset(table)
        batch_def = next((b for b in asset.batch_definitions if b.name == "batch"), None) \
            or asset.add_batch_definition_whole_dataframe("batch")
        suite = ExpectationSuite(**{k: v for k, v in copy.deepcopy(suite_doc).items() if k != "id"})
        try:
            stored = self.ctx.suites.get(suite.name)
        except DataContextError:
            stored = None
        if stored is not None and _content(stored) == _content(suite):
            # the store holds this suite already: keep its ids (GE gives a re-added expectation
            # a new one), so the definitions other contexts keep of it stay fresh
            suite = stored
        # adds or updates the suite as well
        return self.ctx.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=table, data=batch_def, suite=suite))

    def release_batches(self) -> None:
        """Drop the frames GE's pandas engine keeps after a run: a kept context must not hold a
        batch of every table it validated."""
        if self.source is not None:
            manager = self.source.get_execution_engine().batch_manager
            manager.batch_data_cache.clear()
            manager.reset_batch_cache()


_contexts: OrderedDict[tuple[str, str], _LakeContext] = OrderedDict()
_key_locks: dict[tuple[str, str], threading.Lock] = {}
_guard = threading.Lock()


def _forget_contexts() -> None:
    """In a forked child: the parent's contexts and locks are not this process's."""
    global _guard
    _guard = threading.Lock()
    _contexts.clear()
    _key_locks.clear()


os.register_at_fork(after_in_child=_forget_contexts)


def _context_key(lake: Lake, suites_dir: Path | None) -> tuple[str, str]:
    return str(quality_root(lake).resolve()), str(Path(suites_dir).resolve()) if suites_dir else ""


def _key_lock(key: tuple[str, str]) -> threading.Lock:
    """One thread at a time uses a context (taken before the lake's FileLock, always)."""
    with _guard:
        return _key_locks.setdefault(key, threading.Lock())


def _lake_context(lake: Lake, key: tuple[str, str]) -> _LakeContext:
    """The process's context for `key`, made if missing or unusable; call holding its locks."""
    with _guard:
        held = _contexts.get(key)
        if held is not None and held.usable():
            _contexts.move_to_end(key)
            return held
    made = _LakeContext(lake)
    with _guard:
        _contexts[key] = made
        _contexts.move_to_end(key)
        while len(_contexts) > MAX_CONTEXTS:
            _contexts.popitem(last=False)
    return made


def _drop_context(key: tuple[str, str]) -> None:
    with _guard:
        _contexts.pop(key, None)


def clear_contexts() -> None:
    """Forget every kept context (the next validation of each lake starts cold)."""
    with _guard:
        _contexts.clear()


# ---------------------------------------------------------------- validation


def table_exists(lake: Lake, table: str) -> bool:
    if table == VECTORS_TABLE:
        from synpref.silver import vectors

        return vectors.has_table(lake)
    return lake.has_table(table)


def _register_source(con, lake: Lake, table: str) -> tuple[str, int]:
    """Make the whole table scannable by `con` without loading it; returns (its name, rows)."""
    if table == VECTORS_TABLE:  # LanceDB: scanned lazily through its Lance dataset
        from synpref.silver import vectors

        dataset = vectors.open_table(lake).to_lance()
        con.register(f"{table}_source", dataset)
        return f"{table}_source", dataset.count_rows()
    files = [str(f) for f in lake.table_files(table)]
    rows = con.execute("select coalesce(sum(num_rows), 0) from parquet_file_metadata(?)", [files]).fetchone()[0]
    return f"read_parquet({lit(lake.table_glob(table))}, union_by_name = true)", int(rows)


def _validate_batches(held: _LakeContext, lake: Lake, table: str, suite_doc: dict, projection: str, key: str,
                      batch_rows: int, log) -> tuple[int, int, list[_Tally], list]:
    """Run the table's suite over its hash-bucket batches; returns (rows, batches, tallies,
    run ids of the results stored)."""
    definition = held.definition(table, suite_doc)
    suite = definition.suite
    # GE does not return results in suite order: match them by expectation id
    tallies = {c.id: _Tally(_label(c), c.severity.value if hasattr(c.severity, "value") else str(c.severity),
                            c.kwargs.get("mostly")) for c in suite.expectation_configurations}
    run_ids = []
    try:
        with duck_connect(lake) as con:
            source, rows = _register_source(con, lake, table)
            batches = max(1, math.ceil(rows / batch_rows))
            for b in range(batches):
                # one batch is the whole table: no need to hash every key to pick it
                where = f" where hash({key}) % {batches} = {b}" if batches > 1 else ""
                con.execute(f"create or replace temp view {table} as select * from {source}{where}")
                frame = con.execute(projection).df()
                result = definition.run(batch_parameters={"dataframe": frame}, result_format={
                    "result_format": "SUMMARY", "unexpected_index_column_names": [key],
                    "partial_unexpected_count": SAMPLE_IDS})
                run_ids.append(result.meta["run_id"])
                for res in result.results:
                    tallies[res.expectation_config.id].add(res, key)
                log(f"{table}: batch {b + 1}/{batches} validated ({len(frame):,} rows)")
    finally:
        held.release_batches()
    return int(rows), batches, list(tallies.values()), run_ids


def _build_table_docs(ctx, suite_name: str, run_ids: list) -> None:
    """Render this validation's pages (its suite, a result per batch) and the site index; the
    pages of earlier validations stay as they were (build_docs rebuilds them all)."""
    from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

    store = ctx.validation_results_store
    wanted = {r.to_tuple() for r in run_ids}  # (run name, run time) as the store names them
    results = [store.tuple_to_key(t) for t in store.store_backend.list_keys(prefix=(suite_name,))
               if tuple(t[1:3]) in wanted]
    ctx.build_data_docs(resource_identifiers=[ExpectationSuiteIdentifier(name=suite_name), *results])


def validate_table(lake: Lake, table: str, batch_rows: int = BATCH_ROWS, suites_dir: Path | None = None,
                   build_docs: bool = True, log=lambda msg: None) -> TableValidation:
    """Validate one lake table against its suite; raises if the table has no files.

    The lake's GE context, and the table's suite and definitions in it, are made by the first
    validation in a process and reused by the next ones (see _LakeContext). With `build_docs`
    the Data Docs pages of this validation and the site index are rendered."""
    from great_expectations.exceptions.resource_freshness import (
        ResourceFreshnessAggregateError, ResourceFreshnessError)

    if not table_exists(lake, table):
        raise FileNotFoundError(f"{table} has no data under {lake.root}")
    suite_doc = suites.load_suite(table, suites_dir)
    projection = suites.load_projection(table, suites_dir)
    key = suite_doc.get("meta", {}).get("synpref", {}).get("batch_key", "raw_id")
    start = time.perf_counter()
    quality_root(lake).mkdir(parents=True, exist_ok=True)
    context_key = _context_key(lake, suites_dir)
    # The GE file context is shared by every check of this lake; one writer at a time.
    with _key_lock(context_key), FileLock(str(quality_root(lake) / ".lock")):
        held = _lake_context(lake, context_key)
        try:
            try:
                rows, batches, tallies, run_ids = _validate_batches(held, lake, table, suite_doc, projection, key,
                                                                    batch_rows, log)
            except (ResourceFreshnessAggregateError, ResourceFreshnessError):
                # the stored suite changed under the kept context (another context or process
                # validated this lake with another suites folder): start again from the files
                _drop_context(context_key)
                held = _lake_context(lake, context_key)
                rows, batches, tallies, run_ids = _validate_batches(held, lake, table, suite_doc, projection, key,
                                                                    batch_rows, log)
        except BaseException:
            _drop_context(context_key)  # whatever a failed validation left, the next one starts afresh
            raise
        docs = None
        if build_docs:
            _build_table_docs(held.ctx, held.tables[table].definition.suite.name, run_ids)
            docs = docs_index(lake)
    return TableValidation(table, rows, batches, round(time.perf_counter() - start, 3),
                           [t.outcome() for t in tallies], docs)


def build_docs(lake: Lake) -> Path:
    """Rebuild the GE Data Docs site from every validation kept under the lake."""
    quality_root(lake).mkdir(parents=True, exist_ok=True)
    context_key = _context_key(lake, None)
    with _key_lock(context_key), FileLock(str(quality_root(lake) / ".lock")):
        _lake_context(lake, context_key).ctx.build_data_docs()
    return docs_index(lake)
