"""Evaluating and using reward models: rm_eval (with its per-pair scores, rm_eval_pairs) for every
trained version, and rm_predictions, a model's scores over the pool shard by shard."""

import functools

import dagster as dg
from pydantic import Field

from dagster_project.checks import table_check_specs
from dagster_project.metadata import records_table
from dagster_project.partitions import pool_shards
from dagster_project.plots import line_plot
from dagster_project.resources import LakeResource, QualityResource, ScorerResource
from dagster_project.results import table_result
from synpref.rm import rm_models
from synpref.lake.duck import refresh_views
from synpref.rm.rm_eval import PAIRS, TABLE as EVAL, accuracy_by_set, evaluate_reward_model, evaluated
from synpref.rm.rm_predictions import score_shard
from synpref.lake.shards import parse_shard_key

DEFAULT_MODEL = "baseline"
TRAINED_BY = ["reward_model", "round_reward_model", "fold_reward_model", "gold_reward_model"]


class EvalConfig(dg.Config):
    model_name: str | None = Field(default=None, description="Evaluate this model (name under <lake>/models/rm/); "
                                                             "default every trained version not evaluated yet.")
    model_version: str | None = Field(default=None, description="Its version (v001...); default the latest complete.")


@dg.multi_asset(
    name="evaluate_reward_models", group_name="models",
    specs=[dg.AssetSpec(EVAL, deps=TRAINED_BY, kinds={"pytorch", "parquet"},
                        description="Each reward model version's accuracy on gold pairs (else its held-out pairs): "
                                    "overall, by source, task category and objectivity; mean margin; calibration; "
                                    "accuracy per checkpoint. Outside benchmark sets (synpref eval) sit beside them."),
           dg.AssetSpec(PAIRS, deps=TRAINED_BY, kinds={"pytorch", "parquet"},
                        description="Each evaluated version's scores on its evaluation pairs (rewards and p_chosen "
                                    "per pair): what Stage 1 retrieval starts from.")],
    check_specs=[*table_check_specs(EVAL), *table_check_specs(PAIRS)],
)
def evaluate_reward_models(context: dg.AssetExecutionContext, config: EvalConfig, lake: LakeResource,
                           scorer: ScorerResource, quality: QualityResource):
    the_lake = lake.lake()
    try:
        if config.model_name:
            refs = [rm_models.resolve(the_lake, config.model_name, config.model_version)]
        else:
            done = evaluated(the_lake)
            refs = [rm_models.resolve(the_lake, name, version) for name, version, complete
                    in rm_models.list_models(the_lake) if complete and (name, version) not in done]
        summaries = [evaluate_reward_model(the_lake, ref, lambda: scorer.make(ref.path), log=context.log.info)
                     for ref in refs]
    except (LookupError, ValueError, FileNotFoundError) as e:
        raise dg.Failure(description=str(e)) from e
    refresh_views(the_lake)
    models = [{"model": s.model, "version": s.version, "eval_set": s.eval_set, "pairs": s.pairs,
               "accuracy": s.accuracy} for s in summaries]
    metadata = {"evaluated_now": len(summaries),
                "models": records_table(models, ["model", "version", "eval_set", "pairs", "accuracy"]),
                # outside benchmark sets (synpref eval) beside gold, for every version evaluated so far
                "accuracy_by_eval_set": records_table(accuracy_by_set(the_lake), [
                    "model", "model_version", "eval_set", "pairs", "accuracy", "ece"])}
    if len(summaries) == 1:  # one model: its breakdowns and reliability plot
        metadata.update(_breakdowns(summaries[0]))
    yield table_result(context, lake, quality, EVAL, metadata)
    yield table_result(context, lake, quality, PAIRS, {"evaluated_now": len(summaries)})


def _breakdowns(summary) -> dict:
    rows = summary.rows.to_pylist()
    groups = [r for r in rows if r["breakdown"] not in ("checkpoint", "confidence_bin")]
    bins = [r for r in rows if r["breakdown"] == "confidence_bin"]
    overall = next(r for r in rows if r["breakdown"] == "overall")
    return {
        "model": summary.model, "model_version": summary.version, "eval_set": summary.eval_set,
        "pairs": summary.pairs, "accuracy": summary.accuracy, "mean_margin": overall["mean_margin"],
        "ece": overall["ece"], "brier": overall["brier"],
        "by_group": records_table(groups, ["breakdown", "group_value", "pairs", "accuracy", "mean_margin", "ece"]),
        "reliability": records_table(bins, ["group_value", "pairs", "accuracy", "mean_confidence"]),
        **({"reliability_plot": line_plot(
            {"model": ([b["mean_confidence"] for b in bins], [b["accuracy"] for b in bins]),
             "calibrated": ([0.5, 1.0], [0.5, 1.0])}, "confidence", "accuracy", "reliability")} if bins else {}),
    }


class ModelConfig(dg.Config):
    model_name: str = Field(default=DEFAULT_MODEL, description="The reward model (name under <lake>/models/rm/).")
    model_version: str | None = Field(default=None, description="Its version (v001...); default the latest complete.")


def _ref(the_lake, config: ModelConfig) -> rm_models.ModelRef:
    try:
        return rm_models.resolve(the_lake, config.model_name, config.model_version)
    except (LookupError, ValueError) as e:
        raise dg.Failure(description=str(e)) from e


class PredictionsConfig(ModelConfig):
    pairs_table: str = Field(default="silver_pairs", description="The lake table of pairs to score.")


@dg.asset(
    name="rm_predictions", group_name="models", deps=["reward_model", "silver_pairs"], partitions_def=pool_shards,
    check_specs=table_check_specs("rm_predictions"),
    backfill_policy=dg.BackfillPolicy.single_run(), kinds={"pytorch", "parquet"},
    description="Rewards of chosen and rejected and p_chosen per pair, one pool shard per partition (a run over a "
                "range of shards loads the model once); a shard already scored by the model version is skipped.",
)
def rm_predictions(context: dg.AssetExecutionContext, config: PredictionsConfig, lake: LakeResource,
                   scorer: ScorerResource, quality: QualityResource) -> dg.MaterializeResult:
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
    return table_result(context, lake, quality, "rm_predictions", {
        "dagster/row_count": rows, "scored_now": scored, "model": ref.name, "model_version": ref.version,
        "pairs_table": config.pairs_table, "shards": len(context.partition_keys), "seconds": round(seconds, 3),
        "pairs_per_s": round(scored / seconds, 1) if seconds else 0.0,
    })
