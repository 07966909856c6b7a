"""Reward models, one asset per role: the baseline (any pairs), Stage 1's round RMs (one per
round), Stage 2's cross-fitted fold models (one set per fold) and the gold RM. Each trains under
DeepSpeed (a subprocess under Dagster Pipes) or, for the embedding backbone, in seconds on a CPU;
the versions live under <lake>/models/rm/<name>/<version>/. rm_eval (assets/models/evaluation.py)
evaluates each new version."""

import json

import dagster as dg
from pydantic import Field

from dagster_project.metadata import in_lake, records_table
from dagster_project.partitions import fold_partitions, stage1_rounds
from dagster_project.plots import line_plot
from dagster_project.resources import LakeResource, TrainerResource
from synpref.rm import crossfit, rm_models
from synpref.gold import stage1
from synpref.rm.rm_training import TrainingSummary, train_reward_model
from synpref.lake.versions import combined

DEFAULT_MODEL = "baseline"
DEFAULT_PAIRS = "select pair_id, conversation, chosen, rejected, source from silver_pairs"
GOLD_RM = "gold"
OVERRIDES = ("backbone", "learning_rate", "epochs", "max_steps", "global_batch_size", "micro_batch_size",
             "max_length", "seed")


def pipes_runner(context, client: dg.PipesSubprocessClient):
    """How the trainer launches its DeepSpeed command: under Dagster Pipes, logged first."""
    def run(command: list[str], env: dict[str, str]) -> None:
        context.log.info(" ".join(command))
        client.run(command=command, context=context, env=env)
    return run


def train(context, the_lake, name: str, pairs_sql: str, train_config, *, eval_set: str, trainer: TrainerResource,
          client: dg.PipesSubprocessClient, holdout_fraction: float = 0.1) -> TrainingSummary:
    """Train (or reuse) a version of model `name`; bad input (no pairs, no gold) fails the step
    with the reason. The one training call of every model asset."""
    try:
        return train_reward_model(the_lake, name, pairs_sql, train_config, eval_set=eval_set,
                                  holdout_fraction=holdout_fraction, launch=trainer.launch(),
                                  run=pipes_runner(context, client), log=context.log.info)
    except (ValueError, LookupError, FileNotFoundError) as e:
        raise dg.Failure(description=str(e)) from e


def model_result(the_lake, summary: TrainingSummary, **metadata) -> dg.MaterializeResult:
    """A model asset's materialisation: its version is the data version (a reused version leaves
    rm_eval and what reads the model fresh)."""
    return dg.MaterializeResult(data_version=dg.DataVersion(combined(summary.name, summary.version)), metadata={
        "model": summary.name, "model_version": summary.version, "status": summary.status,
        "path": dg.MetadataValue.path(in_lake(the_lake, summary.best)),
        "eval_set": summary.eval_set, "train_pairs": summary.train_pairs, "eval_pairs": summary.eval_pairs,
        **metadata, **_training_plots(summary.version_dir / "train_log.jsonl")})


class RewardModelConfig(dg.Config):
    model_name: str = Field(default=DEFAULT_MODEL, description="The model's name (a role: baseline, round-1, "
                                                                "gold...); its versions live under <lake>/models/rm/.")
    pairs_sql: str = Field(default=DEFAULT_PAIRS, description="A read-only SELECT of the training pairs (pair_id, "
                                                              "conversation, chosen, rejected, optional source).")
    eval_set: str = Field(default="auto", description="auto (gold_pairs when present, else a held-out share) | "
                                                      "gold | holdout.")
    holdout_fraction: float = Field(default=0.1, description="Share of pairs held out when there is no gold.")
    backbone: str | None = Field(default=None, description="Override: a local model folder, or 'minilm'.")
    learning_rate: float | None = None
    epochs: int | None = None
    max_steps: int | None = None
    global_batch_size: int | None = None
    micro_batch_size: int | None = None
    max_length: int | None = None
    seed: int | None = None
    settings: dict[str, str] = Field(default={}, description="Any other training setting as text (key: value), "
                                                            "as `synpref train --set key=value` gives them.")


