"""Pair embeddings in LanceDB: the vectors error-driven retrieval searches.

Graph-backed like Stage 2's pool assets: one step per pool shard, so the multiprocess,
Celery or Kubernetes executor embeds the shards in parallel (each appends to the one
LanceDB table), then one step compacts the table and builds the index.
"""

import dagster as dg
from pydantic import Field

from dagster_project.resources import EmbedderResource, LakeResource
from synpref.silver.embeddings import embed_shard, finish_embeddings
from synpref.lake.shards import N_SHARDS, shard_key
from synpref.silver import vectors
from synpref.silver.vectors import IndexConfig


class EmbedShardConfig(dg.Config):
    chunk_rows: int = Field(default=1024, description="Pairs embedded and appended at a time (the resume unit).")


@dg.op(out=dg.DynamicOut(int), ins={"after": dg.In(dg.Nothing)})
def plan_embedding_shards():
    """One step per pool shard (after pair_attributes)."""
    for shard in range(N_SHARDS):
        yield dg.DynamicOutput(shard, mapping_key=shard_key(shard).replace("-", "_"))


@dg.op(retry_policy=dg.RetryPolicy(max_retries=1))
def embed_pool_shard(context: dg.OpExecutionContext, config: EmbedShardConfig, lake: LakeResource,
                     embedder: EmbedderResource, shard: int) -> dict:
    done = embed_shard(lake.lake(), embedder.make, shard, chunk_rows=config.chunk_rows, log=context.log.info)
    context.log.info(f"{shard_key(shard)}: {done.embedded:,} pairs embedded in {done.seconds:.1f} s")
    return {"shard": shard, "embedded": done.embedded, "with_attributes": done.with_attributes,
            "seconds": done.seconds}


@dg.op(out=dg.Out(dg.Nothing))  # no IO manager: a run over several partitions has one output
def collect_embeddings(context: dg.OpExecutionContext, lake: LakeResource, shards: list[dict]):
    embedded = sum(s["embedded"] for s in shards)
    total, index = finish_embeddings(lake.lake(), IndexConfig(), embedded, log=context.log.info)
    busy = sum(s["seconds"] for s in shards if s["embedded"])
    # the LanceDB table's version moves with every append, compaction and index: unchanged when reused
    version = vectors.open_table(lake.lake()).version if vectors.has_table(lake.lake()) else 0
    return dg.Output(None, data_version=dg.DataVersion(f"lance-v{version}"), metadata={
        "dagster/row_count": total,
        "embedded_now": embedded,
        "with_attributes": sum(s["with_attributes"] for s in shards),
        "shards": len(shards),
        # per step-second, so comparable whatever the number of workers
        "pairs_per_s": round(embedded / busy, 1) if busy else 0.0,
        "index": index or "unchanged",
    })


@dg.graph_asset(
    group_name="silver", ins={"pair_attributes": dg.AssetIn(dagster_type=dg.Nothing)},
    kinds={"lancedb", "sentence_transformers"},
    description="One vector per silver pair from its conversation and attributes, in LanceDB under "
                "<lake>/lancedb, with an ANN index sized by the table's rows and checked by recall "
                "at build. One step per pool shard.",
)
def pair_embeddings(pair_attributes):
    return collect_embeddings(plan_embedding_shards(after=pair_attributes).map(embed_pool_shard).collect())
