"""Stage 1's decisions, directly on tiny real lakes (no demo, no training): which pairs a round RM
trains on, which round RM is Stage 2's best, where a round's retrieved pairs go and with which k,
and the gold RM's held-out share."""

from __future__ import annotations

import hashlib
import math

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from support.annotation import pair_ids, silver_lake, silver_texts, simple_records, write_attributes
from synpref.lake.duck import lit
from conftest import rows
from synpref.lake import schemas
from synpref.gold import stage1
from synpref.lake.duck import stage_connection
from synpref.gold.annotation_queue import queue_retrieved
from synpref.silver.judging import enqueue, queue_for_judges
from synpref.lake import Lake, write_part
from synpref.silver.retrieval import adaptive_k
from synpref.rm.rm_models import ModelRef
from synpref.rm.rm_training import prepare_sets
from synpref.silver.vectors import IndexConfig, vector_array, write_embeddings

EXACT = IndexConfig()  # tables this small are searched exactly


def _write_gold(lake: Lake, ids: list[str]) -> None:
    """gold_pairs by hand (humans are not in these tests): the silver pairs `ids`, not flipped, agreed."""
    con = duckdb.connect()
    try:
        con.execute("create temp table wanted as select unnest($ids) as pair_id", {"ids": ids})
        table = con.sql(f"select pair_id, conversation, chosen, rejected, false as flipped, source, "
                        f"1.0 as agreement "
                        f"from read_parquet({lit(lake.table_glob('silver_pairs'))}) semi join wanted using (pair_id) "
                        f"order by pair_id").to_arrow_table()
    finally:
        con.close()
    assert table.num_rows == len(ids)
    write_part(lake, "gold_pairs", table)


def _write_verdicts(lake: Lake, verdicts: dict[str, str]) -> None:
    write_part(lake, "silver_labels", pa.Table.from_pylist(
        [{"pair_id": pid, "verdict": v} for pid, v in verdicts.items()], schema=schemas.SILVER_LABELS))


def _sets(lake: Lake, pairs_sql: str, eval_set: str, fraction: float = 0.1, seed: int = 0):
    """prepare_sets as the trainer runs it: (kind, skipped, train rows by pair_id, eval pair_ids)."""
    con = stage_connection(lake)
    try:
        kind, skipped = prepare_sets(con, lake, pairs_sql, eval_set, fraction, seed)
        train = {pid: (chosen, rejected) for pid, chosen, rejected in
                 con.execute("select pair_id, chosen, rejected from train_set").fetchall()}
        evaluated = {pid for (pid,) in con.execute("select pair_id from eval_set").fetchall()}
    finally:
        con.close()
    return kind, skipped, train, evaluated


# ---------------------------------------------------------------- what a round RM trains on

def test_a_round_rm_trains_on_the_pool_with_the_judges_verdicts_applied_and_without_gold(lake, tmp_path):
    silver_lake(lake, tmp_path, simple_records(8))
    ids, texts = pair_ids(lake), silver_texts(lake)
    # before any judge answered: the whole pool, as labelled
    assert stage1.silver_training_sql(lake).split() == \
        "select pair_id, conversation, chosen, rejected, source from silver_pairs".split()
    agree, flipped, undecided, unjudged, gold_flipped, gold = ids[:6]
    _write_verdicts(lake, {agree: "agree", flipped: "flipped", undecided: "undecided", gold_flipped: "flipped"})
    _write_gold(lake, [gold_flipped, gold])
    kind, skipped, train, evaluated = _sets(lake, stage1.silver_training_sql(lake), "gold")
    assert (kind, evaluated) == ("gold", {gold_flipped, gold})
    # undecided pairs are left out, gold pairs are the evaluation set only
    assert set(train) == set(ids) - {undecided, gold_flipped, gold}
    assert skipped == {"in_gold_pairs": 2}
    # a flipped verdict swaps the responses; agree and unjudged pairs keep their label
    assert train[flipped] == texts[flipped][::-1]
    for pid in set(train) - {flipped}:
        assert train[pid] == texts[pid], pid


# ---------------------------------------------------------------- Stage 2's best round RM

