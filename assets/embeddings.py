"""Pair embeddings in LanceDB: the vectors error-driven retrieval searches."""

import dagster as dg
from pydantic import Field

from dagster_project.resources import EmbedderResource, LakeResource
from synpref.embeddings_stage import embed_pending
from synpref.vectors import IndexConfig


class EmbeddingsConfig(dg.Config):
    chunk_rows: int = Field(default=1024, description="Pairs embedded and appended at a time (the resume unit).")


@dg.asset(
    group_name="silver", deps=["pair_attributes"], kinds={"lancedb", "sentence_transformers"},
    description="One vector per silver pair from its conversation and attributes, in LanceDB under "
                "<lake>/lancedb, with an ANN index chosen by measured recall.",
)
def pair_embeddings(context: dg.AssetExecutionContext, config: EmbeddingsConfig, lake: LakeResource,
                    embedder: EmbedderResource) -> dg.MaterializeResult:
    summary = embed_pending(lake.lake(), embedder.make, IndexConfig(), chunk_rows=config.chunk_rows,
                            log=context.log.info)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": summary.total,
        "embedded_now": summary.embedded,
        "with_attributes": summary.with_attributes,
        "pairs_per_s": round(summary.pairs_per_s, 1),
        "index": summary.index or "unchanged",
    })
