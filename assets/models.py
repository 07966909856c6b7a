"""Reward models: training (a DeepSpeed subprocess under Dagster Pipes), evaluation on gold,
and scoring the pool shard by shard."""

import functools
import json

import dagster as dg
from pydantic import Field

from dagster_project.metadata import records_table
from dagster_project.partitions import pool_shards
from dagster_project.plots import line_plot
from dagster_project.resources import LakeResource, ScorerResource, TrainerResource
from synpref import rm_models
from synpref.duck import refresh_views
from synpref.rm_eval import evaluate_reward_model
from synpref.rm_predictions import score_shard
from synpref.rm_training import train_reward_model
from synpref.shards import parse_shard_key

DEFAULT_MODEL = "baseline"
DEFAULT_PAIRS = "select pair_id, conversation, chosen, rejected, source from silver_pairs"
OVERRIDES = ("backbone", "learning_rate", "epochs", "max_steps", "global_batch_size", "micro_batch_size",
             "max_length", "seed")


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


def pipes_runner(context, client: dg.PipesSubprocessClient):
    """How the trainer launches its DeepSpeed command: under Dagster Pipes, logged first."""
    def run(command: list[str], env: dict[str, str]) -> None:
        context.log.info(" ".join(command))
        client.run(command=command, context=context, env=env)
    return run


def train_and_evaluate(context, the_lake, name: str, pairs_sql: str, train_config, *, eval_set: str,
                       trainer: TrainerResource, scorer: ScorerResource, client: dg.PipesSubprocessClient,
                       holdout_fraction: float = 0.1):
    """Train a stage's RM, then score its evaluation set: (training summary, model ref, evaluation).
    Bad input (no pairs, no model) fails the step with the reason."""
    try:
        summary = train_reward_model(the_lake, name, pairs_sql, train_config, eval_set=eval_set,
                                     holdout_fraction=holdout_fraction, launch=trainer.launch(),
                                     run=pipes_runner(context, client), log=context.log.info)
        ref = rm_models.resolve(the_lake, name, summary.version)
        evaluation = evaluate_reward_model(the_lake, ref, lambda: scorer.make(ref.path), log=context.log.info)
    except (ValueError, LookupError, FileNotFoundError) as e:
        raise dg.Failure(description=str(e)) from e
    refresh_views(the_lake)
    return summary, ref, evaluation


