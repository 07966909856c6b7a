"""silver_labels through real vLLM on the tiny model: the queue, the examples, the votes and
their mapping back to the original labels, caching, and the OpenAI-compatible backend."""

from __future__ import annotations

from dataclasses import replace

import shutil

import duckdb
import pytest

from synpref.lake.duck import lit
from conftest import (SERVED_NAME, assert_violation_fails, rows, run_stages, violations_parametrized, write_jsonl,
                      write_sources)
from models.annotator import load_annotator
from models.embedder import Embedder, EmbedderConfig
from models.judge import VERDICTS, load_judge_prompt, load_panel
from synpref.silver.embeddings import embed_pending
from synpref.silver.judging import GOLD, enqueue, judge_queued
from synpref.lake import Lake
from synpref.checks.quality import validate_table
from synpref.silver.vectors import IndexConfig

pytestmark = pytest.mark.slow
N_PAIRS, N_GOLD = 30, 8
SHOWN_POSITION = {"chosen_first": 1, "rejected_first": 2}


@pytest.fixture
def judged_lake(lake, tmp_path):
    return _make_lake(lake, tmp_path)


def _make_lake(lake, tmp_path):
    """Silver pairs, every one embedded; the first N_GOLD of them human-labelled (gold_pairs)."""
    topics = ["adding numbers", "baking bread", "the capital of France", "writing a poem", "sorting a list"]
    write_jsonl(tmp_path / "a.jsonl", [
        {"prompt": f"Question {i} about {topics[i % 5]}: can you help?",
         "chosen": f"Yes. Here is a careful answer about {topics[i % 5]} ({i}).", "rejected": f"No ({i})."}
        for i in range(N_PAIRS)])
    run_stages(lake, write_sources(tmp_path / "s.yaml", [{"name": "a", "path": "a.jsonl",
                                                          "shape": "prompt_chosen_rejected"}]))
    embed_pending(lake, lambda: Embedder(EmbedderConfig()), IndexConfig())
    con = duckdb.connect()
    out = lake.table_dir(GOLD) / "part-0.parquet"
    out.parent.mkdir(parents=True)
    con.execute(f"copy (select pair_id, conversation, chosen, rejected from read_parquet("
                f"{lit(lake.table_glob('silver_pairs'))}) order by pair_id limit {N_GOLD}) to {lit(out)}")
    con.close()
    return lake


@pytest.fixture(scope="module")
def panel(tiny_model):
    """The repo's panel (a sampled and a greedy judge), on the tiny model."""
    repo = load_panel()
    return replace(repo, judges=tuple(replace(j, annotator=replace(j.annotator, model=str(tiny_model)))
                                      for j in repo.judges))


def _queue_all_but_gold(lake, limit: int | None = None):
    sql = ("select pair_id from silver_pairs where pair_id not in (select pair_id from gold_pairs) "
           "order by pair_id" + (f" limit {limit}" if limit else ""))
    return enqueue(lake, sql, origin="test")


def _check_votes(lake, prompt, panel):
    gold = {r["pair_id"] for r in rows(lake, GOLD, order="pair_id")}
    votes = rows(lake, "judge_votes", order="pair_id, judge")
    samples = {j.name: j.samples for j in panel.judges}
    for v in votes:
        assert len(v["answers"]) == samples[v["judge"]] and set(v["answers"]) <= set(prompt.choices), v
        # the mapping back: answers naming the position where the chosen response was shown agree
        chosen_answer = prompt.choices[SHOWN_POSITION[v["shown_order"]] - 1]
        assert v["agree"] == sum(a == chosen_answer for a in v["answers"])
        assert v["agree"] + v["flip"] == len(v["answers"]) and v["invalid"] == 0
        # examples: human-labelled pairs, never the pair itself
        assert 0 < len(v["examples"]) <= prompt.max_examples and set(v["examples"]) <= gold - {v["pair_id"]}
    return votes


def _first_answer_shares(votes: list[dict], choices: tuple[str, ...]) -> dict[str, float]:
    """Position bias counted from judge_votes rows: per judge and over all, the share of valid
    answers (naming candidate 1 or 2) that name the candidate shown first."""
    counts: dict[str, list[int]] = {}
    for v in votes:
        for key in (v["judge"], "all"):
            first, valid = counts.setdefault(key, [0, 0])
            counts[key] = [first + sum(a == choices[0] for a in v["answers"]),
                           valid + sum(a in choices[:2] for a in v["answers"])]
    return {key: round(first / valid, 4) for key, (first, valid) in counts.items() if valid}


