"""Stage 2's filter rule on every branch, shard by shard, with counts that reconcile."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import assert_violation_fails, rows, run_stages, violations_parametrized, write_jsonl, write_sources
from synpref.filtered.filtering import FilterSettings, filter_shard
from synpref.lake.schemas import POOL_SCORES
from synpref.lake.shards import N_SHARDS, shard_of
from synpref.filtered.stage2 import pool_scores_part

SETTINGS = FilterSettings()

# scenario -> (p_best, p_gold, judge verdict, human flipped) and the expected (status, reason)
# with recycling on; without it every "flipped" by recycling is "dropped" with the next reason.
SCENARIOS = {
    "rm_agrees": ((0.9, 0.8, None, None), ("kept", "rm_agrees")),
    "judges_agree": ((0.3, 0.7, "agree", None), ("kept", "judges_agree")),
    "gold_disagrees": ((0.9, 0.4, None, None), ("dropped", "gold_rm_disagrees")),
    "judges_disagree": ((0.4, 0.6, "flipped", None), ("dropped", "judges_disagree")),
    "undecided": ((0.5, 0.9, "undecided", None), ("dropped", "judges_undecided")),
    "not_judged": ((0.2, 0.9, None, None), ("dropped", "not_judged")),
    "all_flip": ((0.1, 0.2, "flipped", None), ("flipped", "recycled_flipped")),
    "rms_flip": ((0.2, 0.1, "agree", None), ("flipped", "recycled_flipped")),
    "weak_flip": ((0.4, 0.35, None, None), ("dropped", "not_judged")),  # within the margin: not recycled
    "human_kept": ((0.1, 0.1, "flipped", False), ("kept", "human_verified")),
    "human_flipped": ((0.9, 0.9, None, True), ("flipped", "human_verified")),
    # recycling is p_gold < 0.5 - margin (0.3 here) and (p_best < 0.3 or the judges flipped it):
    # the judges' "flipped" alone decides where p_best is not clear enough
    "judges_flip": ((0.4, 0.2, "flipped", None), ("flipped", "recycled_flipped")),
    "judges_agree_gold_against": ((0.4, 0.2, "agree", None), ("dropped", "gold_rm_disagrees")),
    "judges_undecided_gold_against": ((0.4, 0.2, "undecided", None), ("dropped", "judges_undecided")),
    # the margin on p_gold: both others clearly against the label, the gold RM only mildly
    "gold_within_margin": ((0.1, 0.45, "flipped", None), ("dropped", "judges_disagree")),
    # the margin on p_best, with no judges to decide
    "best_within_margin": ((0.35, 0.1, None, None), ("dropped", "not_judged")),
    # the boundary p_gold = 0.5 - margin = 0.3 (the margin is a decimal: 0.3 is exactly on it)
    "gold_below_boundary": ((0.1, 0.29, None, None), ("flipped", "recycled_flipped")),
    "gold_at_boundary": ((0.1, 0.3, "flipped", None), ("dropped", "judges_disagree")),
    "gold_above_boundary": ((0.1, 0.31, "flipped", None), ("dropped", "judges_disagree")),
    "best_at_boundary": ((0.3, 0.1, None, None), ("dropped", "not_judged")),
    # keeping needs p > 0.5, strictly (these also keep the export under its 50%-flipped warning)
    "gold_just_agrees": ((0.9, 0.51, None, None), ("kept", "rm_agrees")),
    "gold_at_half": ((0.9, 0.5, None, None), ("dropped", "gold_rm_disagrees")),
    "best_just_agrees": ((0.51, 0.9, None, None), ("kept", "rm_agrees")),
    "best_at_half": ((0.5, 0.9, "agree", None), ("kept", "judges_agree")),
}
WITHOUT_RECYCLING = {"all_flip": ("dropped", "judges_disagree"), "rms_flip": ("dropped", "gold_rm_disagrees"),
                     "judges_flip": ("dropped", "judges_disagree"),
                     "gold_below_boundary": ("dropped", "not_judged")}
PAIRS_PER_SCENARIO = 4
N_PAIRS = PAIRS_PER_SCENARIO * len(SCENARIOS)
N_EXPORTED = PAIRS_PER_SCENARIO * sum(status != "dropped" for _, (status, _) in SCENARIOS.values())


@pytest.fixture
def scored_lake(lake, tmp_path):
    """Silver pairs, each assigned a scenario, with its scores, verdicts and human labels."""
    n = N_PAIRS
    write_jsonl(tmp_path / "a.jsonl", [{"prompt": f"Question {i}?", "chosen": f"Good answer {i}.",
                                        "rejected": f"Bad answer {i}."} for i in range(n)])
    run_stages(lake, write_sources(tmp_path / "s.yaml", [{"name": "a", "path": "a.jsonl",
                                                          "shape": "prompt_chosen_rejected"}]))
    ids = [r["pair_id"] for r in rows(lake, "silver_pairs", order="pair_id")]
    names = list(SCENARIOS)
    scenario = {pid: names[i % len(names)] for i, pid in enumerate(ids)}
    scores, labels, gold = {s: [] for s in range(N_SHARDS)}, [], []
    for pid, name in scenario.items():
        p_best, p_gold, verdict, human = SCENARIOS[name][0]
        scores[shard_of(pid)].append({"pair_id": pid, "shard": shard_of(pid), "fold": 0, "p_best": p_best,
                                      "p_best_spread": 0.0, "members": 1, "p_gold": p_gold,
                                      "needs_judges": p_best <= 0.5, "best_model": "round-2", "best_version": "v001",
                                      "gold_model": "gold", "gold_version": "v003"})
        if verdict:
            labels.append({"pair_id": pid, "verdict": verdict})
        if human is not None:
            gold.append({"pair_id": pid, "flipped": human})
    for shard, rows_ in scores.items():
        pool_scores_part(lake, shard).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows_, schema=POOL_SCORES), pool_scores_part(lake, shard))
    for table, data in (("silver_labels", labels), ("gold_pairs", gold)):
        lake.table_dir(table).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(data), lake.table_dir(table) / "part-0.parquet")
    return lake, scenario


def _decisions(lake):
    return {r["pair_id"]: r for r in rows(lake, "filtered_pairs", order="pair_id")}


@pytest.mark.parametrize("recycle", [True, False])
def test_every_branch_of_the_rule(scored_lake, recycle):
    lake, scenario = scored_lake
    settings = FilterSettings(recycle_flipped=recycle)
    summaries = [filter_shard(lake, shard, settings) for shard in range(N_SHARDS)]
    decided = _decisions(lake)
    assert set(decided) == set(scenario)  # every pool pair, once
    assert sum(s.pairs for s in summaries) == len(scenario)
    for pid, name in scenario.items():
        expected = SCENARIOS[name][1] if recycle else WITHOUT_RECYCLING.get(name, SCENARIOS[name][1])
        row = decided[pid]
        assert (row["status"], row["reason"]) == expected, name
        assert (row["p_best"], row["p_gold"]) == SCENARIOS[name][0][:2]
        assert (row["best_model"], row["best_version"], row["gold_model"], row["gold_version"]) == \
            ("round-2", "v001", "gold", "v003")
    by_status = {}
    for s in summaries:
        for k, v in s.statuses.items():
            by_status[k] = by_status.get(k, 0) + v
    assert sum(by_status.values()) == len(scenario)


def test_a_rerun_reuses_finished_shards_until_an_input_changes(scored_lake):
    lake, _ = scored_lake
    first = filter_shard(lake, 0, SETTINGS)
    again = filter_shard(lake, 0, SETTINGS)
    assert not first.reused and again.reused and again.statuses == first.statuses
    # a new verdict is a changed input: the shard is decided again
    pq.write_table(pa.table({"pair_id": ["f" * 32], "verdict": ["agree"]}),
                   lake.table_dir("silver_labels") / "part-1.parquet")
    assert not filter_shard(lake, 0, SETTINGS).reused
    assert not filter_shard(lake, 0, FilterSettings(recycle_flipped=False)).reused


def test_an_unscored_pool_pair_is_an_error_not_a_drop(scored_lake):
    lake, _ = scored_lake
    part = pool_scores_part(lake, 0)
    pq.write_table(pq.read_table(part).slice(1), part)
    with pytest.raises(ValueError, match="no pool_scores"):
        filter_shard(lake, 0, SETTINGS)
    part.unlink()
    with pytest.raises(FileNotFoundError, match="score the shard"):
        filter_shard(lake, 0, SETTINGS)


def test_curated_export_holds_kept_and_flipped_pairs_in_trl_form(scored_lake):
    from datasets import load_from_disk

    from synpref.filtered.export import dataset_dir, export_curated, export_path

    lake, scenario = scored_lake
    for shard in range(N_SHARDS):
        filter_shard(lake, shard, SETTINGS)
    summary = export_curated(lake)
    statuses = {name: SCENARIOS[name][1][0] for name in SCENARIOS}
    expected = {pid for pid, name in scenario.items() if statuses[name] != "dropped"}
    assert summary.pool == len(scenario) and summary.pairs == len(expected)
    assert summary.by_source == [("a", len(scenario), summary.by_status["kept"], summary.by_status["flipped"],
                                  summary.by_status["dropped"], round(len(expected) / len(scenario), 4))]
    assert summary.by_task_category[0][0] == "unknown"  # no attributes in this lake
    silver = {r["pair_id"]: r for r in rows(lake, "silver_pairs", order="pair_id")}
    exported = pq.read_table(export_path(lake)).to_pylist()
    assert {r["pair_id"] for r in exported} == expected
    for r in exported:
        s = silver[r["pair_id"]]
        assert r["prompt"] == s["conversation"] and r["prompt"][-1]["role"] == "user"
        chosen, rejected = (s["rejected"], s["chosen"]) if r["status"] == "flipped" else (s["chosen"], s["rejected"])
        assert r["chosen"] == [{"role": "assistant", "content": chosen}]
        assert r["rejected"] == [{"role": "assistant", "content": rejected}]
    dataset = load_from_disk(str(dataset_dir(lake)))  # the `datasets` copy: the same rows, value for value
    assert dataset.column_names == pq.read_schema(export_path(lake)).names
    by_id = lambda r: r["pair_id"]  # noqa: E731
    assert sorted(dataset.to_list(), key=by_id) == sorted(exported, key=by_id)


@pytest.fixture
def exported_lake(scored_lake):
    from synpref.filtered.export import export_curated

    lake, _ = scored_lake
    for shard in range(N_SHARDS):
        filter_shard(lake, shard, SETTINGS)
    export_curated(lake, with_dataset=False)
    return lake


@pytest.mark.parametrize("table, batch_rows, batches", [("filtered_pairs", 7, math.ceil(N_PAIRS / 7)),
                                                       ("curated_export", 7, math.ceil(N_EXPORTED / 7))])
def test_filtered_tables_pass_their_suites(exported_lake, table, batch_rows, batches):
    from synpref.checks.quality import validate_table

    v = validate_table(exported_lake, table, batch_rows=batch_rows, build_docs=False)
    assert v.success and not v.failed(blocking=False) and v.batches == batches, v.outcomes


VIOLATIONS = [
    ("filtered_pairs", "select * from {t} union all (select * from {t} limit 2)",
     "expect_column_values_to_be_unique(pair_id)", True),
    ("filtered_pairs", "select * replace ('kept' as status) from {t}",
     "expect_column_values_to_be_in_set(reason_fits_status)", True),
    ("filtered_pairs", "select * replace ('rm_agrees' as reason, 'kept' as status) from {t}",
     "expect_column_values_to_be_in_set(kept_against_the_rule)", True),
    ("filtered_pairs", "select * replace ((shard + 1) % n_shards as shard) from {t}",
     "expect_column_values_to_be_in_set(wrong_shard)", True),
    ("filtered_pairs", "select * replace (1.5 as p_gold) from {t}",
     "expect_column_values_to_be_between(p_gold)", True),
    ("filtered_pairs", "select * replace ('dropped' as status, 'not_judged' as reason) from {t}",
     "expect_column_values_to_be_in_set(dropped)", False),
    # a confident-learning decision that keeps a flagged pair, and two rules in one table
    ("filtered_pairs", "select * replace ('confident_learning' as rule, 'kept' as status, "
                       "'no_label_issue' as reason, true as label_issue) from {t}",
     "expect_column_values_to_be_in_set(kept_against_the_rule)", True),
    ("filtered_pairs", "select * replace (if(shard = 0, 'ensemble', rule) as rule) from {t}",
     "expect_column_values_to_be_in_set(mixed_rules)", True),
    ("filtered_pairs", "select * replace (null::double as noise_score) from {t}",
     "expect_column_values_to_not_be_null(noise_score)", True),
    ("curated_export", "select * replace (chosen as rejected) from {t}",
     "expect_column_values_to_be_in_set(same_responses)", True),
    ("curated_export", "select * replace ([struct_pack(role := 'user', content := 'x')] as chosen) from {t}",
     "expect_column_values_to_be_in_set(response_roles)", True),
    ("curated_export", "select * replace ('dropped' as status) from {t}",
     "expect_column_values_to_be_in_set(status)", True),
    ("curated_export", "select * replace ('flipped' as status) from {t}",
     "expect_column_values_to_be_in_set(flipped)", False),
]


@violations_parametrized(VIOLATIONS)
def test_each_planted_violation_fails_its_expectation(exported_lake, table, select, expectation, blocking):
    assert_violation_fails(exported_lake, table, select, expectation, blocking)


def _expected_against(rule: str, row: dict) -> tuple[bool, bool]:
    """(against the label, clear enough to recycle) as the rule's SQL file defines it."""
    judge = row["judge_verdict"]
    if rule == "confident_learning":
        against = row["label_issue"] if judge not in ("agree", "flipped") else judge == "flipped"
        return against, row["p_gold"] < 0.5 - SETTINGS.flip_margin
    logit = lambda p: np.log(max(p, 1e-6) / max(1 - p, 1e-6))  # noqa: E731
    p_ensemble = 1 / (1 + np.exp(-(logit(row["p_best"]) + logit(row["p_gold"])) / 2))
    against = p_ensemble < 0.5 if judge not in ("agree", "flipped") else judge == "flipped"
    return against, p_ensemble < 0.5 - SETTINGS.flip_margin


