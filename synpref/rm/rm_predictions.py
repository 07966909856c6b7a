"""rm_predictions: a reward model's scores of pairs, one pool shard at a time.

A shard's pairs are streamed from DuckDB in chunks (never the whole pool), scored in
length-bucketed batches, and written through one Parquet writer to a temporary file that is
renamed into place when the shard is complete and its rows reconcile with the shard's pairs:
one part per (model, version, pairs table, shard). A shard whose part exists is skipped, so a
rerun, or a run killed half-way, scores only the shards still missing.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synpref.lake import schemas
from synpref.lake.duck import DuckSettings, stage_connection
from synpref.lake import TABLE_LAYERS, Lake, LakePath, atomic_path, parquet_rows
from synpref.rm.memory import trim_heap
from synpref.rm.rm_models import ModelRef
from synpref.lake.shards import N_SHARDS, shard_key, shard_sql

TABLE = "rm_predictions"
PAIR_COLUMNS = ["pair_id", "conversation", "chosen", "rejected"]


@dataclass
class ShardSummary:
    shard: int
    pairs_table: str
    rows: int
    skipped: bool  # the part was there already
    path: LakePath
    seconds: float = 0.0
    tokens: int = 0
    padding_share: float = 0.0


def part_path(lake: Lake, ref: ModelRef, pairs_table: str, label: str, table: str = TABLE) -> LakePath:
    return lake.table_dir(table) / f"{ref.name}--{ref.version}--{pairs_table}--{label}.parquet"


def prediction_rows(ref: ModelRef, pairs_table: str, pair_ids: list[str], reward_chosen: np.ndarray,
                    reward_rejected: np.ndarray, p_chosen: np.ndarray) -> pa.Table:
    n = len(pair_ids)
    return pa.table({
        "pair_id": pa.array(pair_ids, pa.string()),
        "pairs_table": pa.array([pairs_table] * n, pa.string()),
        "model": pa.array([ref.name] * n, pa.string()),
        "model_version": pa.array([ref.version] * n, pa.string()),
        "reward_chosen": pa.array(reward_chosen, pa.float64()),
        "reward_rejected": pa.array(reward_rejected, pa.float64()),
        "p_chosen": pa.array(p_chosen, pa.float64()),
        "scored_at": pa.array([datetime.now(timezone.utc)] * n, schemas.RM_PREDICTIONS.field("scored_at").type),
    }, schema=schemas.RM_PREDICTIONS)


def write_scored(path: LakePath, chunks: Iterable[pa.RecordBatch], scorer, to_rows: Callable[..., pa.Table],
                 schema: pa.Schema = schemas.RM_PREDICTIONS, expected: int | None = None,
                 log: Callable[[str], None] = lambda msg: None,
                 inputs: tuple[str, str, str] = ("conversation", "chosen", "rejected")) -> int:
    """Score chunks of pairs (batches with the `inputs` columns: conversation, chosen, rejected;
    `to_rows(batch, reward_chosen, reward_rejected, p_chosen)` makes the rows to write) into one
    Parquet file, written under a temporary name and renamed only when every pair is in it (and as
    many as expected)."""
    written = 0
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            for chunk in chunks:
                scores = scorer.score(*(chunk[c].to_pylist() for c in inputs))
                writer.write_table(to_rows(chunk, *scores))
                written += chunk.num_rows
                trim_heap()  # else the shard's RSS grows with every chunk (heap fragmentation)
                log(f"{path.name}: {written:,} pairs scored")
        if expected is not None and written != expected:
            raise RuntimeError(f"{path.name}: {written} pairs scored, but the input holds {expected}")
    return written


def stream_pairs(con: duckdb.DuckDBPyConnection, sql: str, chunk_pairs: int) -> Iterator[pa.RecordBatch]:
    """The rows of a query, chunk_pairs rows at a time."""
    yield from nonempty(con.sql(sql).to_arrow_reader(chunk_pairs))


def nonempty(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    return (b for b in batches if b.num_rows)


def score_shard(lake: Lake, ref: ModelRef, shard: int, make_scorer: Callable, pairs_table: str = "silver_pairs",
                chunk_pairs: int = 2048, log: Callable[[str], None] = lambda msg: None,
                n_shards: int = N_SHARDS, where: str | None = None, label: str | None = None,
                con: duckdb.DuckDBPyConnection | None = None, table: str = TABLE) -> ShardSummary:
    """Score one shard of a pairs table with the model, unless that part exists already; `where`
    (a SQL condition) narrows the shard, e.g. to a fold model's held-out pairs, and then `label`
    names the part (a part that holds part of a shard must never pass for the whole shard). `con`:
    a stage connection to use (and leave open), where a step scores with many models. `table`: the
    table the part goes to (rm_predictions; Stage 2's own model scores go to pool_model_scores)."""
    if where and not label:
        raise ValueError("a part narrowed by `where` needs its own label")
    if pairs_table not in TABLE_LAYERS or not lake.has_table(pairs_table):
        raise ValueError(f"no lake table {pairs_table!r} to score")
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is not one of the {n_shards} shards")
    path = part_path(lake, ref, pairs_table, label or shard_key(shard), table)
    if path.exists():
        return ShardSummary(shard, pairs_table, parquet_rows(path), True, path)
    start = time.perf_counter()
    # a connection of the caller's stays open (nullcontext does not close it)
    with (stage_connection(lake, DuckSettings()) if con is None else contextlib.nullcontext(con)) as con:
        where = f"where {shard_sql(n_shards)} = {int(shard)}" + (f" and ({where})" if where else "")
        ((expected,),) = con.execute(f"select count(*) from {pairs_table} {where}").fetchall()
        scorer = make_scorer() if expected else None  # an empty shard still gets its (empty) part
        before = (scorer.stats.tokens, scorer.stats.padded_tokens) if scorer else (0, 0)
        rows = write_scored(path, stream_pairs(con, f"select {', '.join(PAIR_COLUMNS)} from {pairs_table} {where}",
                                               chunk_pairs),
                            scorer, lambda batch, *s: prediction_rows(ref, pairs_table, batch["pair_id"].to_pylist(),
                                                                      *s), expected=expected, log=log)
    tokens, padded = ((scorer.stats.tokens - before[0], scorer.stats.padded_tokens - before[1]) if scorer
                      else (0, 0))
    return ShardSummary(shard, pairs_table, rows, False, path, round(time.perf_counter() - start, 3), tokens,
                        1 - tokens / padded if padded else 0.0)


def write_predictions(lake: Lake, ref: ModelRef, pairs_table: str, label: str, pair_ids: list[str],
                      scores: tuple[np.ndarray, np.ndarray, np.ndarray], table: str = TABLE) -> LakePath:
    """Scores held in memory (a small set, such as the evaluation pairs) as one part of `table`
    (rm_predictions, or rm_eval_pairs for an evaluation set)."""
    path = part_path(lake, ref, pairs_table, label, table)
    with atomic_path(path) as tmp:
        pq.write_table(prediction_rows(ref, pairs_table, pair_ids, *scores), tmp, compression="zstd")
    return path


def scored_shards(lake: Lake, ref: ModelRef, pairs_table: str = "silver_pairs") -> list[int]:
    """The shards of pairs_table the model has scored."""
    return [s for s in range(N_SHARDS) if part_path(lake, ref, pairs_table, shard_key(s)).exists()]
