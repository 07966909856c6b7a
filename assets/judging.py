"""LLM judging of queued pairs: judge_queue -> judge_votes -> silver_labels."""

import dagster as dg
from pydantic import Field

from dagster_project.metadata import counts_table, preview
from dagster_project.resources import JudgesResource, LakeResource, with_local_model
from synpref.duck import refresh_views
from synpref.judging_stage import GOLD, LABELS, QUEUE, VOTES, enqueue, judge_queued, queue_counts


class QueueConfig(dg.Config):
    sql: str | None = Field(default=None, description="A read-only SELECT over the lake's tables returning "
                                                      "pair_id: the pairs to queue. None queues nothing new.")
    origin: str = Field(default="sql", description="Recorded with each newly queued pair.")


@dg.asset(
    name=QUEUE, group_name="silver", deps=["silver_pairs"], kinds={"duckdb", "parquet"},
    description="The pairs to judge (pair_id, origin): Stage 1 retrieval, Stage 2's uncertain pairs, or a SELECT.",
)
def judge_queue(context: dg.AssetExecutionContext, config: QueueConfig, lake: LakeResource) -> dg.MaterializeResult:
    the_lake = lake.lake()
    new = old = 0
    if config.sql:
        try:
            new, old = enqueue(the_lake, config.sql, config.origin)
        except ValueError as e:
            raise dg.Failure(description=str(e)) from e
        context.log.info(f"queued {new:,} pairs ({old:,} were queued already)")
    refresh_views(the_lake)
    by_origin = queue_counts(the_lake)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": sum(by_origin.values()), "queued_now": new, "already_queued": old,
        "by_origin": counts_table(by_origin, key="origin"),
    })


class JudgingConfig(dg.Config):
    chunk_rows: int = Field(default=128, description="Pairs judged and saved at a time (the resume unit).")
    limit: int | None = Field(default=None, description="Judge at most this many pending pairs per judge.")


@dg.multi_asset(
    name="judging",
    specs=[
        dg.AssetSpec(VOTES, group_name="silver", deps=[QUEUE, "pair_attributes", "pair_embeddings", GOLD],
                     kinds={"vllm", "parquet"},
                     description="Every judge's answers per queued pair, mapped back to the original label; "
                                 "cached by judge and its config."),
        dg.AssetSpec(LABELS, group_name="silver", deps=[VOTES], kinds={"duckdb", "parquet"},
                     description="The merged verdict per queued pair: agree / flipped / undecided, with "
                                 "confidence, every judge's votes and the order the responses were shown in."),
    ],
)
def judging(context: dg.AssetExecutionContext, config: JudgingConfig, lake: LakeResource, judges: JudgesResource):
    from models.annotator import load_annotator
    from models.judge import load_judge_prompt

    the_lake, panel = lake.lake(), judges.panel()
    prompt = load_judge_prompt(panel.prompt_version)
    context.log.info(f"judging queued pairs with {', '.join(j.name for j in panel.judges)} ({panel.merge} merge)")
    try:
        summary = judge_queued(the_lake, panel, prompt, lambda judge: load_annotator(with_local_model(
            judge.annotator, the_lake)), chunk_rows=config.chunk_rows, limit=config.limit, log=context.log.info)
    except ValueError as e:
        raise dg.Failure(description=str(e)) from e
    refresh_views(the_lake)
    bias = summary.first_answer_share
    yield dg.MaterializeResult(asset_key=VOTES, metadata={
        "judged_now": dg.MetadataValue.json(summary.judged),
        "pairs_with_no_answers": dg.MetadataValue.json(summary.errors),
        "pairs_with_examples": summary.with_examples,
        "seconds": summary.seconds,
        "judged_pairs_per_s": round(summary.pairs_judged / summary.seconds, 2) if summary.seconds else 0.0,
        "preview": preview(the_lake.table_files(VOTES), ["pair_id", "judge", "shown_order", "answers", "decision"]),
    })
    yield dg.MaterializeResult(asset_key=LABELS, metadata={
        "dagster/row_count": summary.labelled,
        "queued": summary.queued,
        "verdicts": counts_table(summary.verdicts, key="verdict"),
        # 0.5 is unbiased: which response is shown first is a balanced coin per pair
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