def _eval_rows(*rows_: tuple[str, str, str, str, float]) -> pa.Table:
    """rm_eval rows (model, version, eval_set, breakdown, accuracy)."""
    return pa.Table.from_pylist([{"model": m, "model_version": v, "eval_set": e, "breakdown": b,
                                  "group_value": None if b == "overall" else "x", "pairs": 10, "accuracy": a}
                                 for m, v, e, b, a in rows_], schema=schemas.RM_EVAL)


def test_the_best_round_rm_is_the_most_accurate_on_gold_the_later_round_on_a_tie(lake):
    with pytest.raises(LookupError, match="no rm_eval"):
        stage1.best_round_model(lake)
    # only other models evaluated: none is a round RM
    write_part(lake, "rm_eval", _eval_rows(("gold", "v001", "holdout", "overall", 1.0),
                                           ("fold-0-r0", "v001", "gold", "overall", 1.0)))
    with pytest.raises(LookupError, match="no round reward model"):
        stage1.best_round_model(lake)
    write_part(lake, "rm_eval", _eval_rows(
        ("round-1", "v001", "gold", "overall", 0.8),
        ("round-2", "v001", "gold", "overall", 0.9),
        # a tie with round-2: round 10 is the later round (by number; as text "round-2" sorts after it)
        ("round-10", "v001", "gold", "overall", 0.9),
        ("round-10", "v002", "gold", "overall", 0.9),  # and the later version of the same round
        # higher accuracies that are not a round RM's overall accuracy on gold
        ("round-3", "v001", "gold", "source", 1.0),
        ("round-4", "v001", "holdout", "overall", 1.0),
        ("round-5-copy", "v001", "gold", "overall", 1.0),
        ("baseline", "v001", "gold", "overall", 1.0)))
    assert stage1.best_round_model(lake) == ("round-10", "v002", 0.9)
    # accuracy comes first: an earlier round that is more accurate wins
    write_part(lake, "rm_eval", _eval_rows(("round-1", "v002", "gold", "overall", 0.95)))
    assert stage1.best_round_model(lake) == ("round-1", "v002", 0.95)


# ---------------------------------------------------------------- a round's retrieval and queues

N_POOL = 48
# the gold pairs' p from the round RM; 0.5 is still "wrong or unsure" (k = 8), 0.8 and 0.51 are
# where ceil and floor differ, 1.0 retrieves nothing; the last is wrong, but the only pair of its
# task category: there is nothing to retrieve around it
P_QUERIES = (0.2, 0.5, 0.8, 0.51, 1.0, 0.3)
EXPECTED_K = (8, 8, 2, 4, 0, 8)
ROUND_RM = ("round-1", "v001")
# (objectivity, controversiality) -> annotation priority (sql/annotation_queue.sql)
KINDS = [(("objective", "low"), 0), (("subjective", "high"), 5), (("objective", "medium"), 1),
         (("subjective", "low"), 3)]


@pytest.fixture
def round_lake(lake, tmp_path):
    """N_POOL silver pairs of one task category (but the last gold pair) with attributes of mixed
    priority, embedded as random unit vectors; the first len(P_QUERIES) are gold, with the round
    RM's p in rm_eval_pairs as its evaluation wrote them. The first two gold pairs sit at the
    same spot (so the second one's neighbours were already found by the first), and the first
    one's nearest pool pair was already queued for the judges by Stage 2."""
    silver_lake(lake, tmp_path, simple_records(N_POOL))
    ids = pair_ids(lake)
    gold, pool = ids[:len(P_QUERIES)], ids[len(P_QUERIES):]
    priority = {pid: KINDS[i % len(KINDS)][1] for i, pid in enumerate(ids)}
    write_attributes(lake, {pid: KINDS[i % len(KINDS)][0] for i, pid in enumerate(ids)})
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(N_POOL, 384)).astype(np.float32)
    vectors[1] = vectors[0] + 0.01 * rng.normal(size=384).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    categories = ["math"] * N_POOL
    categories[len(gold) - 1] = "poetry"
    write_embeddings(lake, pa.table({"pair_id": ids, "vector": vector_array(vectors),
                                     "task_category": categories, "text": ids}))
    _write_gold(lake, gold)
    model, version = ROUND_RM
    write_part(lake, "rm_eval_pairs", pa.Table.from_pylist(
        [{"pair_id": pid, "pairs_table": "eval_gold", "model": model, "model_version": version, "p_chosen": p}
         for pid, p in zip(gold, P_QUERIES)], schema=schemas.RM_PREDICTIONS))
    distances = 1 - vectors[len(gold):] @ vectors[0]
    judged_before = pool[int(np.argmin(distances))]
    enqueue(lake, None, origin="stage2", pair_ids=[judged_before])
    assert sorted(stage1.gold_p(lake, model, version)) == sorted(zip(gold, P_QUERIES))
    return lake, stage1.gold_p(lake, model, version), priority, judged_before


