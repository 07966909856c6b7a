"""The pair_attributes stage: the paper's preference attributes for every silver pair.

Cached by (pair_id, model, prompt version): only pairs without a row for the current
model and prompt are sent to the annotator. They go in chunks, and each chunk's rows are
written as one Parquet part (temporary name, then rename) as soon as it is done, so a
killed run keeps every finished chunk and the rerun picks up the rest: no pair is
annotated twice. Failed annotations are rows too (status ``failed`` with the reason).

The work splits by pool shard (synpref/lake/shards.py): each shard's pending pairs can be
annotated by its own process, machine or GPU at once, since every chunk is its own part.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from synpref.lake import schemas
from synpref.lake.duck import closed_on_error, connect as duck_connect, lit, register_tables
from synpref.lake import Lake, atomic_path
from synpref.lake.shards import N_SHARDS, shard_sql

TABLE = "pair_attributes"

# Each pair's latest successful attribute row (any model or prompt version), with the model
# that wrote it. The empty select names test_model for lakes whose parts all predate it.
LATEST_ATTRIBUTES_SQL = """
select pair_id, task_category, objectivity, controversiality, desired_attributes, annotation_guideline,
       model, test_model
from (select * from read_parquet({glob}, union_by_name = true)
      union all by name select null::boolean as test_model where false)
where status = 'ok'
qualify row_number() over (partition by pair_id order by annotated_at desc) = 1
"""
_NO_ATTRIBUTES_SQL = ("select null::varchar as pair_id, null::varchar as task_category, "
                      "null::varchar as objectivity, null::varchar as controversiality, "
                      "null::varchar[] as desired_attributes, null::varchar as annotation_guideline, "
                      "null::varchar as model, null::boolean as test_model where false")


def register_latest_attributes(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """A temp view `latest_attributes` on con (empty before any pair is annotated)."""
    if not lake.has_table(TABLE):
        con.execute(f"create or replace temp view latest_attributes as {_NO_ATTRIBUTES_SQL}")
        return
    glob = lit(lake.table_glob(TABLE))
    con.execute(f"create or replace temp view latest_attributes as {LATEST_ATTRIBUTES_SQL.format(glob=glob)}")


@dataclass
class AttributesSummary:
    pending: int
    annotated: int
    cached: int
    ok: int
    failed: int
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def pairs_per_s(self) -> float:
        return self.annotated / self.seconds if self.seconds else 0.0


def pending_pairs(lake: Lake, model: str, prompt_version: str, limit: int | None = None,
                  shard: int | None = None, n_shards: int = N_SHARDS) -> duckdb.DuckDBPyConnection:
    """Silver pairs (of one shard, or all) with no attribute row for this model and prompt
    version, in pair_id order.

    Returns the connection with the query executed: fetch from it in a `with` block."""
    con = duck_connect(lake)
    with closed_on_error(con):
        register_tables(con, lake, temp=True)
        done = ""
        if lake.has_table(TABLE):
            done = (f"anti join (select pair_id from {TABLE} where model = $model and prompt_version = $version) "
                    f"as done using (pair_id)")
        in_shard = f"where {shard_sql(n_shards)} = {int(shard)}" if shard is not None else ""
        sql = (f"select pair_id, conversation, chosen, rejected from silver_pairs {done} {in_shard} order by pair_id"
               + (f" limit {int(limit)}" if limit else ""))
        return con.execute(sql, {"model": model, "version": prompt_version} if done else {})


def _rows(results, model: str, prompt_version: str, test_model: bool) -> pa.Table:
    now = datetime.now(timezone.utc)
    return pa.Table.from_pylist([{
        "pair_id": r.pair_id, "model": model, "test_model": test_model, "prompt_version": prompt_version,
        "status": r.status,
        "task_category": r.task_category, "objectivity": r.objectivity, "controversiality": r.controversiality,
        "desired_attributes": r.desired_attributes, "annotation_guideline": r.annotation_guideline,
        "attempts": r.attempts, "error": r.error, "raw_output": r.raw_output, "annotated_at": now,
    } for r in results], schema=schemas.PAIR_ATTRIBUTES)


def annotate_pending(lake: Lake, make_annotator: Callable, annotate: Callable, prompt, model: str,
                     chunk_rows: int = 256, limit: int | None = None, max_attempts: int = 3,
                     log=lambda msg: None, shard: int | None = None, n_shards: int = N_SHARDS,
                     test_model: bool = False) -> AttributesSummary:
    """Annotate every pending silver pair (of one shard, or all), a chunk at a time; the
    annotator is made only if needed. `test_model`: the model is a random test LLM
    (models.tiny_llm.is_test_model), recorded in every row so readers can tell noise."""
    start = time.perf_counter()
    pending = 0
    counts: dict[str, int] = {}
    annotator = None
    try:
        with pending_pairs(lake, model, prompt.version, limit, shard, n_shards) as cursor:
            while batch := cursor.fetchmany(chunk_rows):
                pairs = [dict(zip(("pair_id", "conversation", "chosen", "rejected"), row)) for row in batch]
                if annotator is None:
                    annotator = make_annotator()
                results = annotate(annotator, pairs, prompt, max_attempts=max_attempts)
                part = lake.table_dir(TABLE) / f"part-{uuid.uuid4().hex[:12]}.parquet"
                with atomic_path(part) as tmp:
                    pq.write_table(_rows(results, model, prompt.version, test_model), tmp, compression="zstd")
                pending += len(pairs)
                for r in results:
                    key = "ok" if r.status == "ok" else r.error or "failed"
                    counts[key] = counts.get(key, 0) + 1
                log(f"{pending:,} pairs annotated ({counts.get('ok', 0):,} ok)")
    finally:
        if annotator is not None:
            annotator.close()
    ok = counts.pop("ok", 0)
    cached = _count(lake, model, prompt.version, shard, n_shards) - pending
    return AttributesSummary(pending=pending, annotated=pending, cached=cached, ok=ok, failed=sum(counts.values()),
                             errors=dict(sorted(counts.items())), seconds=round(time.perf_counter() - start, 3))


def _count(lake: Lake, model: str, version: str, shard: int | None = None, n_shards: int = N_SHARDS) -> int:
    if not lake.has_table(TABLE):
        return 0
    in_shard = f"and {shard_sql(n_shards)} = {int(shard)}" if shard is not None else ""
    with duck_connect(lake) as con:
        return con.execute(f"select count(*) from read_parquet({lit(lake.table_glob(TABLE))}) "
                           f"where model = ? and prompt_version = ? {in_shard}", [model, version]).fetchone()[0]
