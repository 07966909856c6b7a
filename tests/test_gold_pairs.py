"""gold_pairs: the majority of annotators' latest votes (ties and cannot-decide left out), with
agreement figures checked against textbook values; its suite, its asset and its sensor."""

from __future__ import annotations

import json

import dagster as dg
import duckdb
import numpy as np
import pytest

from support.annotation import pair_ids, silver_lake, silver_texts, simple_records
from conftest import assert_violation_fails, rows, violations_parametrized
from dagster_project.resources import LakeResource
from dagster_project.sensors import gold_pairs_on_new_labels
from synpref.gold.agreement import cohen_pairs, count_table, fleiss_kappa, pairwise_agreement
from synpref.gold.gold_pairs import build_gold_pairs
from synpref.gold.human_labels import append_labels
from synpref.gold.label_journal import journal_dir
from synpref.checks.quality import validate_table

# Fleiss (1971) as worked on Wikipedia's "Fleiss' kappa": 10 subjects, 14 raters, 5 categories.
FLEISS_TABLE = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                         [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])


def test_fleiss_kappa_matches_the_textbook_example():
    assert fleiss_kappa(FLEISS_TABLE) == pytest.approx(0.210, abs=5e-4)
    assert pairwise_agreement(FLEISS_TABLE) == pytest.approx(0.378, abs=5e-4)
    assert fleiss_kappa(np.array([[2, 0], [3, 0]])) is None  # one category only: undefined


def test_cohen_kappa_matches_the_textbook_example():
    # Cohen's example: 50 items, both yes 20, A yes/B no 5, A no/B yes 10, both no 15 -> kappa 0.4
    cells = [("chosen", "chosen")] * 20 + [("chosen", "rejected")] * 5 + [("rejected", "chosen")] * 10 \
        + [("rejected", "rejected")] * 15
    votes = [(f"p{i}", who, v) for i, pair in enumerate(cells) for who, v in zip("AB", pair)]
    (pair,) = cohen_pairs(votes)
    assert (pair.a, pair.b, pair.shared, pair.agreement, pair.kappa) == ("A", "B", 50, 0.7, 0.4)
    # Fleiss' kappa over the same votes pools the two raters' shares (Scott's pi): 0.195 / 0.495
    assert fleiss_kappa(count_table(votes)) == pytest.approx(0.195 / 0.495)


@pytest.fixture
def voted_lake(lake, tmp_path):
    """Six pairs with the votes of annotators a, b, c and a simulated one (see the test)."""
    silver_lake(lake, tmp_path, simple_records(6))
    p = pair_ids(lake)
    votes = [(p[0], "a", "chosen"), (p[0], "b", "chosen"), (p[0], "c", "rejected"),  # 2:1 -> gold as labelled
             (p[1], "a", "rejected"), (p[1], "b", "rejected"),  # 0:2 -> gold, flipped
             (p[2], "a", "chosen"), (p[2], "b", "rejected"),  # a tie -> out
             (p[3], "a", "cannot_decide"), (p[3], "b", "cannot_decide"),  # nobody decided -> out
             (p[4], "a", "chosen"), (p[4], "b", "cannot_decide"),  # a changes their mind below
             (p[5], "sim", "chosen"), (p[5], "a", "chosen")]  # a simulated label behind it
    labels = [{"pair_id": pid, "annotator": who, "choice": choice, "labelled_at": "2026-01-01T00:00:00Z",
               "simulated": who == "sim"} for pid, who, choice in votes]
    labels.append({"pair_id": p[4], "annotator": "a", "choice": "rejected", "labelled_at": "2026-01-02T00:00:00Z"})
    append_labels(lake, labels, source="test")
    return lake, p


def test_gold_is_the_majority_of_each_annotators_latest_vote(voted_lake):
    lake, p = voted_lake
    summary = build_gold_pairs(lake)
    gold = {r["pair_id"]: r for r in rows(lake, "gold_pairs", order="pair_id")}
    assert sorted(gold) == sorted([p[0], p[1], p[4], p[5]])
    texts = silver_texts(lake)
    for pid, flipped in ((p[0], False), (p[1], True), (p[4], True), (p[5], False)):
        chosen, rejected = texts[pid]
        assert gold[pid]["flipped"] is flipped
        assert (gold[pid]["chosen"], gold[pid]["rejected"]) == ((rejected, chosen) if flipped else (chosen, rejected))
    assert (gold[p[0]]["votes_for"], gold[p[0]]["votes_against"], gold[p[0]]["agreement"]) == (2, 1, 0.6667)
    assert (gold[p[4]]["votes_for"], gold[p[4]]["votes_against"], gold[p[4]]["cannot_decide"],
            gold[p[4]]["annotators"]) == (1, 0, 1, 2)
    assert [pid for pid, r in gold.items() if r["simulated"]] == [p[5]]
    assert gold[p[0]]["label_sources"] == ["test"] and gold[p[0]]["source"] == "test"
    assert summary.outcomes == {"gold_agrees": 2, "gold_flipped": 2, "tie": 1, "cannot_decide": 1,
                                "not_in_silver": 0}
    assert (summary.rows, summary.flipped, summary.simulated) == (4, 2, 1)
    # agreement over decided latest votes on pairs with 2+: p0 (c,c,r), p1 (r,r), p2 (c,r), p5 (c,c)
    a = summary.agreement
    assert (a.items, a.votes) == (4, 9)
    assert a.pairwise == pytest.approx((1 / 3 + 1 + 0 + 1) / 4, abs=1e-4)
    expected_chance = (5 / 9) ** 2 + (4 / 9) ** 2
    assert a.fleiss_kappa == pytest.approx((a.pairwise - expected_chance) / (1 - expected_chance), abs=1e-3)
    (ab,) = a.cohen  # a-c and a-sim share one decided pair only
    assert (ab.a, ab.b, ab.shared, ab.kappa) == ("a", "b", 3, 0.4)


