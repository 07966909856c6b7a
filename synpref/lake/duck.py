"""DuckDB over the lake: views per table, stage connections, and read-only user queries."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb

from synpref.lake import scratch
from synpref.lake import TABLE_LAYERS, Lake, sweep_scratch

# Views made of several tables: name -> SQL (may only use tables that exist).
QUARANTINE_VIEW = """
select raw_id, 'ingest' as stage, reason, detail, source, source_file, source_row, raw_text,
       null::varchar as pair_id
from ingest_quarantine
union all
select raw_id, 'silver' as stage, reason, detail, source, source_file, source_row, null as raw_text,
       pair_id
from silver_quarantine
"""

READ_ONLY_STATEMENTS = {"SELECT"}


def lit(value) -> str:
    """A SQL string literal of `value` (a path, a key): quotes doubled, so a lake under
    /data/o'brien/ reads as well as any other. Paths cannot be bound as parameters in COPY
    or in a view's text, so every path goes into SQL through this."""
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    """A SQL identifier for a column name from outside (a pairs file's column): quoted, quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


@contextlib.contextmanager
def closed_on_error(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """For a function that prepares a connection and hands it out open: closes it if the
    preparing fails. The caller then uses it in a `with` block (a DuckDB connection closes
    itself on exit; a stage connection's spill folder goes with it)."""
    try:
        yield con
    except BaseException:
        con.close()
        raise


class WriteRefused(ValueError):
    """A user query that would change something; `synpref sql` is read-only."""


@dataclass(frozen=True)
class DuckSettings:
    memory_limit: str = "1GB"
    threads: int | None = None


def connect(lake: Lake | None = None, database: str = ":memory:", read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that reads the lake's paths: an object-store lake's filesystem is
    registered on it (DuckDB then reads s3://... through fsspec; no extension to download).
    On the lake database of a local lake, relative paths are looked up under the lake root
    (DuckDB's file_search_path), where its views' relative globs point."""
    config = {}
    if lake is not None and not lake.remote and database != ":memory:" and "," not in str(lake.root):
        config["file_search_path"] = str(lake.root)  # a comma-separated list: a root with a comma cannot be one
    con = duckdb.connect(database, read_only=read_only, config=config)
    if lake is not None and lake.remote:
        with closed_on_error(con):
            con.register_filesystem(lake.root.fs)
    return con


def _view_sql(lake: Lake, table: str, temp: bool = False) -> str:
    """A view over the table's files. The lake database's views (not temp) of a local lake read
    a glob relative to the lake root, so the lake still works once moved or copied: DuckDB
    resolves it against the working directory (`cd <lake> && duckdb synpref.duckdb`) or
    file_search_path (set by `connect`). Temp views, and a store lake's, read absolute paths."""
    relative = not temp and not lake.remote and "," not in str(lake.root)
    glob = lit(lake.relative_glob(table) if relative else lake.table_glob(table))
    kind = "temp view" if temp else "view"
    return f"create or replace {kind} {table} as select * from read_parquet({glob}, union_by_name = true)"


def register_tables(con: duckdb.DuckDBPyConnection, lake: Lake, temp: bool = False) -> list[str]:
    """Create a view for every table that has files, and the quarantine union view; in the
    lake database (not temp), drop the views of lake tables that have no files any more."""
    present = [t for t in TABLE_LAYERS if lake.has_table(t)]
    for table in present:
        con.execute(_view_sql(lake, table, temp))
    kind = "temp view" if temp else "view"
    if {"ingest_quarantine", "silver_quarantine"} <= set(present):
        con.execute(f"create or replace {kind} quarantine as {QUARANTINE_VIEW}")
    elif not temp:
        con.execute("drop view if exists quarantine")
    if not temp:
        for table in TABLE_LAYERS:
            if table not in present:
                con.execute(f"drop view if exists {table}")
    return present


def stage_connection(lake: Lake, settings: DuckSettings = DuckSettings()) -> duckdb.DuckDBPyConnection:
    """An in-memory connection for a stage: bounded memory, spills under the lake root (in a
    folder of its own, which DuckDB removes when the connection closes). Use it in a `with` block."""
    sweep_scratch(lake, once=True)  # spill folders of killed runs
    spill = lake.tmp_dir / f"duckdb-{scratch.tag()}"  # one per connection: a sweep can tell its owner
    spill.parent.mkdir(parents=True, exist_ok=True)
    con = connect(lake)
    with closed_on_error(con):
        con.execute(f"set memory_limit = {lit(settings.memory_limit)}")
        con.execute(f"set temp_directory = {lit(spill)}")
        con.execute("set preserve_insertion_order = false")  # lets COPY stream instead of buffering
        if settings.threads:
            con.execute(f"set threads = {int(settings.threads)}")
        register_tables(con, lake, temp=True)
    return con


def _connect_retrying(lake: Lake, read_only: bool, attempts: int = 50) -> duckdb.DuckDBPyConnection:
    """Open the lake database; another process may hold its lock for a moment."""
    for i in range(attempts):
        try:
            return connect(lake, str(lake.db_path), read_only=read_only)
        except duckdb.IOException as e:
            if "lock" not in str(e).lower() or i == attempts - 1:
                raise
            time.sleep(0.1 * (1 + i % 5))
    raise AssertionError("unreachable")


def refresh_views(lake: Lake) -> list[str]:
    """Recreate the lake database's views over the tables present now (relative to the lake
    root on a local lake: a lake moved or copied elsewhere keeps working views)."""
    lake.home.mkdir(parents=True, exist_ok=True)
    with _connect_retrying(lake, read_only=False) as con:
        return register_tables(con, lake)


def try_refresh_views(lake: Lake) -> bool:
    """refresh_views where the lake database can be written; False (the views it has stay)
    on a read-only lake or while another process holds the database."""
    try:
        refresh_views(lake)
        return True
    except (duckdb.IOException, duckdb.PermissionException, PermissionError, OSError):
        return False


def check_read_only(sql: str, explain: bool = False, what: str = "this query") -> None:
    """Refuse anything but SELECT (and, with `explain`, EXPLAIN [ANALYZE] of a SELECT)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as e:
        raise ValueError(f"cannot parse the query: {e}") from e
    if not statements:
        raise ValueError("empty query")
    for st in statements:
        kind = st.type.name
        if kind == "EXPLAIN" and explain:  # the parser does not say what is explained: look at the text
            inner = st.query.strip()
            for word in ("explain", "analyze", "analyse"):
                if inner[:len(word)].lower() == word:
                    inner = inner[len(word):].lstrip()
            check_read_only(inner, explain, what)
        elif kind not in READ_ONLY_STATEMENTS:
            allowed = "SELECT and EXPLAIN SELECT" if explain else "SELECT"
            raise WriteRefused(f"refused: {what} is read-only; the query holds a {kind} statement "
                               f"(only {allowed} run here)")


def table_counts(lake: Lake) -> list[tuple[str, str, int, int]]:
    """(table, layer, rows, files) for every table present, from Parquet metadata (no scan)."""
    out = []
    with connect(lake) as con:
        for table, layer in TABLE_LAYERS.items():
            files = lake.table_files(table)
            if not files:
                continue
            rows = con.execute("select coalesce(sum(num_rows), 0) from parquet_file_metadata(?)",
                               [[str(f) for f in files]]).fetchone()[0]
            out.append((table, layer, int(rows), len(files)))
    return out


def quarantine_counts(lake: Lake) -> list[tuple[str, str, int]]:
    """(stage, reason, rows) over both stages' quarantine, largest first."""
    with connect(lake) as con:
        register_tables(con, lake, temp=True)
        if not {"ingest_quarantine", "silver_quarantine"} <= {t for t in TABLE_LAYERS if lake.has_table(t)}:
            return []
        return con.execute("select stage, reason, count(*) from quarantine group by all "
                           "order by 3 desc, 1, 2").fetchall()
