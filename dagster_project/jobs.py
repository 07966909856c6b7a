"""The paper's stages as named jobs: every run the CLI, the demo or the sensor launches is one of
these, so the runs list tells ingest from a Stage 1 round from Stage 2 (and shows its target)."""

from __future__ import annotations

import dagster as dg

INGEST_AND_CLEAN = ["raw_pairs", "ingest_quarantine", "silver_decisions", "silver_pairs", "silver_quarantine",
                    "pair_attributes", "pair_embeddings"]
GOLD = ["human_labels", "gold_pairs"]
EVALUATION = ["rm_eval", "rm_eval_pairs"]
JUDGING = ["judge_queue", "judge_votes", "silver_labels"]
STAGE1_ROUND = [*GOLD, "round_reward_model", *EVALUATION, "stage1_retrievals", "annotation_queue", "judge_queue"]
STAGE1_ROUND_FINISH = [*GOLD, "judge_votes", "silver_labels", "stage1_rounds"]
STAGE2_MODELS = [*GOLD, "gold_reward_model", "fold_reward_model", *EVALUATION]
STAGE2 = ["pool_scores", "pool_model_scores", *JUDGING, "filtered_pairs"]

# name -> (assets, description)
JOBS: dict[str, tuple[list[str], str]] = {
    "ingest_and_clean": (INGEST_AND_CLEAN, "Raw and silver: ingest the sources, the SQL stage (normalise, hash, "
                                           "dedup, decontaminate), attributes and embeddings."),
    "queue_for_humans": (["annotation_queue"], "Queue pairs for human annotators (the seed set before round 1, "
                                               "or any SELECT)."),
    "gold": (GOLD, "Seal the label journal into human_labels and rebuild gold_pairs (the sensor's job)."),
    "train_reward_model": (["reward_model", *EVALUATION], "A reward model on any pairs, then its evaluation "
                                                          "(`synpref train`)."),
    "stage1_round": (STAGE1_ROUND, "Stage 1, a round starts: gold, the round's RM and its evaluation on gold, "
                                   "error-driven retrieval, the pairs queued for humans and for the judges."),
    "stage1_round_finish": (STAGE1_ROUND_FINISH, "Stage 1, a round ends once humans labelled its pairs: gold "
                                                 "rebuilt, the LLM judges, the round's figures."),
    "queue_for_judges": (["judge_queue"], "Queue pairs for the LLM judges (what the stages sent them, or any "
                                          "SELECT)."),
    "judging": (JUDGING, "The LLM judges on the queued pairs, and silver_labels."),
    "stage2_models": (STAGE2_MODELS, "Stage 2's models: the gold RM and the cross-fitted fold models, evaluated."),
    "stage2": (STAGE2, "Stage 2 over the pool's shards: out-of-fold scores, the judges on the pairs the best RM "
                       "does not confirm, the filter."),
    "export": (["curated_export"], "The curated pairs in TRL's form."),
}

# Any assets picked in the CLI (`synpref materialize --select`): one job per kind of partition,
# since one run holds one partition (or range) of one kind.
BY_ROUND = ["round_reward_model", "stage1_retrievals", "stage1_rounds"]
BY_SHARD = ["pool_scores", "pool_model_scores", "filtered_pairs", "rm_predictions"]
BY_FOLD = ["fold_reward_model"]
MATERIALIZE = {"materialize": None, "materialize_by_round": BY_ROUND, "materialize_by_shard": BY_SHARD,
               "materialize_by_fold": BY_FOLD}


def materialize_job(partitioned: bool, keys) -> str:
    """The materialize job for assets of one kind of partition (all of `keys` share it)."""
    names = {k.to_user_string() for k in keys}
    for name, members in MATERIALIZE.items():
        if members and names <= set(members):
            return name
    if partitioned:
        raise ValueError(f"no materialize job holds {sorted(names)}")
    return "materialize"


def asset_jobs() -> list[dg.UnresolvedAssetJobDefinition]:
    jobs = [dg.define_asset_job(name, selection=dg.AssetSelection.assets(*assets), description=description)
            for name, (assets, description) in JOBS.items()]
    unpartitioned = dg.AssetSelection.all() - dg.AssetSelection.assets(*BY_ROUND, *BY_SHARD, *BY_FOLD)
    for name, members in MATERIALIZE.items():
        selection = dg.AssetSelection.assets(*members) if members else unpartitioned
        jobs.append(dg.define_asset_job(name, selection=selection,
                                        description="Assets picked in the CLI (`synpref materialize --select`)."))
    return jobs