def test_gold_pairs_have_the_columns_the_llm_judge_reads(voted_lake):
    lake, _ = voted_lake
    build_gold_pairs(lake)
    con = duckdb.connect()
    try:
        types = {table: dict(con.execute(f"select column_name, column_type from (describe select pair_id, "
                                         f"conversation, chosen, rejected from read_parquet("
                                         f"'{lake.table_glob(table)}'))").fetchall())
                 for table in ("gold_pairs", "silver_pairs")}
    finally:
        con.close()
    assert types["gold_pairs"] == types["silver_pairs"]


def test_no_labels_give_an_empty_gold_table(lake, tmp_path):
    silver_lake(lake, tmp_path, simple_records(3))
    assert build_gold_pairs(lake).rows == 0 and lake.has_table("gold_pairs")
    assert validate_table(lake, "gold_pairs", build_docs=False).success


def test_gold_pairs_pass_their_suite(voted_lake):
    lake, _ = voted_lake
    build_gold_pairs(lake)
    v = validate_table(lake, "gold_pairs", batch_rows=2, build_docs=False)
    assert v.rows == 4 and v.success and not v.failed(blocking=False), v.outcomes


VIOLATIONS = [
    ("gold_pairs", "select * from {t} union all (select * from {t} limit 1)",
     "expect_column_values_to_be_unique(pair_id)", True),
    ("gold_pairs", "select * replace (votes_for as votes_against) from {t}",
     "expect_column_values_to_be_in_set(not_a_majority)", True),
    ("gold_pairs", "select * replace (chosen as rejected) from {t}",
     "expect_column_values_to_be_in_set(same_responses)", True),
    ("gold_pairs", "select * replace (annotators + 1 as annotators) from {t}",
     "expect_column_values_to_be_in_set(votes_do_not_add_up)", True),
    ("gold_pairs", "select * replace (0.5 as agreement) from {t}", "expect_column_values_to_be_between(agreement)",
     True),
    ("gold_pairs", "select * replace (true as flipped) from {t}", "expect_column_values_to_be_in_set(flipped)",
     False),
]


@violations_parametrized(VIOLATIONS)
def test_each_planted_violation_fails_its_expectation(voted_lake, table, select, expectation, blocking):
    lake, _ = voted_lake
    build_gold_pairs(lake)
    assert_violation_fails(lake, table, select, expectation, blocking)




def test_the_sensor_materialises_gold_pairs_when_new_labels_arrive(voted_lake, monkeypatch):
    from dagster_project.definitions import defs

    lake, p = voted_lake
    monkeypatch.setenv("SYNPREF_LAKE", str(lake.root))  # the code location's lake, as under `synpref ui`
    instance = dg.DagsterInstance.ephemeral()
    resources = {"lake": LakeResource(root=str(lake.root))}
    context = dg.build_sensor_context(instance=instance, resources=resources)
    request = gold_pairs_on_new_labels(context)
    assert isinstance(request, dg.RunRequest) and request.tags["synpref/labels_new"] == "14"

    # run the sensor's job, as the daemon would
    job = defs.resolve_job_def(gold_pairs_on_new_labels.job_name)
    result = job.execute_in_process(instance=instance, tags=request.tags)
    assert result.success
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {"human_labels", "gold_pairs"}
    meta = {m.asset_key.to_user_string(): m.metadata for node in ("human_labels", "gold_pairs")
            for m in result.asset_materializations_for_node(node)}
    assert meta["gold_pairs"]["dagster/row_count"].value == 4
    # both are rounded to 4 places, and a sum that lands on a tie (0.15625) can round either way
    kappa = build_gold_pairs(lake).agreement.fleiss_kappa
    assert meta["gold_pairs"]["fleiss_kappa"].value == pytest.approx(kappa, abs=1e-4)
    assert meta["gold_pairs"]["cohen_kappa_mean"].value == 0.4
    assert meta["gold_pairs"]["figure"].value.startswith("![gold pairs by outcome")
    assert "| gold_flipped | 2 |" in meta["gold_pairs"]["labelled_pairs_by_outcome"].value
    assert meta["human_labels"]["dagster/row_count"].value == 14

    # gold_pairs was built from every label: nothing to launch (whatever the sensor's cursor, say in a new UI)
    again = dg.build_sensor_context(instance=instance, resources=resources)
    assert isinstance(gold_pairs_on_new_labels(again), dg.SkipReason)

    # a killed server's journal counts as new labels too; sealing them moves, not adds, them
    folder = journal_dir(lake)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "segment-9-9-dead.jsonl").write_text(json.dumps({
        "label_id": "from-a-dead-server", "pair_id": p[2], "annotator": "c", "choice": "chosen",
        "shown_order": "chosen_first", "source": "web", "guideline_version": "annotation-v1"}) + "\n")
    later = gold_pairs_on_new_labels(dg.build_sensor_context(instance=instance, resources=resources))
    assert isinstance(later, dg.RunRequest) and later.tags["synpref/labels_new"] == "1"
    assert job.execute_in_process(instance=instance, tags=later.tags).success  # seals it, then gold
    assert build_gold_pairs(lake).outcomes["tie"] == 0  # c broke the tie on p2
    sealed = dg.build_sensor_context(instance=instance, resources=resources)
    assert isinstance(gold_pairs_on_new_labels(sealed), dg.SkipReason)
