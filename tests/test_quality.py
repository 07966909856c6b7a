"""Great Expectations suites and reconciliation: each planted violation fails the right
expectation; a clean lake passes."""

from __future__ import annotations

import duckdb
import pytest

from synpref.duck import lit
from conftest import assert_violation_fails, run_stages, tamper, violations_parametrized, write_jsonl, write_sources
from synpref.quality import validate_table
from synpref.reconcile import reconcile_ingest, reconcile_reasons, reconcile_silver

RECORDS = [{"prompt": f"question {i}", "chosen": f"a good answer number {i}", "rejected": f"a bad answer {i}"}
           for i in range(12)]
SUITED = ("raw_pairs", "ingest_quarantine", "silver_decisions", "silver_pairs", "silver_quarantine")


@pytest.fixture
def clean_lake(lake, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", RECORDS + RECORDS[:2])
    with (tmp_path / "a.jsonl").open("a") as f:
        f.write("{not json\n")
    write_jsonl(tmp_path / "b.jsonl", [{**r, "prompt": "other " + r["prompt"]} for r in RECORDS[:10]])
    src = write_sources(tmp_path / "s.yaml", [
        {"name": "a", "path": "a.jsonl", "shape": "prompt_chosen_rejected"},
        {"name": "b", "path": "b.jsonl", "shape": "prompt_chosen_rejected"}])
    run_stages(lake, src)
    return lake


def failed(validation, blocking=None) -> set[str]:
    return {o.expectation for o in validation.outcomes
            if not o.success and (blocking is None or o.blocking == blocking)}


@pytest.mark.parametrize("table", SUITED)
def test_clean_tables_pass_every_expectation(clean_lake, table):
    v = validate_table(clean_lake, table, build_docs=False)
    assert failed(v) == set(), [o for o in v.outcomes if not o.success]
    assert v.rows > 0 and v.success


# (table, the tampering SELECT over {t}, the expectation that must fail, blocking?)
VIOLATIONS = [
    ("silver_pairs", "select * replace (case when source_row = 3 then null else pair_id end as pair_id) from {t}",
     "expect_column_values_to_not_be_null(pair_id)", True),
    ("silver_pairs", "select * replace ((select min(pair_id) from {t}) as pair_id) from {t}",
     "expect_column_values_to_be_unique(pair_id)", True),
    ("silver_pairs", "select * replace (case when source_row = 2 then null else chosen end as chosen) from {t}",
     "expect_column_values_to_not_be_null(chosen)", True),
    ("silver_pairs", "select * replace (case when source_row = 2 then rejected else chosen end as chosen) from {t}",
     "expect_column_values_to_be_in_set(same_responses)", True),
    ("silver_pairs", "select * replace ([{{'role': 'robot', 'content': 'beep'}}] as conversation) from {t}",
     "expect_column_values_to_be_between(unknown_roles)", True),
    ("silver_pairs", "select * replace (case when source_row = 2 then repeat('long ', 20000) else chosen end as chosen)"
                     " from {t}", "expect_column_values_to_be_between(length_ratio)", False),
    ("silver_pairs", "select * replace (case when source_row = 2 then repeat('x', 60000) else rejected end as rejected)"
                     " from {t}", "expect_column_values_to_be_between(rejected_chars)", False),
    ("silver_pairs", "select * replace ('only_source' as source) from {t}",
     "expect_column_values_to_be_between(source_share)", False),
    ("raw_pairs", "select * replace (case when source_row = 4 then (select min(raw_id) from {t}) else raw_id end "
                  "as raw_id) from {t}", "expect_column_values_to_be_unique(raw_id)", True),
    ("raw_pairs", "select * replace ([] as conversation) from {t}",
     "expect_column_values_to_be_between(conversation_turns)", True),
    ("ingest_quarantine", "select * replace ('made_up_reason' as reason) from {t}",
     "expect_column_values_to_be_in_set(reason)", True),
    ("silver_decisions", "select * replace (left(pair_id, 8) as pair_id) from {t}",
     "expect_column_value_lengths_to_equal(pair_id)", True),
    ("silver_quarantine", "select * replace (null as duplicate_of) from {t}",
     "expect_column_values_to_be_in_set(duplicate_without_original)", False),
]


@violations_parametrized(VIOLATIONS)
def test_each_planted_violation_fails_its_expectation(clean_lake, table, select, expectation, blocking):
    v = assert_violation_fails(clean_lake, table, select, expectation, blocking)
    assert v.batches > 1 or v.rows <= 5


def test_sample_of_failing_ids_names_the_bad_rows(clean_lake):
    tamper(clean_lake, "silver_pairs",
           "select * replace (case when source_row = 2 then rejected else chosen end as chosen) from {t}")
    con = duckdb.connect()
    bad = con.execute(f"select pair_id from read_parquet({lit(clean_lake.table_glob('silver_pairs'))}) "
                      f"where chosen = rejected").fetchall()
    con.close()
    v = validate_table(clean_lake, "silver_pairs", build_docs=False)
    (outcome,) = [o for o in v.outcomes if o.expectation == "expect_column_values_to_be_in_set(same_responses)"]
    assert outcome.unexpected_count == len(bad) == 2  # source_row 2 in both files
    assert set(outcome.sample_ids) == {b[0] for b in bad}


def test_uniqueness_holds_across_batches(clean_lake):
    # every batch is a hash bucket of the key, so duplicates always meet in one batch
    tamper(clean_lake, "silver_pairs", "select * from {t} union all select * from {t} where source_row = 7")
    for batch_rows in (2, 3, 1000):
        v = validate_table(clean_lake, "silver_pairs", batch_rows=batch_rows, build_docs=False)
        assert "expect_column_values_to_be_unique(pair_id)" in failed(v)


def test_data_docs_site_is_built_under_the_lake(clean_lake):
    v = validate_table(clean_lake, "silver_pairs")
    assert v.docs.exists() and v.docs.is_relative_to(clean_lake.root)
    pages = list(v.docs.parent.rglob("*.html"))
    assert any("silver_pairs" in p.read_text() for p in pages)


def test_reconciliation_passes_then_catches_a_lost_row(clean_lake):
    assert reconcile_ingest(clean_lake).success and reconcile_silver(clean_lake).success
    tamper(clean_lake, "silver_pairs", "select * from {t} where source_row <> 5")
    r = reconcile_silver(clean_lake)
    assert not r.success and r.figures["silver_pairs"] + r.figures["silver_quarantine"] == r.figures["raw_pairs"] - 2


def test_reconciliation_catches_a_lost_quarantine_row(clean_lake):
    tamper(clean_lake, "ingest_quarantine", "select * from {t} where false")
    r = reconcile_ingest(clean_lake)
    assert not r.success and r.figures["rows_read"] == r.figures["raw_pairs"] + 1


def test_unknown_reason_fails_reason_reconciliation(clean_lake):
    assert reconcile_reasons(clean_lake, "silver_quarantine").success
    tamper(clean_lake, "silver_quarantine", "select * replace ('vibes' as reason) from {t}")
    r = reconcile_reasons(clean_lake, "silver_quarantine")
    assert not r.success and "vibes" in r.detail