def test_every_queued_pair_gets_a_verdict_from_every_judge(judged_lake, panel):
    lake, prompt = judged_lake, load_judge_prompt(panel.prompt_version)
    assert _queue_all_but_gold(lake) == (N_PAIRS - N_GOLD, 0)
    loaded = []  # the panel's judges share the tiny model: one engine for all of them

    def load(judge):
        loaded.append(judge.name)
        return load_annotator(judge.annotator)

    summary = judge_queued(lake, panel, prompt, load, chunk_rows=8)
    assert loaded == [panel.judges[0].name]
    queued = N_PAIRS - N_GOLD
    assert summary.judged == {j.name: queued for j in panel.judges}
    assert summary.errors == {j.name: 0 for j in panel.judges}
    assert summary.with_examples == queued * len(panel.judges)
    votes = _check_votes(lake, prompt, panel)
    assert len(votes) == queued * len(panel.judges)

    labels = rows(lake, "silver_labels", order="pair_id")
    assert len(labels) == queued == summary.labelled
    for label in labels:
        assert label["verdict"] in VERDICTS and 0.0 <= label["confidence"] <= 1.0
        assert [v["judge"] for v in label["votes"]] == sorted(j.name for j in panel.judges)
        assert label["prompt_version"] == "judge-v1" and label["shown_order"] in SHOWN_POSITION
    assert sum(summary.verdicts.values()) == queued
    assert set(summary.first_answer_share) == {*(j.name for j in panel.judges), "all"}
    assert summary.first_answer_share == _first_answer_shares(votes, prompt.choices)

    # a rerun judges nothing again; a newly queued pair is judged alone
    again = judge_queued(lake, panel, prompt, lambda judge: pytest.fail("no judge should be loaded"))
    assert again.judged == {j.name: 0 for j in panel.judges} and again.labelled == queued


def test_limited_run_then_rerun_judges_each_pair_once(judged_lake, panel):
    lake, prompt = judged_lake, load_judge_prompt(panel.prompt_version)
    greedy = replace(panel, judges=tuple(j for j in panel.judges if j.samples == 1))
    _queue_all_but_gold(lake, limit=6)
    first = judge_queued(lake, greedy, prompt, lambda judge: load_annotator(judge.annotator), limit=4)
    assert first.judged == {"tiny-greedy": 4} and first.labelled == 4
    assert _queue_all_but_gold(lake, limit=8) == (2, 6)  # the first 6 are queued already
    second = judge_queued(lake, greedy, prompt, lambda judge: load_annotator(judge.annotator))
    assert second.judged == {"tiny-greedy": 4} and second.labelled == 8
    votes = _check_votes(lake, prompt, greedy)
    assert len({v["pair_id"] for v in votes}) == len(votes) == 8


def test_a_judge_always_answering_candidate_1_is_half_agree_half_flipped(judged_lake, panel, tmp_path_factory):
    """Real vLLM on a tiny model with total position bias: the shown order is a seeded coin,
    so mapping its answers back must give agree exactly where the chosen response was
    shown first, about half the pairs, and the bias must show in the metadata."""
    from models.tiny_llm import make_tiny_llm

    biased = make_tiny_llm(tmp_path_factory.mktemp("models") / "always-first", favour="1")
    greedy = next(j for j in panel.judges if j.samples == 1)
    one = replace(panel, judges=(replace(greedy, name="always-first",
                                         annotator=replace(greedy.annotator, model=str(biased))),))
    lake, prompt = judged_lake, load_judge_prompt(panel.prompt_version)
    _queue_all_but_gold(lake)
    summary = judge_queued(lake, one, prompt, lambda judge: load_annotator(judge.annotator))
    votes = _check_votes(lake, prompt, one)
    assert {a for v in votes for a in v["answers"]} == {"Candidate 1"}
    assert summary.first_answer_share == {"always-first": 1.0, "all": 1.0}
    labels = rows(lake, "silver_labels", order="pair_id")
    assert len(labels) == N_PAIRS - N_GOLD
    for label in labels:
        assert label["verdict"] == ("agree" if label["shown_order"] == "chosen_first" else "flipped")
    agree_share = sum(label["verdict"] == "agree" for label in labels) / len(labels)
    assert 0.25 <= agree_share <= 0.75, agree_share


def test_queue_refuses_unknown_pairs_and_writes(judged_lake):
    with pytest.raises(ValueError, match="not in silver_pairs"):
        enqueue(judged_lake, "select 'no-such-pair' as pair_id", origin="test")
    with pytest.raises(Exception, match="read-only"):
        enqueue(judged_lake, "delete from silver_pairs", origin="test")
    assert not judged_lake.has_table("judge_queue")