@dg.asset(
    name="reward_model", group_name="models", deps=["silver_pairs", "gold_pairs"], kinds={"deepspeed", "pytorch"},
    description="A Bradley-Terry reward model on any pairs (a SELECT) trained under DeepSpeed (a subprocess under "
                "Dagster Pipes), the checkpoint with the best eval accuracy kept as "
                "<lake>/models/rm/<name>/<version>/best.",
)
def reward_model(context: dg.AssetExecutionContext, config: RewardModelConfig, lake: LakeResource,
                 trainer: TrainerResource, pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    the_lake = lake.lake()
    from models.train_config import parse_value

    try:
        settings = {k: parse_value(k, v) for k, v in config.settings.items()}
    except ValueError as e:
        raise dg.Failure(description=str(e)) from e
    train_config = trainer.train_config(**settings, **{k: getattr(config, k) for k in OVERRIDES
                                                       if getattr(config, k) is not None})
    summary = train(context, the_lake, config.model_name, config.pairs_sql, train_config, eval_set=config.eval_set,
                    holdout_fraction=config.holdout_fraction, trainer=trainer, client=pipes_subprocess_client)
    m = summary.metrics
    best = m.get("best") or {}
    return model_result(
        the_lake, summary, skipped_pairs=dg.MetadataValue.json(summary.skipped_pairs),
        steps=m.get("steps", 0), processes=m.get("world_size", 0), best_step=best.get("step", 0),
        best_eval_accuracy=best.get("accuracy", float("nan")), final_loss=m.get("final_loss") or float("nan"),
        non_pad_tokens_per_s=round(m.get("tokens_per_s", 0.0), 1), padding_share=round(m.get("padding_share", 0.0), 4))


def _training_plots(log_path) -> dict:
    if not log_path.exists():
        return {}
    events = [json.loads(line) for line in log_path.read_text().splitlines()]
    train = {e["step"]: e for e in events if e["event"] == "train"}
    evals = {e["step"]: e for e in events if e["event"] == "eval"}
    plots = {}
    if train:
        plots["loss_curve"] = line_plot({"train loss": (list(train), [e["loss"] for e in train.values()])},
                                        "optimizer step", "BT loss", "training loss")
    if evals:
        plots["eval_accuracy_by_checkpoint"] = line_plot(
            {"eval accuracy": (list(evals), [e["accuracy"] for e in evals.values()])},
            "optimizer step", "accuracy", "eval accuracy per checkpoint")
    return plots


class RoundModelConfig(dg.Config):
    max_steps: int | None = Field(default=None, description="Override: stop training after this many steps.")
    epochs: int | None = Field(default=None, description="Override: epochs over the silver pairs.")
    max_length: int | None = Field(default=None, description="Override: tokens per sequence.")


@dg.asset(
    group_name="models", partitions_def=stage1_rounds, deps=["silver_pairs", "gold_pairs"],
    kinds={"deepspeed", "pytorch"},
    description="Stage 1: the round's reward model, trained on silver (the pool, with the verdicts the judges gave "
                "in earlier rounds: silver_labels as it stands, not drawn as an input, since the judges' next "
                "queue comes from this model) with the checkpoint picked on gold; rm_eval evaluates it on gold.",
)
def round_reward_model(context: dg.AssetExecutionContext, config: RoundModelConfig, lake: LakeResource,
                       trainer: TrainerResource,
                       pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    the_lake, key = lake.lake(), context.partition_key
    stage1.round_number(key)
    if not stage1.gold_count(the_lake):
        raise dg.Failure(description="no gold pairs yet: humans label the seed set first "
                                     "(`synpref round` queues it; label it on the annotation page)")
    train_config = trainer.train_config(max_steps=config.max_steps, epochs=config.epochs, max_length=config.max_length)
    summary = train(context, the_lake, key, stage1.silver_training_sql(the_lake), train_config, eval_set="gold",
                    trainer=trainer, client=pipes_subprocess_client)
    return model_result(the_lake, summary)


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
    group_name="models", partitions_def=fold_partitions, deps=["silver_pairs", "gold_pairs"],
    kinds={"pytorch", "scikitlearn"}, backfill_policy=dg.BackfillPolicy.single_run(),
    description="Stage 2's cross-fitting: per fold of the pool, one reward model per repeat trained with the "
                "round's recipe on the other folds (the Stage 1 judges' verdicts applied, as for the round RMs); "
                "each scores only its own fold in pool_scores, so no pool pair is scored by a model that saw "
                "its label.",
)
def fold_reward_model(context: dg.AssetExecutionContext, config: FoldModelConfig, lake: LakeResource,
                      trainer: TrainerResource,
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
            summary = train(context, the_lake, name, pairs, train_config, eval_set=eval_set, trainer=trainer,
                            client=pipes_subprocess_client)
            fold_members.append({"model": name, "version": summary.version, "fold": fold, "repeat": repeat,
                                 "status": summary.status, "train_pairs": summary.train_pairs,
                                 "eval_set": summary.eval_set, "eval_pairs": summary.eval_pairs})
            context.log.info(f"{name} {summary.version}: {summary.status}, {summary.train_pairs:,} pairs")
        crossfit.record_members(the_lake, fold, [{k: m[k] for k in ("model", "version", "repeat")}
                                                 for m in fold_members], recipe=train_config.to_dict())
        members += fold_members
    return dg.MaterializeResult(
        data_version=dg.DataVersion(combined(*(f"{m['model']}/{m['version']}" for m in members))), metadata={
            "folds": len(context.partition_keys), "repeats": config.repeats, "backbone": config.backbone,
            "models": len(members),
            "members": records_table(members, ["model", "version", "fold", "repeat", "status", "train_pairs",
                                               "eval_set", "eval_pairs"]),
        })


class GoldModelConfig(dg.Config):
    backbone: str = Field(default="embedding", description="embedding (a BT head on frozen MiniLM embeddings), "
                                                           "minilm, or a local model folder.")
    init_from_best_round: bool = Field(default=False, description="Start from the round RM best on gold instead "
                                                                  "of the backbone (fine-tuned backbones only). "
                                                                  "Off by default: the gold RM must be a second, "
                                                                  "independent vote, not a copy of the best RM.")
    holdout_fraction: float = Field(default=0.2, description="Share of the gold pairs held out to pick the checkpoint.")
    max_steps: int | None = Field(default=None, description="Override: stop training after this many steps.")
    epochs: int | None = Field(default=None, description="Override: epochs over the gold pairs.")
    max_length: int | None = Field(default=None, description="Override: tokens per sequence.")


@dg.asset(
    group_name="models", kinds={"pytorch", "scikitlearn"}, deps=["gold_pairs"],
    description="Stage 2's gold RM: trained on every human-verified pair alone (a held-out share picks the "
                "checkpoint), independent of the best RM by default.",
)
def gold_reward_model(context: dg.AssetExecutionContext, config: GoldModelConfig, lake: LakeResource,
                      trainer: TrainerResource,
                      pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    the_lake = lake.lake()
    if not stage1.gold_count(the_lake):
        raise dg.Failure(description="no gold pairs: the gold RM is trained on human-verified pairs")
    backbone = config.backbone
    if config.init_from_best_round:
        best = best_round_model(the_lake)
        if (best.path / "embedding_rm.json").exists():
            raise dg.Failure(description=f"init_from_best_round starts from a fine-tuned model, but {best.name} "
                                         f"{best.version} is an embedding RM: set a backbone instead")
        context.log.info(f"gold RM starts from the best round RM: {best.path}")
        backbone = str(best.path)
    train_config = trainer.train_config(max_steps=config.max_steps, epochs=config.epochs, max_length=config.max_length,
                                        backbone=backbone)
    gold_sql = "select pair_id, conversation, chosen, rejected, source from gold_pairs"
    summary = train(context, the_lake, GOLD_RM, gold_sql,
                    train_config, eval_set="holdout", holdout_fraction=config.holdout_fraction, trainer=trainer,
                    client=pipes_subprocess_client)
    return model_result(the_lake, summary, backbone="best round RM" if config.init_from_best_round else backbone)


def best_round_model(the_lake) -> rm_models.ModelRef:
    try:
        name, version, _ = stage1.best_round_model(the_lake)
        return rm_models.resolve(the_lake, name, version)
    except LookupError as e:
        raise dg.Failure(description=str(e)) from e
