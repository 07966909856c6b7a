"""`synpref sql`: a user's query over the lake, read-only, confined, bounded.

What a query may do: SELECT (and EXPLAIN [ANALYZE] of a SELECT) over the lake's views.
What it cannot:
- write anything: every other statement kind is refused before it runs, and the database
  file is opened read-only;
- read outside the lake's tables: DuckDB's `enable_external_access` is off with
  `allowed_directories` set to the table folders, so `read_text('/etc/passwd')`, the lake's
  `annotation/ticket.key` or any other file is refused; extensions are neither installed nor
  loaded; `lock_configuration` stops a query from undoing any of this;
- run forever or take the machine: a time limit (Ctrl-C also stops it at once) and a memory
  limit, past which DuckDB spills or fails with a message.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

import duckdb

from synpref.lake.duck import (TABLE_LAYERS, WriteRefused, _connect_retrying, check_read_only, closed_on_error, lit,
                          register_tables, try_refresh_views)
from synpref.lake import Lake

T = TypeVar("T")
DEFAULT_TIMEOUT_S = 300.0
DEFAULT_MEMORY = "4GB"


class QueryError(RuntimeError):
    """What the user is told, as one line: DuckDB's message, a refusal, or a time-out."""


@dataclass(frozen=True)
class QueryLimits:
    timeout_s: float = DEFAULT_TIMEOUT_S  # 0: no limit
    memory_limit: str = DEFAULT_MEMORY


def check_user_query(sql: str) -> None:
    """SELECT, or EXPLAIN [ANALYZE] of a SELECT; anything else is refused before it runs."""
    try:
        check_read_only(sql, explain=True, what="`synpref sql`")
    except WriteRefused:
        raise
    except ValueError as e:
        raise QueryError(str(e)) from None


def sandbox(con: duckdb.DuckDBPyConnection, lake: Lake, limits: QueryLimits) -> None:
    """Confine a connection to the lake's table folders, with no extensions, then lock it."""
    folders = [str(lake.table_dir(t)).rstrip("/") + "/" for t in TABLE_LAYERS]
    con.execute("set autoinstall_known_extensions = false")
    con.execute("set autoload_known_extensions = false")
    con.execute(f"set memory_limit = {lit(limits.memory_limit)}")
    con.execute(f"set allowed_directories = [{', '.join(lit(f) for f in folders)}]")
    con.execute("set enable_external_access = false")
    con.execute("set lock_configuration = true")


def open_for_query(lake: Lake, limits: QueryLimits = QueryLimits()) -> duckdb.DuckDBPyConnection:
    """The lake database, read-only and sandboxed, with views re-pointed at the tables."""
    # a store lake's database is a local file of views: any machine makes its own
    if not lake.db_path.exists() and not (lake.remote and any(lake.has_table(t) for t in TABLE_LAYERS)):
        raise QueryError(f"no lake database at {lake.db_path}; run `synpref demo` or "
                         f"`synpref materialize` first")
    # the database's views for other clients: up to date with the tables, relative to the root
    # (a read-only lake keeps the views it has)
    try_refresh_views(lake)
    con = _connect_retrying(lake, read_only=True)
    with closed_on_error(con):
        # the query reads temp views of absolute paths, the only ones the sandbox lets through
        # (it refuses relative paths), so it runs from any working directory
        register_tables(con, lake, temp=True)
        sandbox(con, lake, limits)
    return con


def run_user_query(lake: Lake, sql: str, consume: Callable[[duckdb.DuckDBPyRelation], T],
                   limits: QueryLimits = QueryLimits()) -> T:
    """Run `consume(relation)` (print it, fetch it) on a worker thread, so the time limit and
    Ctrl-C can interrupt DuckDB mid-query; every failure comes back as one QueryError."""
    check_user_query(sql)
    con = open_for_query(lake, limits)
    outcome: dict = {}
    done = threading.Event()  # not Thread.is_alive: a Ctrl-C inside join() can leave that False early

    def work() -> None:
        try:
            outcome["value"] = consume(con.sql(sql))
        except BaseException as e:  # handed to the caller's thread
            outcome["error"] = e
        finally:
            done.set()

    worker = threading.Thread(target=work, name="synpref-sql", daemon=True)
    deadline = time.monotonic() + limits.timeout_s if limits.timeout_s else float("inf")
    stopped = None
    worker.start()
    while True:
        try:  # Ctrl-C lands here, in the main thread, wherever it is in this loop
            while not done.wait(0.1):
                if not stopped and time.monotonic() > deadline:
                    stopped = f"stopped after the time limit of {limits.timeout_s:g} s (--timeout)"
                    con.interrupt()
            break
        except KeyboardInterrupt:
            stopped = "interrupted (Ctrl-C)"
            con.interrupt()
    con.close()
    error = outcome.get("error")
    if stopped and (error is not None or "value" not in outcome):
        raise QueryError(f"query {stopped}")
    if isinstance(error, duckdb.Error):
        raise QueryError(_one_line(error)) from None
    if error is not None:
        raise error
    return outcome["value"]


def _one_line(error: duckdb.Error) -> str:
    """DuckDB's message without its 'LINE 1: ...' caret block (which repeats the query)."""
    text = str(error).split("\n\nLINE ")[0].strip()
    return " ".join(text.split())
