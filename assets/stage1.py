"""Stage 1 in rounds (dynamic partitions round-1, round-2, ...): the round's reward model,
error-driven retrieval sending pairs to humans and judges, and the round's figures."""

import dagster as dg
from pydantic import Field

from assets.models import train_and_evaluate
from dagster_project.metadata import records_table
from dagster_project.partitions import stage1_rounds
from dagster_project.plots import line_plot
from dagster_project.resources import LakeResource, ScorerResource, TrainerResource
from synpref import rm_models, stage1
from synpref.demo.simulated import simulate_annotators
from synpref.duck import refresh_views


class RoundModelConfig(dg.Config):
    max_steps: int | None = Field(default=None, description="Override: stop training after this many steps.")
    epochs: int | None = Field(default=None, description="Override: epochs over the silver pairs.")
    max_length: int | None = Field(default=None, description="Override: tokens per sequence.")


@dg.asset(
    group_name="stage1", partitions_def=stage1_rounds, deps=["silver_pairs", "gold_pairs", "silver_labels"],
    kinds={"deepspeed", "pytorch"},
    description="The round's reward model: trained on silver (the pool, judges' verdicts applied), the "
                "checkpoint picked and the model evaluated on gold (rm_eval).",
)
def round_reward_model(context: dg.AssetExecutionContext, config: RoundModelConfig, lake: LakeResource,
                       trainer: TrainerResource, scorer: ScorerResource,
                       pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    the_lake, key = lake.lake(), context.partition_key
    stage1.round_number(key)
    if not stage1.gold_count(the_lake):
        raise dg.Failure(description="no gold pairs yet: humans label the seed set first "
                                     "(`synpref round` queues it; label it on the annotation page)")
    train_config = trainer.train_config(max_steps=config.max_steps, epochs=config.epochs, max_length=config.max_length)
    summary, ref, evaluation = train_and_evaluate(
        context, the_lake, key, stage1.silver_training_sql(the_lake), train_config, eval_set="gold",
        trainer=trainer, scorer=scorer, client=pipes_subprocess_client)
    return dg.MaterializeResult(metadata={
        "model": key, "model_version": summary.version, "status": summary.status,
        "train_pairs": summary.train_pairs, "gold_pairs": evaluation.pairs,
        "gold_accuracy": evaluation.accuracy, "path": dg.MetadataValue.path(str(ref.path)),
    })


class RoundQueuesConfig(dg.Config):
    to_humans: int = Field(default=stage1.RoundSettings.to_humans,
                           description="Retrieved pairs sent to humans (objective, low-controversy first).")
    to_judges: int | None = Field(default=None, description="Cap on retrieved pairs sent to the LLM judges.")
    simulated_humans: bool = Field(default=False, description="Demo only: label the pairs sent to humans with "
                                                              "annotators simulated from the demo's known truth.")


@dg.asset(
    group_name="stage1", partitions_def=stage1_rounds, deps=["round_reward_model", "pair_embeddings"],
    kinds={"lancedb", "parquet"},
    description="Error-driven retrieval around the gold pairs (k = 8 where the round RM is wrong or unsure, "
                "fewer the surer it is), the pairs found sent to the annotation queue and to the judges.",
)
def round_queues(context: dg.AssetExecutionContext, config: RoundQueuesConfig,
                 lake: LakeResource) -> dg.MaterializeResult:
    the_lake, key = lake.lake(), context.partition_key
    settings = stage1.RoundSettings(to_humans=config.to_humans, to_judges=config.to_judges)
    try:
        ref = rm_models.resolve(the_lake, key)
        queues = stage1.queue_round(the_lake, key, stage1.gold_p(the_lake, ref.name, ref.version), settings,
                                    log=context.log.info)
    except (ValueError, LookupError, KeyError) as e:
        raise dg.Failure(description=str(e)) from e
    simulated = simulate_annotators(the_lake, origin=key) if config.simulated_humans else 0
    if simulated:
        context.log.info(f"{simulated:,} SIMULATED human labels from the demo's truth")
    refresh_views(the_lake)
    return dg.MaterializeResult(metadata={
        "gold_queries": queues.queries, "wrong_or_unsure": queues.wrong_or_unsure, "retrieved": queues.retrieved,
        "to_humans": len(queues.to_humans), "to_judges": len(queues.to_judges), "simulated_labels": simulated,
    })


@dg.asset(
    group_name="stage1", partitions_def=stage1_rounds, deps=["round_queues", "gold_pairs", "silver_labels"],
    kinds={"parquet"},
    description="The round's figures once its labels are in (gold accuracy, sizes, human-judge agreement), "
                "and the figures of every round so far, plotted.",
)
def stage1_rounds_summary(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    the_lake, key = lake.lake(), context.partition_key
    try:
        ref = rm_models.resolve(the_lake, key)
    except LookupError as e:
        raise dg.Failure(description=str(e)) from e
    stage1.record_round(the_lake, key, ref)
    refresh_views(the_lake)
    history = stage1.rounds(the_lake)
    x = [r["round_number"] for r in history]
    return dg.MaterializeResult(metadata={
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
