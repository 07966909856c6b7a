"""Stage 2 over the pool: the gold RM, then per shard the two RMs' scores, the judges on the
pairs the best RM does not confirm, and the filter.

The per-shard assets are graph-backed: one run over a range of shards (a single-run
backfill) fans out one step per shard, so the multiprocess executor (or Celery, or
Kubernetes) runs the shards in parallel, each in bounded memory and each resumable.
"""

import dagster as dg
from pydantic import Field

from assets.models import train_and_evaluate
from dagster_project.metadata import counts_table
from dagster_project.partitions import pool_shards
from dagster_project.plots import histograms
from dagster_project.resources import JudgesResource, LakeResource, ScorerResource, TrainerResource, with_local_model
from synpref import crossfit, rm_models, stage1, stage2
from synpref.duck import refresh_views
from synpref.filter_stage import FilterSettings, filter_shard
from synpref.shards import parse_shard_key

GOLD_RM = "gold"


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
    group_name="stage2", kinds={"pytorch", "scikitlearn"}, deps=["gold_pairs"],
    description="The gold RM: trained on every human-verified pair alone (a held-out share picks the checkpoint), "
                "independent of the best RM by default.",
)
def gold_reward_model(context: dg.AssetExecutionContext, config: GoldModelConfig, lake: LakeResource,
                      trainer: TrainerResource, scorer: ScorerResource,
                      pipes_subprocess_client: dg.PipesSubprocessClient) -> dg.MaterializeResult:
    the_lake = lake.lake()
    if not stage1.gold_count(the_lake):
        raise dg.Failure(description="no gold pairs: the gold RM is trained on human-verified pairs")

    backbone = config.backbone
    if config.init_from_best_round:
        best = _best_round_model(the_lake)
        if (best.path / "embedding_rm.json").exists():
            raise dg.Failure(description=f"init_from_best_round starts from a fine-tuned model, but {best.name} "
                                         f"{best.version} is an embedding RM: set a backbone instead")
        context.log.info(f"gold RM starts from the best round RM: {best.path}")
        backbone = str(best.path)
    train_config = trainer.train_config(max_steps=config.max_steps, epochs=config.epochs, max_length=config.max_length,
                                        backbone=backbone)
    summary, ref, evaluation = train_and_evaluate(
        context, the_lake, GOLD_RM, "select pair_id, conversation, chosen, rejected, source from gold_pairs",
        train_config, eval_set="holdout", holdout_fraction=config.holdout_fraction,
        trainer=trainer, scorer=scorer, client=pipes_subprocess_client)
    return dg.MaterializeResult(metadata={
        "model": GOLD_RM, "model_version": summary.version, "status": summary.status,
        "backbone": "best round RM" if config.init_from_best_round else backbone,
        "train_pairs": summary.train_pairs, "holdout_pairs": evaluation.pairs,
        "holdout_accuracy": evaluation.accuracy, "path": dg.MetadataValue.path(str(ref.path)),
    })


# ---------------------------------------------------------------- fan-out over shards

@dg.op(out=dg.DynamicOut(int), ins={"after": dg.In(dg.Nothing)})
def plan_shards(context: dg.OpExecutionContext):
    """One step per shard of the run's partition range (after the upstream assets)."""
    for key in context.partition_keys:
        yield dg.DynamicOutput(parse_shard_key(key), mapping_key=key.replace("-", "_"))


def _best_round_model(the_lake) -> rm_models.ModelRef:
    try:
        name, version, _ = stage1.best_round_model(the_lake)
        return rm_models.resolve(the_lake, name, version)
    except LookupError as e:
        raise dg.Failure(description=str(e)) from e


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
            "gold": f"{gold.name} {gold.version}"}


