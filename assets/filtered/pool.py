"""Stage 2 over the pool, its filtered-layer tables: per shard the two RMs' scores (pool_scores),
then, once the judges have answered on the pairs the best RM does not confirm (judge_queue,
judge_votes, silver_labels in the silver layer), the filter (filtered_pairs).

The per-shard assets are graph-backed: one run over a range of shards (a single-run
backfill) fans out one step per shard, so the multiprocess executor (or Celery, or
Kubernetes) runs the shards in parallel, each in bounded memory and each resumable.
"""

import dagster as dg
from pydantic import Field

from dagster_project.metadata import counts_table
from dagster_project.partitions import pool_shards
from dagster_project.plots import histograms
from dagster_project.resources import LakeResource, ScorerResource
from dagster_project.results import table_output
from synpref.rm import crossfit, rm_models
from synpref.filtered import stage2
from synpref.rm.crossfit import MODEL_SCORES
from synpref.lake.duck import refresh_views
from synpref.filtered.filtering import FilterSettings, filter_shard
from synpref.lake.shards import parse_shard_key

GOLD_RM = "gold"


@dg.op(out=dg.DynamicOut(int), ins={name: dg.In(dg.Nothing) for name in ("gold_rm", "fold_rms")})
def plan_scoring(context: dg.OpExecutionContext):
    """One step per shard of the run's partition range (after the gold RM and the fold models)."""
    for key in context.partition_keys:
        yield dg.DynamicOutput(parse_shard_key(key), mapping_key=key.replace("-", "_"))


def _models(the_lake):
    """Stage 2's RMs: the cross-fitted fold models (the best RM, out of fold) and the gold RM."""
    try:
        settings, members = crossfit.member_refs(the_lake)
        return settings, members, rm_models.resolve(the_lake, GOLD_RM)
    except (LookupError, ValueError) as e:
        raise dg.Failure(description=str(e)) from e


@dg.op(retry_policy=dg.RetryPolicy(max_retries=1))
def score_shard(context: dg.OpExecutionContext, lake: LakeResource, scorer: ScorerResource, shard: int) -> dict:
    the_lake = lake.lake()
    settings, members, gold = _models(the_lake)
    rm_models.mirror_embedding_cache(the_lake)
    s = stage2.score_pool_shard(the_lake, shard, members, gold, lambda ref: scorer.make(ref.path), settings,
                                lake.duck_settings(), log=context.log.info)
    return {"shard": s.shard, "pairs": s.pairs, "needs_judges": s.needs_judges, "reused": s.reused,
            "best": f"{len(members)} fold models ({settings.folds} folds x {settings.repeats} repeats)",
            "gold": f"{gold.name} {gold.version}",
            "models": sorted({f"{ref.name} {ref.version}" for _, _, ref in members} | {f"{gold.name} {gold.version}"})}


@dg.op(out={stage2.POOL_SCORES: dg.Out(dg.Nothing), MODEL_SCORES: dg.Out(dg.Nothing)})  # no IO manager
def collect_scores(context: dg.OpExecutionContext, lake: LakeResource, shards: list[dict]):
    the_lake = lake.lake()
    refresh_views(the_lake)
    votes = stage2.vote_independence(the_lake)
    yield table_output(lake, MODEL_SCORES, {"shards": len(shards), "models": len(shards[0]["models"]) if shards else 0},
                       output_name=MODEL_SCORES)
    yield table_output(lake, stage2.POOL_SCORES, output_name=stage2.POOL_SCORES, metadata={
        "logit_correlation_best_gold": votes.correlation,
        "agreement_best_gold": votes.agreement,
        "mean_p_best_spread": votes.mean_spread,
        "score_histogram": histograms({"p_best (out of fold)": votes.p_best_bins, "p_gold": votes.p_gold_bins},
                                      "p(original label is right)", "pool scores"),
        "dagster/row_count": sum(s["pairs"] for s in shards), "shards": len(shards),
        "for_the_judges": sum(s["needs_judges"] for s in shards),
        "reused_shards": sum(s["reused"] for s in shards),
        "models": ", ".join(sorted({f"best: {s['best']}, gold: {s['gold']}" for s in shards})),
    })


