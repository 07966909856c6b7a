"""Queues of pairs (for the LLM judges, for human annotators): which pairs, from a read-only
SELECT over the lake or a list of pair_ids; a pair is queued once; an unknown pair is an error."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
import pyarrow as pa

from synpref.silver.attributes import register_latest_attributes
from synpref.lake.duck import check_read_only, closed_on_error, connect as duck_connect, register_tables
from synpref.lake import Lake, write_part


@dataclass(frozen=True)
class Queued:
    new: int  # queued now
    already: int  # asked for, but queued before
    over_size: int = 0  # asked for and new, but left out by the size cap


def candidates(lake: Lake, select_sql: str | None = None, pair_ids: list[str] | None = None
               ) -> duckdb.DuckDBPyConnection:
    """A connection holding temp table `wanted(pair_id)`: the pairs a read-only SELECT (column
    `pair_id`) or a list names, each once; the lake's tables and `latest_attributes` are views.
    Raises ValueError for a write, several statements, or pair_ids not in silver_pairs. Use it
    in a `with` block."""
    if (select_sql is None) == (pair_ids is None):
        raise ValueError("name the pairs with either a SELECT or a list of pair_ids")
    if select_sql is not None:
        check_read_only(select_sql, what="a queue's query")
        if len(duckdb.extract_statements(select_sql)) != 1:
            raise ValueError("queue pairs with one SELECT statement")
    if not lake.has_table("silver_pairs"):
        raise ValueError(f"no silver_pairs under {lake.root}: build the lake first")
    con = duck_connect(lake)
    with closed_on_error(con):
        register_tables(con, lake, temp=True)
        register_latest_attributes(con, lake)
        if select_sql is not None:
            con.execute(f"create temp table wanted as select distinct pair_id "
                        f"from ({select_sql.strip().rstrip(';')})")
        else:
            con.register("listed", pa.table({"pair_id": pa.array(pair_ids, pa.string())}))
            con.execute("create temp table wanted as select distinct pair_id from listed")
        (unknown,) = con.execute("select count(*), any_value(pair_id) from wanted anti join silver_pairs "
                                 "using (pair_id)").fetchall()
        if unknown[0]:
            raise ValueError(f"{unknown[0]} pair_ids to queue are not in silver_pairs, e.g. {unknown[1]!r}")
    return con


def select_new(lake: Lake, table: str, *, select_sql: str | None = None, pair_ids: list[str] | None = None,
               rank_sql: str = "select pair_id from fresh order by pair_id", size: int | None = None
               ) -> tuple[pa.Table, Queued]:
    """The named pairs not in `table` yet, ranked by `rank_sql` (a SELECT from temp table `fresh`)
    and capped at `size`: what enqueue_pairs would queue, without queuing it."""
    if size is not None and size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    with candidates(lake, select_sql, pair_ids) as con:
        queued = "anti join (select pair_id from {t}) using (pair_id)".format(t=table) if lake.has_table(table) else ""
        con.execute(f"create temp table fresh as select pair_id from wanted {queued}")
        ((total,),) = con.execute("select count(*) from wanted").fetchall()
        ((fresh,),) = con.execute("select count(*) from fresh").fetchall()
        limit = f" limit {int(size)}" if size is not None else ""
        new = con.sql(f"select * from ({rank_sql.strip().rstrip(';')}){limit}").to_arrow_table()
    return new, Queued(new=new.num_rows, already=total - fresh, over_size=fresh - new.num_rows)


def enqueue_pairs(lake: Lake, table: str, schema: pa.Schema, origin: str, *, select_sql: str | None = None,
                  pair_ids: list[str] | None = None, rank_sql: str = "select pair_id from fresh order by pair_id",
                  size: int | None = None) -> Queued:
    """Queue the named pairs in `table` (one new Parquet part). `rank_sql` selects from temp
    table `fresh` (the named pairs not queued yet) the rows to queue, best first, with any
    columns of `schema` beyond pair_id, origin and queued_at; `size` caps how many are queued."""
    new, queued = select_new(lake, table, select_sql=select_sql, pair_ids=pair_ids, rank_sql=rank_sql, size=size)
    if new.num_rows:
        now = pa.array([datetime.now(timezone.utc)] * new.num_rows, schema.field("queued_at").type)
        columns = {"origin": pa.array([origin] * new.num_rows, pa.string()), "queued_at": now}
        rows = pa.table({f.name: columns[f.name] if f.name in columns else new[f.name].cast(f.type)
                         for f in schema}, schema=schema)
        write_part(lake, table, rows)
    return queued
