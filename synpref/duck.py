"""DuckDB over the lake: views per table, stage connections, and read-only user queries."""

from __future__ import annotations

import time
from dataclasses import dataclass

import duckdb

from synpref import scratch
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


class WriteRefused(ValueError):
    """A user query that would change something; `synpref sql` is read-only."""


@dataclass(frozen=True)
class DuckSettings:
    memory_limit: str = "1GB"
    threads: int | None = None


def connect(lake: Lake | None = None, database: str = ":memory:", read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that reads the lake's paths: an object-store lake's filesystem is
    registered on it (DuckDB then reads s3://... through fsspec; no extension to download)."""
    con = duckdb.connect(database, read_only=read_only)
    if lake is not None and lake.remote:
        con.register_filesystem(lake.root.fs)
    return con


def _view_sql(lake: Lake, table: str) -> str:
    glob = lit(lake.table_glob(table))
    return f"create or replace view {table} as select * from read_parquet({glob}, union_by_name = true)"


def register_tables(con: duckdb.DuckDBPyConnection, lake: Lake, temp: bool = False) -> list[str]:
    """Create a view for every table that has files, and the quarantine union view."""
    present = [t for t in TABLE_LAYERS if lake.has_table(t)]
    for table in present:
        sql = _view_sql(lake, table)
        con.execute(sql.replace("create or replace view", "create or replace temp view") if temp else sql)
    if {"ingest_quarantine", "silver_quarantine"} <= set(present):
        kind = "temp view" if temp else "view"
        con.execute(f"create or replace {kind} quarantine as {QUARANTINE_VIEW}")
    return present


def stage_connection(lake: Lake, settings: DuckSettings = DuckSettings()) -> duckdb.DuckDBPyConnection:
    """An in-memory connection for a stage: bounded memory, spills under the lake root."""
    sweep_scratch(lake, once=True)  # spill folders of killed runs
    spill = lake.tmp_dir / f"duckdb-{scratch.tag()}"  # one per connection: a sweep can tell its owner
    spill.parent.mkdir(parents=True, exist_ok=True)
    con = connect(lake)
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
    """Recreate the lake database's views over the tables present now."""
    lake.home.mkdir(parents=True, exist_ok=True)
    con = _connect_retrying(lake, read_only=False)
    try:
        return register_tables(con, lake)
    finally:
        con.close()


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
    con = connect(lake)
    try:
        for table, layer in TABLE_LAYERS.items():
            files = lake.table_files(table)
            if not files:
                continue
            rows = con.execute("select coalesce(sum(num_rows), 0) from parquet_file_metadata(?)",
                               [[str(f) for f in files]]).fetchone()[0]
            out.append((table, layer, int(rows), len(files)))
    finally:
        con.close()
    return out


def quarantine_counts(lake: Lake) -> list[tuple[str, str, int]]:
    """(stage, reason, rows) over both stages' quarantine, largest first."""
    con = connect(lake)
    try:
        register_tables(con, lake, temp=True)
        if not {"ingest_quarantine", "silver_quarantine"} <= {t for t in TABLE_LAYERS if lake.has_table(t)}:
            return []
        return con.execute("select stage, reason, count(*) from quarantine group by all "
                           "order by 3 desc, 1, 2").fetchall()
    finally:
        con.close()
