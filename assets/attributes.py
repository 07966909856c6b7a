"""Preference attributes (the paper's 5-tuple) for every silver pair, by the LLM annotator."""

import dagster as dg
from pydantic import Field

from dagster_project.metadata import counts_table, preview
from dagster_project.resources import AnnotatorResource, LakeResource
from synpref.attributes_stage import TABLE, annotate_pending
from synpref.duck import refresh_views


class AttributesConfig(dg.Config):
    prompt_version: str | None = Field(default=None, description="Prompt template under models/prompts/; "
                                                                   "default the annotator config's.")
    chunk_rows: int = Field(default=256, description="Pairs annotated and saved at a time (the resume unit).")
    max_attempts: int = Field(default=3, description="Tries per pair before it is recorded as failed.")
    limit: int | None = Field(default=None, description="Annotate at most this many pending pairs.")


@dg.asset(
    name=TABLE, group_name="silver", deps=["silver_pairs"], kinds={"vllm", "parquet"},
    description="Task category, objectivity, controversiality, desired attributes and an annotation "
                "guideline per silver pair; cached by (pair_id, model, prompt version).",
)
def pair_attributes(context: dg.AssetExecutionContext, config: AttributesConfig, lake: LakeResource,
                    annotator: AnnotatorResource) -> dg.MaterializeResult:
    from models.annotator import load_annotator
    from models.attributes import annotate, load_prompt

    the_lake = lake.lake()
    configured = annotator.configured()
    model_id = configured.model
    prompt = load_prompt(config.prompt_version or configured.prompt_version)
    context.log.info(f"annotating pending pairs with {model_id}, prompt {prompt.version}")
    summary = annotate_pending(
        the_lake, lambda: load_annotator(annotator.settings(the_lake)), annotate, prompt, model=model_id,
        chunk_rows=config.chunk_rows, limit=config.limit, max_attempts=config.max_attempts, log=context.log.info)
    refresh_views(the_lake)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": summary.annotated + summary.cached,
        "annotated_now": summary.annotated,
        "cached": summary.cached,
        "ok": summary.ok,
        "failed": summary.failed,
        "failures_by_reason": counts_table(summary.errors),
        "pairs_per_s": round(summary.pairs_per_s, 2),
        "model": model_id,
        "prompt_version": prompt.version,
        "preview": preview(the_lake.table_files(TABLE),
                           ["pair_id", "status", "task_category", "objectivity", "controversiality"]),
    })
