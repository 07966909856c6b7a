"""Stage 1 in rounds (dynamic partitions round-1, round-2, ...), its gold-layer tables: the
round's error-driven retrieval (stage1_retrievals) and the round's figures (stage1_rounds).
The round's reward model is in the models layer (assets/models/training.py)."""

import dagster as dg
from pydantic import Field

from dagster_project.metadata import records_table
from dagster_project.partitions import stage1_rounds
from dagster_project.plots import line_plot
from dagster_project.resources import LakeResource
from dagster_project.results import table_result
from synpref.rm import rm_models
from synpref.gold import stage1
from synpref.lake.duck import refresh_views


class RetrievalConfig(dg.Config):
    to_humans: int = Field(default=stage1.RoundSettings.to_humans,
                           description="Retrieved pairs sent to humans (objective, low-controversy first).")
    to_judges: int | None = Field(default=None, description="Cap on retrieved pairs sent to the LLM judges.")


@dg.asset(
    name=stage1.RETRIEVALS, group_name="gold", partitions_def=stage1_rounds,
    deps=["round_reward_model", "rm_eval", "pair_embeddings"], kinds={"lancedb", "parquet"},
    description="Error-driven retrieval around the gold pairs (k = 8 where the round RM is wrong or unsure, "
                "fewer the surer it is): every pair found, with where it goes (humans, judges); the queue "
                "assets queue them.",
)
def stage1_retrievals(context: dg.AssetExecutionContext, config: RetrievalConfig,
                      lake: LakeResource) -> dg.MaterializeResult:
    the_lake, key = lake.lake(), context.partition_key
    settings = stage1.RoundSettings(to_humans=config.to_humans, to_judges=config.to_judges)
    try:
        ref = rm_models.resolve(the_lake, key)
        p = stage1.gold_p(the_lake, ref.name, ref.version)
        if not p:
            raise ValueError(f"{key} {ref.version} has no scores on gold: materialise rm_eval first")
        found = stage1.retrieve_round(the_lake, key, p, settings, log=context.log.info)
    except (ValueError, LookupError, KeyError) as e:
        raise dg.Failure(description=str(e)) from e
    refresh_views(the_lake)
    return table_result(context, lake, None, stage1.RETRIEVALS, {
        "gold_queries": found.queries, "wrong_or_unsure": found.wrong_or_unsure, "retrieved": found.retrieved,
        "to_humans": len(found.to_humans), "to_judges": len(found.to_judges),
    })


@dg.asset(
    name=stage1.ROUNDS, group_name="gold", partitions_def=stage1_rounds,
    deps=[stage1.RETRIEVALS, "annotation_queue", "gold_pairs", "silver_labels", "rm_eval"], kinds={"parquet"},
    description="The round's figures once its labels are in (gold accuracy, sizes, human-judge agreement), "
                "and the figures of every round so far, plotted.",
)
def stage1_rounds_table(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    the_lake, key = lake.lake(), context.partition_key
    try:
        ref = rm_models.resolve(the_lake, key)
    except LookupError as e:
        raise dg.Failure(description=str(e)) from e
    stage1.record_round(the_lake, key, ref)
    refresh_views(the_lake)
    history = stage1.rounds(the_lake)
    x = [r["round_number"] for r in history]
    return table_result(context, lake, None, stage1.ROUNDS, {
        "dagster/row_count": len(history),
        "rounds": records_table(history, ["round", "gold_accuracy", "gold_pairs_before", "gold_pairs_after",
                                          "wrong_or_unsure", "retrieved", "to_humans", "to_judges",
                                          "human_agreement", "human_judge_agreement", "simulated_humans"]),
        "gold_accuracy_by_round": line_plot({"gold accuracy": (x, [r["gold_accuracy"] for r in history])},
                                            "round", "accuracy on gold", "round RM accuracy on gold"),
        "sizes_by_round": line_plot({"gold pairs": (x, [r["gold_pairs_after"] for r in history]),
                                     "sent to judges": (x, [r["to_judges"] for r in history]),
                                     "sent to humans": (x, [r["to_humans"] for r in history])},
                                    "round", "pairs", "gold and labelled pairs by round"),
    })