@dg.asset(
    name="reward_model", group_name="models", deps=["silver_pairs", "gold_pairs"], kinds={"deepspeed", "pytorch"},
    description="A Bradley-Terry reward model trained under DeepSpeed (a subprocess under Dagster Pipes), the "
                "checkpoint with the best eval accuracy kept as <lake>/models/rm/<name>/<version>/best.",
)
def reward_model(context: dg.AssetExecutionContext, config: RewardModelConfig, lake: LakeResource,
                 trainer: TrainerResource, pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    the_lake = lake.lake()
    train_config = trainer.train_config(**{k: getattr(config, k) for k in OVERRIDES})
    try:
        summary = train_reward_model(the_lake, config.model_name, config.pairs_sql, train_config,
                                     eval_set=config.eval_set, holdout_fraction=config.holdout_fraction,
                                     launch=trainer.launch(), run=pipes_runner(context, pipes_subprocess_client),
                                     log=context.log.info)
    except (ValueError, FileNotFoundError, LookupError) as e:
        raise dg.Failure(description=str(e)) from e
    m = summary.metrics
    best = m.get("best") or {}
    metadata = {
        "model": summary.name, "model_version": summary.version, "status": summary.status,
        "path": dg.MetadataValue.path(str(summary.best)),
        "eval_set": summary.eval_set, "train_pairs": summary.train_pairs, "eval_pairs": summary.eval_pairs,
        "skipped_pairs": dg.MetadataValue.json(summary.skipped_pairs),
        "steps": m.get("steps", 0), "processes": m.get("world_size", 0),
        "best_step": best.get("step", 0), "best_eval_accuracy": best.get("accuracy", float("nan")),
        "final_loss": m.get("final_loss") or float("nan"),
        "non_pad_tokens_per_s": round(m.get("tokens_per_s", 0.0), 1),
        "padding_share": round(m.get("padding_share", 0.0), 4),
    }
    metadata.update(_training_plots(summary.version_dir / "train_log.jsonl"))
    return dg.MaterializeResult(metadata=metadata)


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


class ModelConfig(dg.Config):
    model_name: str = Field(default=DEFAULT_MODEL, description="The reward model (name under <lake>/models/rm/).")
    model_version: str | None = Field(default=None, description="Its version (v001...); default the latest complete.")


def _ref(the_lake, config: ModelConfig) -> rm_models.ModelRef:
    try:
        return rm_models.resolve(the_lake, config.model_name, config.model_version)
    except (LookupError, ValueError) as e:
        raise dg.Failure(description=str(e)) from e


@dg.asset(
    name="rm_eval", group_name="models", deps=["reward_model"], kinds={"pytorch", "parquet"},
    description="The reward model's accuracy on gold pairs (else its held-out pairs): overall, by source, task "
                "category and objectivity; mean margin; calibration; accuracy per checkpoint.",
)
def rm_eval(context: dg.AssetExecutionContext, config: ModelConfig, lake: LakeResource,
            scorer: ScorerResource) -> dg.MaterializeResult:
    the_lake = lake.lake()
    ref = _ref(the_lake, config)
    summary = evaluate_reward_model(the_lake, ref, lambda: scorer.make(ref.path), log=context.log.info)
    refresh_views(the_lake)
    rows = summary.rows.to_pylist()
    groups = [r for r in rows if r["breakdown"] not in ("checkpoint", "confidence_bin")]
    bins = [r for r in rows if r["breakdown"] == "confidence_bin"]
    overall = next(r for r in rows if r["breakdown"] == "overall")
    return dg.MaterializeResult(metadata={
        "model": ref.name, "model_version": ref.version, "eval_set": summary.eval_set, "pairs": summary.pairs,
        "accuracy": summary.accuracy, "mean_margin": overall["mean_margin"], "ece": overall["ece"],
        "brier": overall["brier"],
        "by_group": records_table(groups, ["breakdown", "group_value", "pairs", "accuracy", "mean_margin", "ece"]),
        "reliability": records_table(bins, ["group_value", "pairs", "accuracy", "mean_confidence"]),
        **({"reliability_plot": line_plot(
            {"model": ([b["mean_confidence"] for b in bins], [b["accuracy"] for b in bins]),
             "calibrated": ([0.5, 1.0], [0.5, 1.0])}, "confidence", "accuracy", "reliability")} if bins else {}),
    })


class PredictionsConfig(ModelConfig):
    pairs_table: str = Field(default="silver_pairs", description="The lake table of pairs to score.")


@dg.asset(
    name="rm_predictions", group_name="models", deps=["reward_model", "silver_pairs"], partitions_def=pool_shards,
    backfill_policy=dg.BackfillPolicy.single_run(), kinds={"pytorch", "parquet"},
    description="Rewards of chosen and rejected and p_chosen per pair, one pool shard per partition (a run over a "
                "range of shards loads the model once); a shard already scored by the model version is skipped.",
)
def rm_predictions(context: dg.AssetExecutionContext, config: PredictionsConfig, lake: LakeResource,
                   scorer: ScorerResource) -> dg.MaterializeResult:
    the_lake = lake.lake()
    ref = _ref(the_lake, config)
    model = functools.cache(lambda: scorer.make(ref.path))  # loaded once, and only if a shard needs it
    rows = scored = 0
    seconds = 0.0
    for key in context.partition_keys:
        try:
            summary = score_shard(the_lake, ref, parse_shard_key(key), model, config.pairs_table,
                                  chunk_pairs=scorer.chunk_pairs, log=context.log.info)
        except ValueError as e:
            raise dg.Failure(description=str(e)) from e
        rows += summary.rows
        scored += 0 if summary.skipped else summary.rows
        seconds += summary.seconds
        context.log.info(f"{config.pairs_table} {key}: {summary.rows:,} pairs "
                         f"{'already scored' if summary.skipped else 'scored'} by {ref.name} {ref.version}")
    refresh_views(the_lake)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": rows, "scored_now": scored, "model": ref.name, "model_version": ref.version,
        "pairs_table": config.pairs_table, "shards": len(context.partition_keys), "seconds": round(seconds, 3),
        "pairs_per_s": round(scored / seconds, 1) if seconds else 0.0,
    })