@dg.op
def collect_scores(context: dg.OpExecutionContext, lake: LakeResource, shards: list[dict]) -> None:
    the_lake = lake.lake()
    refresh_views(the_lake)
    votes = stage2.vote_independence(the_lake)
    context.add_output_metadata({
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


@dg.graph_asset(
    group_name="stage2", partitions_def=pool_shards, backfill_policy=dg.BackfillPolicy.single_run(),
    ins={"gold_reward_model": dg.AssetIn(dagster_type=dg.Nothing),
         "fold_reward_model": dg.AssetIn(dagster_type=dg.Nothing, partition_mapping=dg.AllPartitionMapping())},
    kinds={"pytorch", "parquet"},
    description="Each pool pair's out-of-fold p_best (the mean of the fold models that never saw it, with their "
                "spread) and p_gold from the gold RM; pairs with p_best <= 0.5 need the judges. One step per shard.",
)
def pool_scores(gold_reward_model, fold_reward_model):
    return collect_scores(plan_shards(after=[gold_reward_model, fold_reward_model]).map(score_shard).collect())


@dg.op(retry_policy=dg.RetryPolicy(max_retries=1))
def judge_shard(context: dg.OpExecutionContext, lake: LakeResource, judges: JudgesResource, shard: int) -> dict:
    from models.annotator import load_annotator
    from models.judge import load_judge_prompt

    the_lake, panel = lake.lake(), judges.panel()
    result = stage2.judge_pool_shard(the_lake, shard, panel, load_judge_prompt(panel.prompt_version),
                                     lambda judge: load_annotator(with_local_model(judge.annotator, the_lake)),
                                     log=context.log.info)
    return {"shard": shard, "queued": result.queued, "judged": result.judged, "seconds": result.seconds}


@dg.op
def collect_judgements(context: dg.OpExecutionContext, lake: LakeResource, judges: JudgesResource,
                       shards: list[dict]) -> None:
    """silver_labels once, after every shard's votes are in."""
    from models.judge import load_judge_prompt
    from synpref.judging_stage import first_answer_share, write_labels

    the_lake, panel = lake.lake(), judges.panel()
    labels = write_labels(the_lake, panel)
    refresh_views(the_lake)
    verdicts: dict[str, int] = {}
    for v in labels["verdict"].to_pylist():
        verdicts[v] = verdicts.get(v, 0) + 1
    judged: dict[str, int] = {}
    for s in shards:
        for judge, n in s["judged"].items():
            judged[judge] = judged.get(judge, 0) + n
    context.add_output_metadata({
        "queued_now": sum(s["queued"] for s in shards), "judged_now": dg.MetadataValue.json(judged),
        "silver_labels": labels.num_rows, "verdicts": counts_table(dict(sorted(verdicts.items())), key="verdict"),
        "position_bias_candidate_1_share": first_answer_share(
            the_lake, panel, load_judge_prompt(panel.prompt_version).choices).get("all", float("nan")),
    })


@dg.graph_asset(
    group_name="stage2", partitions_def=pool_shards, backfill_policy=dg.BackfillPolicy.single_run(),
    ins={"pool_scores": dg.AssetIn(dagster_type=dg.Nothing)}, kinds={"vllm", "parquet"},
    description="The LLM judges on the pool pairs the best RM does not confirm (p_best <= 0.5), with retrieved "
                "human-labelled examples in the prompt and no humans; silver_labels rebuilt after the last shard.",
)
def pool_judgements(pool_scores):
    return collect_judgements(plan_shards(after=pool_scores).map(judge_shard).collect())


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


@dg.op
def collect_filtered(context: dg.OpExecutionContext, lake: LakeResource, shards: list[dict]) -> None:
    refresh_views(lake.lake())
    statuses: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for s in shards:
        for k, v in s["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
        for k, v in s["reasons"].items():
            reasons[k] = reasons.get(k, 0) + v
    context.add_output_metadata({
        "dagster/row_count": sum(s["pairs"] for s in shards), "shards": len(shards),
        "reused_shards": sum(s["reused"] for s in shards), "rule": ", ".join(sorted({s["rule"] for s in shards})),
        "statuses": counts_table(statuses, key="status"),
        "reasons": counts_table(dict(sorted(reasons.items(), key=lambda kv: -kv[1]))),
    })


@dg.graph_asset(
    group_name="filtered", partitions_def=pool_shards, backfill_policy=dg.BackfillPolicy.single_run(),
    ins={"pool_judgements": dg.AssetIn(dagster_type=dg.Nothing), "gold_pairs": dg.AssetIn(dagster_type=dg.Nothing)},
    kinds={"duckdb", "parquet"},
    description="Every pool pair kept, flipped or dropped, with the reason and the evidence (p_best, p_gold, "
                "the judges' verdict): kept only if the gold RM agrees and so do the best RM or the judges.",
)
def filtered_pairs(pool_judgements, gold_pairs):
    return collect_filtered(plan_shards(after=[pool_judgements, gold_pairs]).map(filter_one_shard).collect())