def _round(lake: Lake, key: str, queries, settings, index=EXACT) -> stage1.RoundQueues:
    """A round's retrieval, then what the queue assets do with it (annotation_queue, judge_queue)."""
    found = stage1.retrieve_round(lake, key, queries, settings, index=index)
    queue_retrieved(lake)
    queue_for_judges(lake)
    return found


def _retrievals(lake: Lake, key: str) -> list[dict]:
    return [r for r in rows(lake, stage1.RETRIEVALS, order="query_pair_id, rank") if r["round"] == key]


def _queued(lake: Lake, table: str, origin: str) -> set[str]:
    return {r["pair_id"] for r in rows(lake, table, order="pair_id") if r["origin"] == origin}


def test_a_round_retrieves_k_by_p_and_sends_the_best_to_humans_the_rest_to_judges(round_lake, tmp_path):
    lake, queries, priority, judged_before = round_lake
    settings = stage1.RoundSettings(to_humans=3)
    q = _round(lake, "round-1", queries, settings, index=EXACT)
    recorded = _retrievals(lake, "round-1")
    # k: the paper's rule, recorded per query, and that many neighbours retrieved
    by_query: dict[str, list[dict]] = {}
    for r in recorded:
        by_query.setdefault(r["query_pair_id"], []).append(r)
    p_of = dict(queries)
    expected_k = {gid: EXPECTED_K[P_QUERIES.index(p)] for gid, p in queries}
    for gid, p in queries:
        assert expected_k[gid] == (8 if p <= 0.5 else math.ceil(8 * (1 - p))) == adaptive_k(p)
    lonely = next(g for g, p in queries if p == 0.3)
    assert {gid: len(found) for gid, found in by_query.items()} == \
        {g: k for g, k in expected_k.items() if k and g != lonely}
    for gid, found in by_query.items():
        assert [r["rank"] for r in found] == list(range(1, expected_k[gid] + 1))
        assert {(r["k"], r["p_query"]) for r in found} == {(expected_k[gid], p_of[gid])}
        assert [r["distance"] for r in found] == sorted(r["distance"] for r in found)
    # never a gold pair, nor a pair another origin already queued
    retrieved = [r["pair_id"] for r in recorded]
    assert not set(retrieved) & (set(p_of) | {judged_before})
    # the RoundQueues figures: 4 gold pairs found neighbours, 3 are wrong or unsure (p <= 0.5)
    assert (q.queries, q.wrong_or_unsure, q.retrieved) == (4, 3, len(set(retrieved)))
    # to_humans caps the humans' share, the best-ranked (objective, low controversy first) ...
    assert len(q.to_humans) == 3 and set(q.to_humans) == _queued(lake, "annotation_queue", "round-1")
    # ... and every other retrieved pair goes to the judges, each pair once
    assert not set(q.to_humans) & set(q.to_judges) and len(set(q.to_judges)) == len(q.to_judges)
    assert set(q.to_humans) | set(q.to_judges) == set(retrieved)
    assert set(q.to_judges) == _queued(lake, "judge_queue", "round-1")
    assert max(priority[p] for p in q.to_humans) <= min(priority[p] for p in q.to_judges)
    # a pair found by two queries goes where its first finding says; the second is marked already queued
    first: dict[str, str] = {}
    for r in sorted(recorded, key=lambda r: ([g for g, _ in queries].index(r["query_pair_id"]), r["rank"])):
        expected = first.get(r["pair_id"])
        assert r["destination"] == ("already_queued" if expected else
                                    "humans" if r["pair_id"] in q.to_humans else "judges")
        first.setdefault(r["pair_id"], r["destination"])
    assert sum(r["destination"] == "already_queued" for r in recorded) == len(recorded) - len(set(retrieved)) > 0
    # the round done, a rerun queues nothing new and answers from the record
    again = _round(lake, "round-1", queries, settings, index=EXACT)
    assert (sorted(again.to_humans), sorted(again.to_judges)) == (sorted(q.to_humans), sorted(q.to_judges))
    assert (again.queries, again.wrong_or_unsure, again.retrieved) == (q.queries, q.wrong_or_unsure, q.retrieved)
    assert len(_retrievals(lake, "round-1")) == len(recorded)
    # the round's row of stage1_rounds says the same, with the gold it started and ended with
    write_part(lake, "rm_eval", _eval_rows((*ROUND_RM, "gold", "overall", 0.5)))
    version_dir = tmp_path / "round-1" / "v001"
    version_dir.mkdir(parents=True)
    (version_dir / "spec.json").write_text('{"eval": {"rows": %d}}' % len(P_QUERIES))
    row = stage1.record_round(lake, "round-1", ModelRef(*ROUND_RM, version_dir / "best", version_dir))
    assert {k: row[k] for k in ("queries", "wrong_or_unsure", "retrieved", "to_humans", "to_judges",
                                "gold_pairs_before", "gold_pairs_after", "gold_accuracy")} == \
        {"queries": 4, "wrong_or_unsure": 3, "retrieved": q.retrieved, "to_humans": 3,
         "to_judges": q.retrieved - 3, "gold_pairs_before": len(P_QUERIES), "gold_pairs_after": len(P_QUERIES),
         "gold_accuracy": 0.5}
    assert stage1.rounds(lake)[0]["wrong_or_unsure"] == 3