@dg.graph_multi_asset(
    name="pool_scoring", group_name="filtered", partitions_def=pool_shards,
    backfill_policy=dg.BackfillPolicy.single_run(),
    ins={"gold_reward_model": dg.AssetIn(dagster_type=dg.Nothing),
         "fold_reward_model": dg.AssetIn(dagster_type=dg.Nothing, partition_mapping=dg.AllPartitionMapping())},
    outs={
        stage2.POOL_SCORES: dg.AssetOut(
            kinds={"pytorch", "parquet"},
            description="Each pool pair's out-of-fold p_best (the mean of the fold models that never saw it, with "
                        "their spread) and p_gold from the gold RM; pairs with p_best <= 0.5 need the judges. One "
                        "step per shard."),
        MODEL_SCORES: dg.AssetOut(
            kinds={"pytorch", "parquet"},
            description="Each Stage 2 model's scores of the shard's pairs (a fold model: only its own fold's, which "
                        "it never trained on; the gold RM: all), in rm_predictions' form: what pool_scores is "
                        "computed from, kept so a resumed run scores nothing twice."),
    },
)
def pool_scoring(gold_reward_model, fold_reward_model):
    planned = plan_scoring(gold_rm=gold_reward_model, fold_rms=fold_reward_model)
    scores, model_scores = collect_scores(planned.map(score_shard).collect())
    return {stage2.POOL_SCORES: scores, MODEL_SCORES: model_scores}


@dg.op(out=dg.DynamicOut(int), ins={name: dg.In(dg.Nothing) for name in ("scores", "labels", "gold")})
def plan_filter_shards(context: dg.OpExecutionContext):
    """One step per shard of the run's partition range (after the scores, the judges and gold)."""
    for key in context.partition_keys:
        yield dg.DynamicOutput(parse_shard_key(key), mapping_key=key.replace("-", "_"))


class FilterConfig(dg.Config):
    rule: str = Field(default=FilterSettings.rule, description="paper (gold RM and best RM or judges agree) | "
                                                               "confident_learning (cleanlab on the out-of-fold "
                                                               "scores) | ensemble (every unseen model's vote).")
    recycle_flipped: bool = Field(default=True, description="Bring back dropped pairs whose flipped label "
                                                            "passes the same rule, flipped.")
    flip_margin: float = Field(default=FilterSettings.flip_margin, description="Recycle only where p_gold (and "
                                                                              "p_best, unless the judges flipped "
                                                                              "it) is below 0.5 - margin.")
    force: bool = Field(default=False, description="Decide shards again even if their inputs are unchanged.")


@dg.op(retry_policy=dg.RetryPolicy(max_retries=1))
def filter_one_shard(context: dg.OpExecutionContext, config: FilterConfig, lake: LakeResource, shard: int) -> dict:
    try:
        settings = FilterSettings(config.recycle_flipped, config.flip_margin, config.rule)
        s = filter_shard(lake.lake(), shard, settings, duck=lake.duck_settings(), force=config.force,
                         log=context.log.info)
    except (ValueError, FileNotFoundError) as e:
        raise dg.Failure(description=str(e)) from e
    return {"shard": s.shard, "pairs": s.pairs, "statuses": s.statuses, "reasons": s.reasons, "reused": s.reused,
            "rule": settings.rule}


@dg.op(out=dg.Out(dg.Nothing))  # no IO manager: a run over several partitions has one output
def collect_filtered(context: dg.OpExecutionContext, lake: LakeResource, shards: list[dict]):
    refresh_views(lake.lake())
    statuses: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for s in shards:
        for k, v in s["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
        for k, v in s["reasons"].items():
            reasons[k] = reasons.get(k, 0) + v
    return table_output(lake, "filtered_pairs", {
        "dagster/row_count": sum(s["pairs"] for s in shards), "shards": len(shards),
        "reused_shards": sum(s["reused"] for s in shards), "rule": ", ".join(sorted({s["rule"] for s in shards})),
        "statuses": counts_table(statuses, key="status"),
        "reasons": counts_table(dict(sorted(reasons.items(), key=lambda kv: -kv[1]))),
    })


@dg.graph_asset(
    group_name="filtered", partitions_def=pool_shards, backfill_policy=dg.BackfillPolicy.single_run(),
    ins={"pool_scores": dg.AssetIn(dagster_type=dg.Nothing), "silver_labels": dg.AssetIn(dagster_type=dg.Nothing),
         "gold_pairs": dg.AssetIn(dagster_type=dg.Nothing)},
    kinds={"duckdb", "parquet"},
    description="Every pool pair kept, flipped or dropped, with the reason and the evidence (p_best, p_gold, "
                "the judges' verdict): kept only if the gold RM agrees and so do the best RM or the judges.",
)
def filtered_pairs(pool_scores, silver_labels, gold_pairs):
    planned = plan_filter_shards(scores=pool_scores, labels=silver_labels, gold=gold_pairs)
    return collect_filtered(planned.map(filter_one_shard).collect())
