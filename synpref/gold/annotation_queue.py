"""annotation_queue: the pairs chosen for human annotators, objective and low-controversy first.

Stage 1 rounds queue the pairs retrieval found (origin 'round-N'); a SELECT or a list of
pair_ids can queue any others. A size cap keeps the best-ranked new pairs (sql/annotation_queue.sql).
The priority is fixed when a pair is queued, from its attributes then (`latest_attributes`).
"""

from __future__ import annotations


import sql as sql_files
from synpref.lake.duck import connect as duck_connect, lit
from synpref.lake import schemas
from synpref.lake import Lake, write_part
from synpref.silver.queues import Queued, enqueue_pairs, select_new

TABLE = "annotation_queue"


def queue_for_humans(lake: Lake, origin: str, *, pair_ids: list[str] | None = None, select_sql: str | None = None,
                     size: int | None = None) -> Queued:
    """Queue pairs for human annotators from a list of pair_ids or a read-only SELECT returning
    pair_id; at most `size` new ones, objective and low-controversy first. Queuing a pair twice
    is a no-op; a pair_id not in silver_pairs is an error (ValueError)."""
    return enqueue_pairs(lake, TABLE, schemas.ANNOTATION_QUEUE, origin, select_sql=select_sql, pair_ids=pair_ids,
                         rank_sql=sql_files.load(TABLE), size=size)


def rank_for_humans(lake: Lake, pair_ids: list[str], size: int | None) -> list[str]:
    """The pairs queue_for_humans(pair_ids=..., size=...) would queue, best first, without queuing them."""
    new, _ = select_new(lake, TABLE, pair_ids=pair_ids, rank_sql=sql_files.load(TABLE), size=size)
    return new["pair_id"].to_pylist()


def queue_retrieved(lake: Lake, destination: str = "humans") -> dict[str, int]:
    """Queue what Stage 1 retrieval sent to humans (stage1_retrievals, origin = the round) and is
    not queued yet: pairs newly queued per round."""
    from synpref.gold.stage1 import retrieved_for

    out = {}
    for key, pair_ids in retrieved_for(lake, destination).items():
        out[key] = queue_for_humans(lake, key, pair_ids=pair_ids).new
    return out


def ensure_table(lake: Lake) -> None:
    """An empty part, so that the table (and its DuckDB view) exists before anything is queued."""
    if not lake.has_table(TABLE):
        write_part(lake, TABLE, schemas.ANNOTATION_QUEUE.empty_table())


def queue_counts(lake: Lake) -> dict[str, dict[int, int]]:
    """Queued pairs per origin and priority."""
    if not lake.has_table(TABLE):
        return {}
    with duck_connect(lake) as con:
        out: dict[str, dict[int, int]] = {}
        for origin, priority, n in con.execute(
                f"select origin, priority, count(*) from read_parquet({lit(lake.table_glob(TABLE))}) "
                f"group by all order by all").fetchall():
            out.setdefault(origin, {})[priority] = n
        return out
