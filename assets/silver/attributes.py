"""Preference attributes (the paper's 5-tuple) for every silver pair, by the LLM annotator.

Graph-backed like the other pool-wide assets: one step per pool shard, each with its own
annotator (one GPU per step under Celery or Kubernetes), then one step that sums up.
"""

import math

import dagster as dg
from pydantic import Field

from dagster_project.metadata import counts_table, preview
from dagster_project.resources import AnnotatorResource, LakeResource
from dagster_project.results import table_output
from synpref.silver.attributes import TABLE, annotate_pending
from synpref.lake.duck import refresh_views
from synpref.lake.shards import N_SHARDS, shard_key


class AttributesConfig(dg.Config):
    prompt_version: str | None = Field(default=None, description="Prompt template under models/prompts/; "
                                                                   "default the annotator config's.")
    chunk_rows: int = Field(default=256, description="Pairs annotated and saved at a time (the resume unit).")
    max_attempts: int = Field(default=3, description="Tries per pair before it is recorded as failed.")
    limit: int | None = Field(default=None, description="Annotate at most this many pending pairs (split evenly "
                                                        "over the shards).")


@dg.op(out=dg.DynamicOut(int), ins={"after": dg.In(dg.Nothing)})
def plan_attribute_shards(lake: LakeResource, annotator: AnnotatorResource):
    """One step per pool shard (after silver_pairs)."""
    annotator.settings(lake.lake())  # the demo's tiny model made once here, not raced for by the shards
    for shard in range(N_SHARDS):
        yield dg.DynamicOutput(shard, mapping_key=shard_key(shard).replace("-", "_"))


@dg.op(retry_policy=dg.RetryPolicy(max_retries=1))
def annotate_shard(context: dg.OpExecutionContext, config: AttributesConfig, lake: LakeResource,
                   annotator: AnnotatorResource, shard: int) -> dict:
    from models.annotator import PROCESS_ENGINES, load_annotator
    from models.attributes import annotate, load_prompt
    from models.tiny_llm import is_test_model

    the_lake = lake.lake()
    configured = annotator.configured()
    model_id = configured.model
    settings = annotator.settings(the_lake)  # the model folder itself (the tiny one made by the plan step)
    prompt = load_prompt(config.prompt_version or configured.prompt_version)
    context.log.info(f"{shard_key(shard)}: annotating pending pairs with {model_id}, prompt {prompt.version}")
    limit = math.ceil(config.limit / N_SHARDS) if config.limit else None
    try:  # one engine for the shards this process runs (collect_attributes closes it)
        summary = annotate_pending(
            the_lake, lambda: PROCESS_ENGINES.lend(settings, lambda: load_annotator(settings)), annotate, prompt,
            model=model_id, chunk_rows=config.chunk_rows, limit=limit, max_attempts=config.max_attempts,
            log=lambda msg: context.log.info(f"{shard_key(shard)}: {msg}"), shard=shard,
            test_model=is_test_model(settings.model))
    except BaseException:
        PROCESS_ENGINES.close()  # an engine in an unknown state is not lent again
        raise
    return {"shard": shard, "annotated": summary.annotated, "cached": summary.cached, "ok": summary.ok,
            "failed": summary.failed, "errors": summary.errors, "seconds": summary.seconds,
            "model": model_id, "prompt_version": prompt.version}


@dg.op(out=dg.Out(dg.Nothing))  # no IO manager: a run over several partitions has one output
def collect_attributes(context: dg.OpExecutionContext, lake: LakeResource, shards: list[dict]):
    from models.annotator import PROCESS_ENGINES

    PROCESS_ENGINES.close()  # the shards' engine, kept from shard to shard in this process
    the_lake = lake.lake()
    refresh_views(the_lake)
    errors: dict[str, int] = {}
    for s in shards:
        for reason, n in s["errors"].items():
            errors[reason] = errors.get(reason, 0) + n
    annotated = sum(s["annotated"] for s in shards)
    busy = sum(s["seconds"] for s in shards if s["annotated"])
    return table_output(lake, TABLE, {
        "dagster/row_count": annotated + sum(s["cached"] for s in shards),
        "annotated_now": annotated,
        "cached": sum(s["cached"] for s in shards),
        "ok": sum(s["ok"] for s in shards),
        "failed": sum(s["failed"] for s in shards),
        "failures_by_reason": counts_table(dict(sorted(errors.items()))),
        "shards": len(shards),
        # per step-second, so comparable whatever the number of workers
        "pairs_per_s": round(annotated / busy, 2) if busy else 0.0,
        "model": ", ".join(sorted({s["model"] for s in shards})),
        "prompt_version": ", ".join(sorted({s["prompt_version"] for s in shards})),
        "preview": preview(the_lake.table_files(TABLE),
                           ["pair_id", "status", "task_category", "objectivity", "controversiality"]),
    })


@dg.graph_asset(
    name=TABLE, group_name="silver", ins={"silver_pairs": dg.AssetIn(dagster_type=dg.Nothing)},
    kinds={"vllm", "parquet"},
    description="Task category, objectivity, controversiality, desired attributes and an annotation "
                "guideline per silver pair; cached by (pair_id, model, prompt version). One step per pool shard.",
)
def pair_attributes(silver_pairs):
    return collect_attributes(plan_attribute_shards(after=silver_pairs).map(annotate_shard).collect())
