"""Great Expectations suites and reconciliation: each planted violation fails the right
expectation; a clean lake passes."""

from __future__ import annotations

import json

import duckdb
import pytest

from synpref.lake.duck import lit
from conftest import assert_violation_fails, run_stages, tamper, violations_parametrized, write_jsonl, write_sources
from synpref.checks import quality
from synpref.checks.quality import validate_table
from synpref.checks.reconcile import reconcile_ingest, reconcile_reasons, reconcile_silver

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


# ---------------------------------------------------------------- the kept GE context (one per lake, per process)

SILVER = ("silver_decisions", "silver_pairs", "silver_quarantine")


@pytest.fixture
def cold():
    """Every validation in the test starts without a kept context, and leaves none behind."""
    quality.clear_contexts()
    yield
    quality.clear_contexts()


def _counting_contexts(monkeypatch) -> list:
    made = []
    real = quality.gx_context

    def counted(lake):
        made.append(lake.root)
        return real(lake)

    monkeypatch.setattr(quality, "gx_context", counted)
    return made


@pytest.mark.parametrize("batch_rows", [100_000, 5])
def test_warm_validations_give_the_cold_outcomes(clean_lake, cold, monkeypatch, batch_rows):
    made = _counting_contexts(monkeypatch)
    first = {t: validate_table(clean_lake, t, batch_rows=batch_rows, build_docs=False) for t in SILVER}
    again = {t: validate_table(clean_lake, t, batch_rows=batch_rows, build_docs=False) for t in SILVER}
    assert len(made) == 1  # one GE context for the lake, made by the first validation
    for t in SILVER:
        assert again[t].outcomes == first[t].outcomes and again[t].outcomes
        assert (again[t].rows, again[t].batches) == (first[t].rows, first[t].batches)
        assert again[t].success


@violations_parametrized(VIOLATIONS)
def test_a_warm_validation_of_a_planted_violation_gives_the_cold_outcomes(clean_lake, cold, table, select,
                                                                          expectation, blocking):
    first = assert_violation_fails(clean_lake, table, select, expectation, blocking)  # cold: a new context
    again = validate_table(clean_lake, table, batch_rows=5, build_docs=False)  # warm: the kept one
    assert again.outcomes == first.outcomes and (again.rows, again.batches) == (first.rows, first.batches)


def test_planted_failure_is_seen_by_a_warm_context(clean_lake, cold):
    clean = validate_table(clean_lake, "silver_pairs", batch_rows=5, build_docs=False)  # the context is kept
    tamper(clean_lake, "silver_pairs",
           "select * replace (case when source_row = 2 then rejected else chosen end as chosen) from {t}")
    warm = validate_table(clean_lake, "silver_pairs", batch_rows=5, build_docs=False)
    quality.clear_contexts()
    cold_again = validate_table(clean_lake, "silver_pairs", batch_rows=5, build_docs=False)
    warm_again = validate_table(clean_lake, "silver_pairs", batch_rows=5, build_docs=False)
    assert warm.outcomes == cold_again.outcomes == warm_again.outcomes != clean.outcomes
    (same,) = [o for o in warm.outcomes if o.expectation == "expect_column_values_to_be_in_set(same_responses)"]
    assert not same.success and same.unexpected_count == 2 and len(same.sample_ids) == 2
    assert failed(warm, blocking=True) == {"expect_column_values_to_be_in_set(same_responses)"} and not warm.success


def _suites_copy(tmp_path, name: str):
    import shutil

    import expectations as suites

    folder = tmp_path / name
    shutil.copytree(suites.suites_dir(), folder, ignore=shutil.ignore_patterns("__*"))
    return folder


def _add_unmeetable(folder, table: str) -> str:
    doc = json.loads((folder / f"{table}.json").read_text())
    doc["expectations"].append({"type": "expect_column_values_to_be_in_set", "severity": "critical",
                                "kwargs": {"column": "source", "value_set": ["nowhere"]}, "meta": {}})
    (folder / f"{table}.json").write_text(json.dumps(doc))
    return "expect_column_values_to_be_in_set(source)"


