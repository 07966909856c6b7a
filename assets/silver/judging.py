"""LLM judging of queued pairs: judge_queue -> judge_votes -> silver_labels.

The same three assets serve both stages: Stage 1 queues what its retrieval sent to the judges,
Stage 2 the pool pairs the best RM does not confirm; judge_votes then judges whatever is
pending, one step per pool shard, and silver_labels merges the votes.
"""

import dagster as dg
from pydantic import Field

from dagster_project.checks import table_check_specs
from dagster_project.metadata import counts_table, preview
from dagster_project.resources import JudgesResource, LakeResource, QualityResource, with_local_model
from dagster_project.results import table_output, table_result
from synpref.lake.duck import refresh_views
from synpref.silver.judging import (GOLD, LABELS, QUEUE, VOTES, enqueue, ensure_queue, first_answer_share,
                                   queue_counts, queue_for_judges, write_labels)
from synpref.lake.shards import N_SHARDS, shard_key, shard_sql

ALL = -1  # one step for every pending pair, in place of one per shard


class QueueConfig(dg.Config):
    sql: str | None = Field(default=None, description="A read-only SELECT over the lake's tables returning "
                                                      "pair_id: more pairs to queue. None queues only what the "
                                                      "stages sent to the judges.")
    origin: str = Field(default="sql", description="Recorded with each pair the SELECT queues.")


@dg.asset(
    name=QUEUE, group_name="silver", deps=["silver_pairs", "stage1_retrievals", "pool_scores"],
    kinds={"duckdb", "parquet"}, check_specs=table_check_specs(QUEUE),
    description="The pairs to judge (pair_id, origin): what Stage 1 retrieval sent to the judges, Stage 2's "
                "pairs the best RM does not confirm, and any a SELECT names. A pair is queued once.",
)
def judge_queue(context: dg.AssetExecutionContext, config: QueueConfig, lake: LakeResource,
                quality: QualityResource) -> dg.MaterializeResult:
    the_lake = lake.lake()
    try:
        queued = queue_for_judges(the_lake)
        if config.sql:
            queued[config.origin] = queued.get(config.origin, 0) + enqueue(the_lake, config.sql, config.origin)[0]
    except ValueError as e:
        raise dg.Failure(description=str(e)) from e
    ensure_queue(the_lake)
    queued = {origin: n for origin, n in queued.items() if n}
    context.log.info(f"queued {sum(queued.values()):,} pairs now: {queued or 'none new'}")
    refresh_views(the_lake)
    by_origin = queue_counts(the_lake)
    return table_result(context, lake, quality, QUEUE, {
        "dagster/row_count": sum(by_origin.values()), "queued_now": sum(queued.values()),
        "queued_now_by_origin": counts_table(queued, key="origin"),
        "by_origin": counts_table(by_origin, key="origin"),
    })


class JudgingConfig(dg.Config):
    chunk_rows: int = Field(default=128, description="Pairs judged and saved at a time (the resume unit).")
    limit: int | None = Field(default=None, description="Judge at most this many pending pairs per judge and step.")
    per_shard: bool = Field(default=True, description="One step per pool shard with pending pairs (parallel under "
                                                      "the multiprocess, Celery or Kubernetes executor); off: one "
                                                      "step for all (one model load: a small queue on one machine).")


@dg.op(out=dg.DynamicOut(int), ins={name: dg.In(dg.Nothing) for name in ("queue", "attributes", "embeddings", "gold")})
def plan_judging(config: JudgingConfig):
    """One step per pool shard (a shard with nothing pending is done in a moment: no model is
    loaded for it), or one step for all."""
    if not config.per_shard:
        yield dg.DynamicOutput(ALL, mapping_key="all")
        return
    for shard in range(N_SHARDS):
        yield dg.DynamicOutput(shard, mapping_key=shard_key(shard).replace("-", "_"))


@dg.op(retry_policy=dg.RetryPolicy(max_retries=1))
def judge_shard(context: dg.OpExecutionContext, config: JudgingConfig, lake: LakeResource,
                  judges: JudgesResource, shard: int) -> dict:
    from models.annotator import PROCESS_ENGINES, load_annotator
    from models.judge import load_judge_prompt
    from synpref.silver.judging import judge_queued

    the_lake, panel = lake.lake(), judges.panel()
    prompt = load_judge_prompt(panel.prompt_version)
    where = None if shard == ALL else f"{shard_sql()} = {int(shard)}"
    context.log.info(f"{'all shards' if shard == ALL else shard_key(shard)}: judging with "
                     f"{', '.join(j.name for j in panel.judges)} ({panel.merge} merge)")
    try:
        summary = judge_queued(the_lake, panel, prompt, lambda judge: load_annotator(with_local_model(
            judge.annotator, the_lake)), chunk_rows=config.chunk_rows, limit=config.limit, where=where,
            rebuild_labels=False, log=context.log.info, engines=PROCESS_ENGINES)  # the next shard's too
    except ValueError as e:
        PROCESS_ENGINES.close()
        raise dg.Failure(description=str(e)) from e
    except BaseException:
        PROCESS_ENGINES.close()  # an engine in an unknown state is not lent again
        raise
    return {"shard": shard, "judged": summary.judged, "errors": summary.errors,
            "with_examples": summary.with_examples, "seconds": summary.seconds,
            "pairs_judged": summary.pairs_judged}


