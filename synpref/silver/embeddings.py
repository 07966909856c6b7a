"""The pair_embeddings stage: embed (conversation, attributes) per silver pair into LanceDB.

Only pairs not yet in the LanceDB table are embedded. Each chunk is one LanceDB append (an
atomic commit), so a killed run keeps the finished chunks and the rerun embeds the rest.
A pair's attributes are its latest successful `pair_attributes` row; pairs without one are
embedded from the conversation alone (and have no task category to filter on).

The work splits by pool shard (synpref/lake/shards.py): `embed_shard` embeds one shard's pending
pairs and can run in many processes or machines at once, since LanceDB appends from
concurrent writers commit without conflict; `finish_embeddings` then compacts the appended
fragments and (re)builds the ANN index once. `embed_pending` is both, in one process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable


from synpref.silver import vectors
from synpref.silver.attributes import register_latest_attributes
from synpref.lake.duck import connect as duck_connect, register_tables
from synpref.lake import Lake
from synpref.lake.shards import N_SHARDS, shard_key, shard_sql


@dataclass
class ShardEmbedding:
    shard: int | None  # None: the whole pool
    embedded: int
    with_attributes: int
    seconds: float


@dataclass
class EmbeddingsSummary:
    embedded: int
    total: int
    with_attributes: int
    seconds: float
    index: dict = field(default_factory=dict)

    @property
    def pairs_per_s(self) -> float:
        return self.embedded / self.seconds if self.seconds else 0.0


PENDING_SQL = """
select s.pair_id, s.conversation, a.task_category, a.objectivity, a.controversiality, a.desired_attributes
from silver_pairs as s
left join latest_attributes as a using (pair_id)
{anti_join}
{in_shard}
order by s.pair_id
"""
COLUMNS = ("pair_id", "conversation", "task_category", "objectivity", "controversiality", "desired_attributes")


def embed_shard(lake: Lake, make_embedder: Callable, shard: int | None = None, n_shards: int = N_SHARDS,
                chunk_rows: int = 1024, log=lambda msg: None) -> ShardEmbedding:
    """Embed the shard's silver pairs not yet in LanceDB (every pending pair when shard is None).

    Leaves compaction and the index to `finish_embeddings`, so that shards can run at once.
    """
    from models.embedder import pair_text

    start = time.perf_counter()
    label = shard_key(shard) if shard is not None else "pool"
    in_shard = f"where {shard_sql(n_shards, 's.pair_id')} = {int(shard)}" if shard is not None else ""
    with duck_connect(lake) as con:
        register_tables(con, lake, temp=True)
        register_latest_attributes(con, lake)  # pairs without attributes embed their conversation alone
        anti_join = ""
        if vectors.has_table(lake):
            # DuckDB streams the ids from LanceDB and keeps only this shard's for the anti join
            con.register("embedded_ids", vectors.pair_id_batches(lake))
            anti_join = "anti join embedded_ids using (pair_id)"
        con.execute(PENDING_SQL.format(anti_join=anti_join, in_shard=in_shard))
        embedder, embedded, with_attributes = None, 0, 0
        while batch := con.fetchmany(chunk_rows):
            embedder = embedder or make_embedder()
            pairs = [dict(zip(COLUMNS, row)) for row in batch]
            texts = [pair_text(p["conversation"], p if p["task_category"] else None) for p in pairs]
            rows = vectors.embedding_rows(pairs, embedder.embed(texts), texts)
            vectors.write_embeddings(lake, rows, mode="append")
            embedded += len(pairs)
            with_attributes += sum(1 for p in pairs if p["task_category"])
            log(f"{label}: {embedded:,} pairs embedded")
    return ShardEmbedding(shard, embedded, with_attributes, round(time.perf_counter() - start, 3))


def finish_embeddings(lake: Lake, index_config: vectors.IndexConfig, embedded_now: int,
                      log=lambda msg: None) -> tuple[int, dict]:
    """After the shards: compact the appended fragments and rebuild the index when anything
    was embedded, or when a run killed after its shards left that undone. Returns (rows in
    the table, index report; empty when unchanged)."""
    if not vectors.has_table(lake):
        return 0, {}
    index = {}
    if embedded_now or vectors.unfinished(lake, index_config):
        vectors.compact(lake)
        index = vectors.build_index(lake, index_config, log=log)
    return vectors.open_table(lake).count_rows(), index


def embed_pending(lake: Lake, make_embedder: Callable, index_config: vectors.IndexConfig,
                  chunk_rows: int = 1024, log=lambda msg: None) -> EmbeddingsSummary:
    """Every pending pair in this process, then compaction and the index."""
    done = embed_shard(lake, make_embedder, chunk_rows=chunk_rows, log=log)
    total, index = finish_embeddings(lake, index_config, done.embedded, log=log)
    return EmbeddingsSummary(embedded=done.embedded, total=total, with_attributes=done.with_attributes,
                             seconds=done.seconds, index=index)