@pytest.mark.parametrize("rule", ["confident_learning", "ensemble"])
def test_the_other_rules_decide_by_their_own_evidence_and_say_so(scored_lake, rule):
    lake, scenario = scored_lake
    settings = FilterSettings(rule=rule)
    for shard in range(N_SHARDS):
        filter_shard(lake, shard, settings)
    decided = _decisions(lake)
    assert set(decided) == set(scenario)
    for pid, row in decided.items():
        assert row["rule"] == rule
        if SCENARIOS[scenario[pid]][0][3] is not None:  # humans decide for every rule
            assert row["reason"] == "human_verified"
            continue
        against, clear = _expected_against(rule, row)
        expected = "kept" if not against else ("flipped" if clear else "dropped")
        assert row["status"] == expected, (scenario[pid], row)
        if rule == "confident_learning":  # 1 - cleanlab's self-confidence in the label
            assert row["noise_score"] == pytest.approx(1 - row["p_best"])
        elif row["judge_verdict"] is None:  # the ensemble's own score decides (no spread here)
            assert (row["noise_score"] > 0.5) == against
    # confident learning flags only pairs whose out-of-fold score is against the label (and only
    # its rule runs cleanlab)
    flagged = [r for r in decided.values() if r["label_issue"]]
    if rule == "confident_learning":
        assert flagged and all(r["p_best"] < 0.5 for r in flagged)
    else:
        assert all(r["label_issue"] is None for r in decided.values())
    from synpref.checks.quality import validate_table  # the table's suite holds for every rule

    v = validate_table(lake, "filtered_pairs", build_docs=False)
    assert v.success, v.outcomes
    # changing the rule decides the shard again
    assert not filter_shard(lake, 0, FilterSettings(rule="paper")).reused


def test_an_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="unknown Stage 2 rule"):
        FilterSettings(rule="vibes")