@dg.op(out=dg.Out(dg.Nothing))  # no IO manager: a run over several partitions has one output
def collect_votes(context: dg.OpExecutionContext, lake: LakeResource, steps: list[dict]):
    from models.annotator import PROCESS_ENGINES

    PROCESS_ENGINES.close()  # the shards' engines, kept from shard to shard in this process
    the_lake = lake.lake()
    refresh_views(the_lake)
    judged: dict[str, int] = {}
    errors: dict[str, int] = {}
    for s in steps:
        for judge, n in s["judged"].items():
            judged[judge] = judged.get(judge, 0) + n
        for judge, n in s["errors"].items():
            errors[judge] = errors.get(judge, 0) + n
    seconds = sum(s["seconds"] for s in steps)
    pairs = sum(s["pairs_judged"] for s in steps)
    return table_output(lake, VOTES, {
        "judged_now": dg.MetadataValue.json(judged), "pairs_with_no_answers": dg.MetadataValue.json(errors),
        "pairs_with_examples": sum(s["with_examples"] for s in steps), "steps": len(steps),
        "seconds": round(seconds, 3),
        # per step-second, so comparable whatever the number of workers
        "judged_pairs_per_s": round(pairs / seconds, 2) if seconds else 0.0,
        "preview": preview(the_lake.table_files(VOTES), ["pair_id", "judge", "shown_order", "answers", "decision"]),
    })


@dg.graph_asset(
    name=VOTES, group_name="silver", kinds={"vllm", "parquet"},
    ins={QUEUE: dg.AssetIn(dagster_type=dg.Nothing), "pair_attributes": dg.AssetIn(dagster_type=dg.Nothing),
         "pair_embeddings": dg.AssetIn(dagster_type=dg.Nothing), GOLD: dg.AssetIn(dagster_type=dg.Nothing)},
    description="Every judge's answers per queued pair, mapped back to the original label; cached by judge and "
                "its config, so a pair is never judged twice. One step per pool shard.",
)
def judge_votes(judge_queue, pair_attributes, pair_embeddings, gold_pairs):
    # one Nothing input each: a fan-in list of asset inputs cannot feed a dynamic fan-out
    planned = plan_judging(queue=judge_queue, attributes=pair_attributes, embeddings=pair_embeddings, gold=gold_pairs)
    return collect_votes(planned.map(judge_shard).collect())


@dg.asset(
    name=LABELS, group_name="silver", deps=[VOTES], kinds={"duckdb", "parquet"}, check_specs=table_check_specs(LABELS),
    description="The merged verdict per queued pair: agree / flipped / undecided, with confidence, every judge's "
                "votes and the order the responses were shown in; rebuilt from the current panel's votes.",
)
def silver_labels(context: dg.AssetExecutionContext, lake: LakeResource, judges: JudgesResource,
                  quality: QualityResource) -> dg.MaterializeResult:
    from models.judge import load_judge_prompt

    the_lake, panel = lake.lake(), judges.panel()
    labels = write_labels(the_lake, panel)
    refresh_views(the_lake)
    verdicts: dict[str, int] = {}
    for v in labels["verdict"].to_pylist():
        verdicts[v] = verdicts.get(v, 0) + 1
    # 0.5 is unbiased: which response is shown first is a balanced coin per pair
    bias = first_answer_share(the_lake, panel, load_judge_prompt(panel.prompt_version).choices)
    return table_result(context, lake, quality, LABELS, {
        "dagster/row_count": labels.num_rows,
        "verdicts": counts_table(dict(sorted(verdicts.items())), key="verdict"),
        "position_bias_candidate_1_share": bias.get("all", float("nan")),
        "position_bias_by_judge": position_bias_table(bias),
        "judges": ", ".join(f"{j.name} (x{j.samples}, weight {j.weight})" for j in panel.judges),
        "merge": panel.merge,
        "prompt_version": panel.prompt_version,
        "preview": preview(the_lake.table_files(LABELS), ["pair_id", "verdict", "confidence", "shown_order"]),
    })


def position_bias_table(shares: dict[str, float]) -> dg.MetadataValue:
    lines = ["| judge | share of answers for Candidate 1 |", "|---|---:|"]
    lines += [f"| {name} | {share:.3f} |" for name, share in shares.items()]
    return dg.MetadataValue.md("\n".join(lines) if shares else "_none_")
