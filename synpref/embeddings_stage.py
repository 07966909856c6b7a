"""The pair_embeddings stage: embed (conversation, attributes) per silver pair into LanceDB.

Only pairs not yet in the LanceDB table are embedded. Each chunk is one LanceDB append (an
atomic commit), so a killed run keeps the finished chunks and the rerun embeds the rest.
A pair's attributes are its latest successful `pair_attributes` row; pairs without one are
embedded from the conversation alone (and have no task category to filter on).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import duckdb
import pyarrow as pa

from synpref import vectors
from synpref.attributes_stage import register_latest_attributes
from synpref.duck import register_tables
from synpref.lake import Lake


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
order by s.pair_id
"""


def embed_pending(lake: Lake, make_embedder: Callable, index_config: vectors.IndexConfig,
                  chunk_rows: int = 1024, log=lambda msg: None) -> EmbeddingsSummary:
    from models.embedder import pair_text

    start = time.perf_counter()
    con = duckdb.connect()
    try:
        register_tables(con, lake, temp=True)
        register_latest_attributes(con, lake)  # pairs without attributes embed their conversation alone
        anti_join = ""
        if vectors.has_table(lake):
            done = pa.table({"pair_id": pa.array(sorted(vectors.existing_pair_ids(lake)), pa.string())})
            con.register("embedded_ids", done)
            anti_join = "anti join embedded_ids using (pair_id)"
        con.execute(PENDING_SQL.format(anti_join=anti_join))
        embedder, embedded, with_attributes = None, 0, 0
        while batch := con.fetchmany(chunk_rows):
            embedder = embedder or make_embedder()
            columns = ("pair_id", "conversation", "task_category", "objectivity", "controversiality",
                       "desired_attributes")
            pairs = [dict(zip(columns, row)) for row in batch]
            texts = [pair_text(p["conversation"], p if p["task_category"] else None) for p in pairs]
            rows = pa.table({
                "pair_id": [p["pair_id"] for p in pairs],
                "vector": vectors.vector_array(embedder.embed(texts)),
                "task_category": [p["task_category"] for p in pairs],
                "objectivity": [p["objectivity"] for p in pairs],
                "controversiality": [p["controversiality"] for p in pairs],
                "text": texts,
            })
            vectors.write_embeddings(lake, rows, mode="append")
            embedded += len(pairs)
            with_attributes += sum(1 for p in pairs if p["task_category"])
            log(f"{embedded:,} pairs embedded")
    finally:
        con.close()
    seconds = time.perf_counter() - start
    index = vectors.build_index(lake, index_config) if embedded and vectors.has_table(lake) else {}
    total = vectors.open_table(lake).count_rows() if vectors.has_table(lake) else 0
    return EmbeddingsSummary(embedded=embedded, total=total, with_attributes=with_attributes,
                             seconds=round(seconds, 3), index=index)