def test_openai_backend_judges_the_same_way(judged_lake, panel, served_model):
    lake, prompt = judged_lake, load_judge_prompt(panel.prompt_version)
    # seed None: a CPU `vllm serve` crashes on seeded requests with long prompts (see SamplingConfig)
    served = replace(panel, judges=tuple(
        replace(j, annotator=replace(j.annotator, backend="openai", model=SERVED_NAME, base_url=served_model,
                                     concurrency=4, sampling=replace(j.annotator.sampling, seed=None)))
        for j in panel.judges))
    _queue_all_but_gold(lake, limit=6)
    summary = judge_queued(lake, served, prompt, lambda judge: load_annotator(judge.annotator))
    assert summary.judged == {j.name: 6 for j in panel.judges} and summary.labelled == 6
    assert summary.errors == {j.name: 0 for j in panel.judges}
    _check_votes(lake, prompt, served)
    assert {r["verdict"] for r in rows(lake, "silver_labels", order="pair_id")} <= set(VERDICTS)


# ---------------------------------------------------------------- the suites

@pytest.fixture(scope="module")
def greedy_judged(tmp_path_factory, panel):
    """A lake whose queued pairs the greedy judge has judged (copied per test: tests tamper)."""
    tmp = tmp_path_factory.mktemp("greedy")
    lake = _make_lake(Lake.at(tmp / "lake"), tmp)
    greedy = replace(panel, judges=tuple(j for j in panel.judges if j.samples == 1))
    _queue_all_but_gold(lake)
    judge_queued(lake, greedy, load_judge_prompt(greedy.prompt_version), lambda judge: load_annotator(judge.annotator))
    return lake


@pytest.fixture
def judged_copy(greedy_judged, tmp_path):
    shutil.copytree(greedy_judged.root, tmp_path / "lake")
    return Lake.at(tmp_path / "lake")


def _failed(v, blocking=True) -> set[str]:
    return {o.expectation for o in v.failed(blocking)}


@pytest.mark.parametrize("table", ["judge_queue", "judge_votes", "silver_labels"])
def test_judged_tables_pass_their_suites(judged_copy, table):
    v = validate_table(judged_copy, table, build_docs=False)
    assert v.rows == N_PAIRS - N_GOLD and v.success and not _failed(v, blocking=False), v.outcomes


# (table, the tampering SELECT over {t}, the expectation that must fail, blocking?)
VIOLATIONS = [
    ("judge_queue", "select * from {t} union all (select * from {t} limit 3)",
     "expect_column_values_to_be_unique(pair_id)", True),
    ("judge_votes", "select * replace (agree + 1 as agree) from {t}",
     "expect_column_values_to_be_in_set(counts_do_not_add_up)", True),
    ("judge_votes", "select * replace ([] as answers, 0 as agree, 0 as flip) from {t}",
     "expect_column_values_to_be_in_set(wrong_number_of_answers)", True),
    ("judge_votes", "select * replace (case when agree > flip then 'flipped' else 'agree' end as decision) from {t}",
     "expect_column_values_to_be_in_set(decision_against_the_votes)", True),
    ("judge_votes", "select * replace ('rejected_last' as shown_order) from {t}",
     "expect_column_values_to_be_in_set(shown_order)", True),
    ("judge_votes", "select * replace (['Candidate 3'] as answers, 0 as agree, 0 as flip, 1 as invalid, "
                    "'undecided' as decision) from {t}",
     "expect_column_values_to_be_in_set(invalid)", False),
    ("silver_labels", "select * replace ('maybe' as verdict) from {t}",
     "expect_column_values_to_be_in_set(verdict)", True),
    ("silver_labels", "select * replace ('undecided' as verdict, 0.9 as confidence) from {t}",
     "expect_column_values_to_be_in_set(undecided_with_confidence)", True),
    ("silver_labels", "select * replace ([] as votes) from {t}",
     "expect_column_values_to_be_between(judges)", True),
    ("silver_labels", "select * replace ('undecided' as verdict, 0.0 as confidence) from {t}",
     "expect_column_values_to_be_in_set(verdict)", False),
]


@violations_parametrized(VIOLATIONS)
def test_each_planted_violation_fails_its_expectation(judged_copy, table, select, expectation, blocking):
    assert_violation_fails(judged_copy, table, select, expectation, blocking)