def test_the_judges_cap_and_no_humans(round_lake):
    lake, queries, _, _ = round_lake
    capped = _round(lake, "round-1", queries, stage1.RoundSettings(to_humans=2, to_judges=5),
                                index=EXACT)
    found = list(dict.fromkeys(r["pair_id"] for r in _retrievals(lake, "round-1")))
    assert len(capped.to_humans) == 2 and len(capped.to_judges) == 5
    assert set(capped.to_judges) == _queued(lake, "judge_queue", "round-1")
    not_sent = {r["pair_id"] for r in _retrievals(lake, "round-1") if r["destination"] == "not_sent"}
    assert not_sent == set(found) - set(capped.to_humans) - set(capped.to_judges) and len(not_sent) == len(found) - 7
    # a round with no humans: everything found goes to the judges; pairs of earlier rounds are not found again
    later = _round(lake, "round-2", queries, stage1.RoundSettings(to_humans=0), index=EXACT)
    assert later.to_humans == [] and not _queued(lake, "annotation_queue", "round-2")
    assert set(later.to_judges) == {r["pair_id"] for r in _retrievals(lake, "round-2")}
    assert not set(later.to_judges) & (set(capped.to_humans) | set(capped.to_judges))
    assert not_sent <= set(later.to_judges)  # found but never sent: still unlabelled


# ---------------------------------------------------------------- the gold RM's held-out share

def test_the_gold_rm_trains_on_gold_and_holds_out_a_seeded_share_of_it(lake, tmp_path):
    from assets.models.training import GoldModelConfig

    fraction = GoldModelConfig().holdout_fraction
    silver_lake(lake, tmp_path, simple_records(60))
    gold = pair_ids(lake)[:50]
    _write_gold(lake, gold)
    gold_sql = "select pair_id, conversation, chosen, rejected, source from gold_pairs"
    held = {}
    for seed in (0, 1):
        kind, skipped, train, evaluated = _sets(lake, gold_sql, "holdout", fraction, seed)
        # the lake has gold, but the gold RM's checkpoint is picked on a share of its own pairs
        assert (kind, skipped) == ("holdout", {})
        assert not set(train) & evaluated and set(train) | evaluated == set(gold)
        # which share: the seeded hash of each pair_id, fraction of 100,000 buckets
        expected = {pid for pid in gold if int(hashlib.md5(f"{pid}:{seed}".encode()).hexdigest()[:8], 16)
                    % 100000 < round(fraction * 100000)}
        assert evaluated == expected and 0 < len(expected) < len(gold) / 2
        held[seed] = evaluated
    assert held[0] != held[1]