def test_a_kept_context_follows_an_edited_suite_file(clean_lake, cold, tmp_path):
    folder = _suites_copy(tmp_path, "suites")
    before = validate_table(clean_lake, "silver_pairs", suites_dir=folder, build_docs=False)
    assert before.success
    added = _add_unmeetable(folder, "silver_pairs")
    after = validate_table(clean_lake, "silver_pairs", suites_dir=folder, build_docs=False)
    assert failed(after) == {added} and after.outcomes[:-1] == before.outcomes


def test_two_suites_folders_take_turns_on_one_lake(clean_lake, cold, tmp_path):
    # each folder's context re-adds its own suite to the one file store: the other one's kept
    # definitions go stale there, and are made again
    strict = _suites_copy(tmp_path, "strict")
    added = _add_unmeetable(strict, "silver_pairs")
    plain = validate_table(clean_lake, "silver_pairs", build_docs=False)
    for _ in range(2):
        assert failed(validate_table(clean_lake, "silver_pairs", suites_dir=strict, build_docs=False)) == {added}
        assert validate_table(clean_lake, "silver_pairs", build_docs=False).outcomes == plain.outcomes


def test_threads_share_a_lake_context(clean_lake, cold):
    from concurrent.futures import ThreadPoolExecutor

    serial = {t: validate_table(clean_lake, t, build_docs=False).outcomes for t in SILVER}
    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(lambda t: (t, validate_table(clean_lake, t, build_docs=False).outcomes), SILVER * 3))
    assert all(outcomes == serial[t] for t, outcomes in runs)


def _validate_in_child(lake_root: str, table: str, queue) -> None:
    from synpref.lake import Lake

    queue.put(validate_table(Lake.at(lake_root), table, build_docs=False).outcomes)


def test_a_forked_child_makes_its_own_context(clean_lake, cold):
    import multiprocessing

    parent = validate_table(clean_lake, "silver_pairs", build_docs=False)  # kept by the parent
    fork = multiprocessing.get_context("fork")
    queue = fork.Queue()
    child = fork.Process(target=_validate_in_child, args=(str(clean_lake.root), "silver_pairs", queue))
    child.start()
    outcomes = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0 and outcomes == parent.outcomes
    assert validate_table(clean_lake, "silver_pairs", build_docs=False).outcomes == parent.outcomes


def test_a_kept_context_holds_no_batch(clean_lake, cold):
    import gc

    import pandas as pd

    for t in SILVER:
        validate_table(clean_lake, t, build_docs=False)
    gc.collect()
    frames = [o for o in gc.get_objects() if isinstance(o, pd.DataFrame) and "pair_id" in o.columns]
    assert frames == []


def test_a_removed_quality_folder_is_made_again(clean_lake, cold):
    import shutil

    first = validate_table(clean_lake, "silver_pairs", build_docs=False)
    shutil.rmtree(quality.quality_root(clean_lake))
    again = validate_table(clean_lake, "silver_pairs")
    assert again.outcomes == first.outcomes and again.docs.exists()


def test_docs_render_the_validations_that_ask(clean_lake, cold):
    pages = quality.docs_index(clean_lake).parent / "validations" / "silver_pairs"
    validate_table(clean_lake, "silver_pairs", build_docs=False)
    v = validate_table(clean_lake, "silver_pairs", batch_rows=5)
    assert len(list(pages.rglob("*.html"))) == v.batches  # a page per batch of this validation
    assert "silver_pairs" in v.docs.read_text()
    quality.build_docs(clean_lake)  # the whole site: every validation kept
    assert len(list(pages.rglob("*.html"))) == v.batches + 1


def test_vectors_table_name_matches():
    from synpref.silver import vectors

    assert quality.VECTORS_TABLE == vectors.TABLE


def test_two_contexts_with_the_same_suites_stay_warm(clean_lake, cold, monkeypatch, tmp_path):
    # the suite is stored once with its ids: neither context's definitions go stale
    made = _counting_contexts(monkeypatch)
    same = _suites_copy(tmp_path, "same")
    for _ in range(3):
        a = validate_table(clean_lake, "silver_pairs", build_docs=False)
        b = validate_table(clean_lake, "silver_pairs", suites_dir=same, build_docs=False)
        assert a.outcomes == b.outcomes and a.success
    assert len(made) == 2
