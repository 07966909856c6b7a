"""Stage 2's fold models: cross-fitting, so that no pool pair is scored by a model that saw its label.

One partition per fold k of the pool: it trains, for each repeat r, the model `fold-k-rR` on the
round's training pairs outside fold k (the pool with the judges' verdicts applied, gold kept out
and used to evaluate), with the fast embedding reward model by default. pool_scores then has each
model score only its own fold (synpref/crossfit.py).
"""

import dagster as dg
from pydantic import Field

from assets.models import train_and_evaluate
from dagster_project.metadata import records_table
from dagster_project.partitions import fold_partitions
from dagster_project.resources import LakeResource, ScorerResource, TrainerResource
from synpref import crossfit, stage1


class FoldModelConfig(dg.Config):
    backbone: str = Field(default="embedding", description="embedding (a BT head on frozen MiniLM embeddings: "
                                                           "seconds on a CPU), minilm, or a local model folder "
                                                           "(fine-tuned under DeepSpeed).")
    repeats: int = Field(default=crossfit.N_REPEATS, ge=1, description="Repeated K-fold splits: models per pair, "
                                                                       "whose spread is p_best_spread.")
    head: str | None = Field(default=None, description="Embedding backbone: linear | mlp (default: the "
                                                       "trainer's settings).")
    max_steps: int | None = Field(default=None, description="Override (fine-tuned backbones).")
    epochs: int | None = Field(default=None, description="Override (fine-tuned backbones).")
    max_length: int | None = Field(default=None, description="Override (fine-tuned backbones).")


@dg.asset(
    group_name="stage2", partitions_def=fold_partitions, deps=["silver_pairs", "gold_pairs", "silver_labels"],
    kinds={"pytorch", "scikitlearn"}, backfill_policy=dg.BackfillPolicy.single_run(),
    description="Cross-fitting: per fold of the pool, one reward model per repeat trained with the round's "
                "recipe on the other folds (evaluated on gold); each scores only its own fold in pool_scores.",
)
def fold_reward_model(context: dg.AssetExecutionContext, config: FoldModelConfig, lake: LakeResource,
                      trainer: TrainerResource, scorer: ScorerResource,
                      pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    the_lake = lake.lake()
    if not the_lake.has_table("silver_pairs"):
        raise dg.Failure(description="no silver_pairs: build the pool first")
    train_config = trainer.train_config(backbone=config.backbone, head=config.head, max_steps=config.max_steps,
                                        epochs=config.epochs, max_length=config.max_length)
    eval_set = "gold" if stage1.gold_count(the_lake) else "holdout"
    members = []
    for key in context.partition_keys:
        fold = crossfit.parse_fold_key(key)
        fold_members = []
        for repeat in range(config.repeats):
            name = crossfit.member_name(fold, repeat)
            pairs = crossfit.member_training_sql(stage1.silver_training_sql(the_lake), fold, repeat,
                                                 crossfit.N_FOLDS)
            summary, ref, evaluation = train_and_evaluate(
                context, the_lake, name, pairs, train_config, eval_set=eval_set, trainer=trainer, scorer=scorer,
                client=pipes_subprocess_client)
            fold_members.append({"model": name, "version": ref.version, "fold": fold, "repeat": repeat,
                                 "status": summary.status, "train_pairs": summary.train_pairs,
                                 "eval_set": evaluation.eval_set, "eval_pairs": evaluation.pairs,
                                 "accuracy": evaluation.accuracy})
            context.log.info(f"{name} {ref.version}: {summary.status}, {summary.train_pairs:,} pairs, "
                             f"{evaluation.eval_set} accuracy {evaluation.accuracy:.3f}")
        crossfit.record_members(the_lake, fold, [{k: m[k] for k in ("model", "version", "repeat")}
                                                 for m in fold_members], recipe=train_config.to_dict())
        members += fold_members
    accuracies = [m["accuracy"] for m in members]
    return dg.MaterializeResult(metadata={
        "folds": len(context.partition_keys), "repeats": config.repeats, "backbone": config.backbone,
        "models": len(members), "mean_accuracy": round(sum(accuracies) / len(accuracies), 4),
        "min_accuracy": min(accuracies), "max_accuracy": max(accuracies),
        "members": records_table(members, ["model", "version", "fold", "repeat", "status", "train_pairs",
                                           "eval_set", "eval_pairs", "accuracy"]),
    })
