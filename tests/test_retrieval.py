"""Adaptive retrieval on a real LanceDB table, with the real MiniLM embedder where it matters."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest

from models.embedder import Embedder, EmbedderConfig, pair_text
from synpref.silver.retrieval import K_MAX, Neighbour, adaptive_k, retrieve
from synpref.silver.vectors import (IndexConfig, IndexSettings, build_index, existing_pair_ids,
                                    index_settings, nearest, open_table, plan_index, read_pairs,
                                    recall_at_k, search, vector_array, vector_index_kind,
                                    write_embeddings)

DIM = 384
FLAT = IndexConfig()  # tables below min_rows_for_index are searched exactly


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def near(rng: np.random.Generator, centre: np.ndarray, n: int, noise: float) -> np.ndarray:
    v = centre + noise * rng.normal(size=(n, centre.size)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def write(lake, ids: list[str], vectors: np.ndarray, categories: list[str | None], mode="append"):
    rows = pa.table({"pair_id": ids, "vector": vector_array(vectors), "task_category": categories,
                     "text": ids})
    write_embeddings(lake, rows, mode=mode)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(EmbedderConfig(threads=1))


# ---------------------------------------------------------------- adaptive k

@pytest.mark.parametrize("p, k", [(0.0, 8), (0.3, 8), (0.5, 8), (0.5000001, 4), (0.75, 2),
                                  (0.99, 1), (1.0, 0)])
def test_adaptive_k(p, k):
    assert adaptive_k(p) == k


def test_adaptive_k_is_not_thrown_off_by_float_noise():
    assert adaptive_k(0.7, k_max=10) == 3  # 10 * (1 - 0.7) is 3.0000000000000004 in floats
    assert adaptive_k(0.5000001, k_max=K_MAX) == math.ceil(K_MAX / 2)


@pytest.mark.parametrize("p", [-0.01, 1.01, float("nan"), float("inf")])
def test_adaptive_k_rejects_non_probabilities(p):
    with pytest.raises(ValueError):
        adaptive_k(p)


# ---------------------------------------------------------------- the store

def test_write_append_overwrite_and_resume_ids(lake):
    rng = np.random.default_rng(0)
    assert existing_pair_ids(lake) == set()
    write(lake, ["a", "b"], unit(rng, 2), ["x", None])
    write(lake, ["c"], unit(rng, 1), ["y"])
    assert existing_pair_ids(lake) == {"a", "b", "c"}
    write(lake, ["d"], unit(rng, 1), ["y"], mode="overwrite")
    assert existing_pair_ids(lake) == {"d"}
    with pytest.raises(ValueError):
        write(lake, ["e"], unit(rng, 1), ["y"], mode="upsert")


def test_search_excludes_ids_and_still_returns_k(lake):
    rng = np.random.default_rng(1)
    centre = unit(rng, 1)[0]
    close = near(rng, centre, 30, 0.02)
    ids = [f"close{i}" for i in range(30)] + [f"far{i}" for i in range(200)]
    write(lake, ids, np.concatenate([close, unit(rng, 200)]), ["x"] * 230)
    excluded = {f"close{i}" for i in range(25)}
    (hits,) = search(lake, centre[None], 8, exclude_ids=excluded, config=FLAT)
    assert len(hits) == 8 and not excluded & {p for p, _ in hits}
    assert {p for p, _ in hits[:5]} == {f"close{i}" for i in range(25, 30)}
    assert [d for _, d in hits] == sorted(d for _, d in hits)


# ---------------------------------------------------------------- retrieve

@pytest.fixture
def pool(lake):
    """Three categories of 100 pairs, each category a cluster; 'q*' are labelled queries."""
    rng = np.random.default_rng(2)
    ids, vectors, categories = [], [], []
    for c, centre in zip("abc", unit(rng, 3)):
        members = near(rng, centre, 100, 0.05)
        ids += [f"{c}{i}" for i in range(100)]
        vectors.append(members)
        categories += [c] * 100
    write(lake, ids, np.concatenate(vectors), categories)
    return lake


def by_query(neighbours: list[Neighbour]) -> dict[str, list[Neighbour]]:
    out: dict[str, list[Neighbour]] = {}
    for n in neighbours:
        out.setdefault(n.query_pair_id, []).append(n)
    return out


def pool_vector(lake, pair_id: str) -> np.ndarray:
    rows = read_pairs(lake, [pair_id])
    return np.asarray(rows["vector"][0].as_py(), dtype=np.float32)


def test_retrieve_takes_k_from_p(pool):
    queries = [("a0", 0.1), ("a1", 0.5), ("b0", 0.6), ("b1", 0.95), ("c0", 1.0)]
    got = by_query(retrieve(pool, queries, config=FLAT))
    assert {q: len(ns) for q, ns in got.items()} == {"a0": 8, "a1": 8, "b0": 4, "b1": 1}
    for query, neighbours in got.items():
        assert [n.rank for n in neighbours] == list(range(1, len(neighbours) + 1))
        assert {n.k for n in neighbours} == {len(neighbours)}
        assert [n.distance for n in neighbours] == sorted(n.distance for n in neighbours)
        assert query not in {n.pair_id for n in neighbours}


def test_retrieve_stays_in_the_query_category(pool):
    rng = np.random.default_rng(3)
    # plant pairs of category 'b' right next to a0: the nearest pairs overall, but not 'a'
    a0 = pool_vector(pool, "a0")
    write(pool, [f"imposter{i}" for i in range(10)], near(rng, a0, 10, 0.001), ["b"] * 10)
    same = retrieve(pool, [("a0", 0.0)], config=FLAT)
    assert len(same) == 8 and all(n.pair_id.startswith("a") for n in same)
    anywhere = retrieve(pool, [("a0", 0.0)], same_task_category=False, config=FLAT)
    assert len(anywhere) == 8 and all(n.pair_id.startswith("imposter") for n in anywhere)


def test_retrieve_excludes_labelled_pairs_and_the_query(pool):
    first = retrieve(pool, [("a0", 0.0)], config=FLAT)
    labelled = {n.pair_id for n in first} | {"a0"}
    second = retrieve(pool, [("a0", 0.0)], exclude_pair_ids=labelled, config=FLAT)
    assert len(second) == 8
    assert not labelled & {n.pair_id for n in second}
    assert min(n.distance for n in second) >= max(n.distance for n in first)


def test_retrieve_returns_what_a_small_category_has(pool):
    write(pool, ["lonely0", "lonely1", "lonely2"], unit(np.random.default_rng(4), 3), ["d"] * 3)
    got = retrieve(pool, [("lonely0", 0.0)], config=FLAT)
    assert {n.pair_id for n in got} == {"lonely1", "lonely2"}


def test_retrieve_rejects_queries_that_are_not_embedded(pool):
    with pytest.raises(KeyError):
        retrieve(pool, [("nope", 0.2)], config=FLAT)


# ---------------------------------------------------------------- the ANN index

def test_index_is_built_above_threshold_and_keeps_recall(lake):
    rng = np.random.default_rng(5)
    n = 3000
    write(lake, [f"p{i}" for i in range(n)], unit(rng, n), ["x", "y", "z"] * (n // 3))
    assert build_index(lake, IndexConfig(min_rows_for_index=n + 1)) == {"kind": "flat", "rows": n}
    assert vector_index_kind(lake) is None

    config = IndexConfig(min_rows_for_index=n)
    built = build_index(lake, config)
    assert built["kind"] == config.kind and built["rows"] == n
    assert vector_index_kind(lake) is not None
    queries = unit(rng, 50)
    assert recall_at_k(lake, queries, 10, config) >= 0.9
    filtered = search(lake, queries[:5], 10, where="task_category = 'y'", config=config)
    assert len(filtered) == 5 and all(len(hits) == 10 for hits in filtered)


@pytest.mark.parametrize("rows, partitions, nprobes", [
    (5_000, 5, 5), (100_000, 100, 16), (1_000_000, 1000, 30), (4_000_000, 2000, 60),
    (40_000_000, 6325, 190)])
def test_the_index_plan_follows_the_rows(rows, partitions, nprobes):
    plan = plan_index(rows, IndexConfig())
    assert (plan.kind, plan.rows, plan.num_partitions, plan.nprobes) == ("IVF_SQ", rows, partitions, nprobes)
    assert plan.refine_factor == 5


def test_the_index_plan_keeps_explicit_settings():
    plan = plan_index(1_000_000, IndexConfig(num_partitions=64, nprobes=8, refine_factor=None))
    assert (plan.num_partitions, plan.nprobes, plan.refine_factor) == (64, 8, 1)
    assert plan_index(100_000, IndexConfig(min_nprobes=500)).nprobes == 100  # never above the partitions
    hnsw = plan_index(2_500_000, IndexConfig(kind="IVF_HNSW_SQ"))
    assert (hnsw.num_partitions, hnsw.nprobes) == (3, 3)  # one graph per ~1M rows, all searched


def rare_pool(lake, rng, n=2000):
    categories = ["rare" if i % 200 == 0 else "common" for i in range(n)]  # 10 rare pairs
    write(lake, [f"p{i}" for i in range(n)], unit(rng, n, dim=32), categories)
    return unit(rng, 1, dim=32), "task_category = 'rare'"


def test_searches_use_the_settings_recorded_with_the_index(lake):
    query, where = rare_pool(lake, np.random.default_rng(6))
    # one partition of 16 probed: it holds few of the 10 rare pairs
    one = IndexConfig(kind="IVF_FLAT", num_partitions=16, min_nprobes=1, probe_share=1 / 16,
                      min_rows_for_index=0, recall_sample=0)
    built = build_index(lake, one)
    assert (built["num_partitions"], built["nprobes"]) == (16, 1)
    table = open_table(lake)
    assert index_settings(table) == IndexSettings(kind="IVF_FLAT", rows=2000, num_partitions=16,
                                                  nprobes=1, refine_factor=5)  # as recorded
    unset = IndexConfig(kind="IVF_FLAT")  # nprobes None: the recorded value
    assert len(nearest(table, query, 8, where=where, config=unset)[0]) < 8
    # the same partitions, every one probed: the same search finds all eight
    build_index(lake, replace(one, probe_share=1.0))
    table = open_table(lake)
    assert index_settings(table).nprobes == 16
    assert len(nearest(table, query, 8, where=where, config=unset)[0]) == 8
    # an explicit nprobes still wins over the record
    assert len(nearest(table, query, 8, where=where, config=replace(unset, nprobes=1))[0]) < 8


def test_the_build_raises_nprobes_until_the_sampled_recall_holds(lake):
    rng = np.random.default_rng(7)
    n = 3000
    write(lake, [f"p{i}" for i in range(n)], unit(rng, n), ["x"] * n)  # no structure: hard
    config = IndexConfig(kind="IVF_FLAT", min_nprobes=1, probe_share=0.01, min_rows_for_index=0)
    assert plan_index(n, config).nprobes == 1
    logged = []
    built = build_index(lake, config, log=logged.append)
    assert built["nprobes"] > 1 and built["sampled_recall_at_10"] >= config.recall_target
    assert built["sampled_recall_at_10_filtered"] >= config.recall_target
    assert any("nprobes 1:" in line for line in logged)
    assert index_settings(open_table(lake)).nprobes == built["nprobes"]
    assert recall_at_k(lake, unit(rng, 30), 10, IndexConfig(kind="IVF_FLAT")) >= 0.9


def test_an_index_built_without_a_record_gets_the_rule_for_its_partitions(lake):
    import lancedb.index

    rng = np.random.default_rng(8)
    write(lake, [f"p{i}" for i in range(1000)], unit(rng, 1000, dim=32), ["x"] * 1000)
    open_table(lake).create_index("vector", config=lancedb.index.IvfFlat(distance_type="cosine",
                                                                         num_partitions=20))
    settings = index_settings(open_table(lake))
    assert (settings.kind, settings.num_partitions, settings.nprobes) == ("IVF_FLAT", 20, 16)


def test_a_narrow_filter_falls_back_to_exact_search(lake):
    rng = np.random.default_rng(6)
    n = 2000
    categories = ["rare" if i % 200 == 0 else "common" for i in range(n)]  # 10 rare pairs
    write(lake, [f"p{i}" for i in range(n)], unit(rng, n, dim=32), categories)
    config = IndexConfig(kind="IVF_FLAT", num_partitions=16, nprobes=1, min_rows_for_index=0)
    build_index(lake, config)
    query, where = unit(rng, 1, dim=32), "task_category = 'rare'"
    (probed,) = nearest(open_table(lake), query, 8, where=where, config=config)
    assert len(probed) < 8  # one partition of 16 holds few of the 10 rare pairs
    (hits,) = search(lake, query, 8, where=where, config=config)
    (exact,) = nearest(open_table(lake), query, 8, where=where, config=config, exact=True)
    assert [p for p, _ in hits] == [p for p, _ in exact]


# ---------------------------------------------------------------- the embedder

def test_embedder_gives_normalised_384d_vectors(embedder):
    vectors = embedder.embed(["How do I bake sourdough bread?", "Sort a list in Python.", ""])
    assert embedder.dim == 384
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_similar_texts_are_nearer(embedder):
    bread, recipe, tax = embedder.embed([
        "How do I bake sourdough bread at home?",
        "What's a good recipe for a sourdough loaf?",
        "Explain how capital gains tax works on shares.",
    ])
    assert bread @ recipe > bread @ tax + 0.2


def test_pair_text_renders_attributes_and_clips_long_turns():
    text = pair_text(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "word " * 500}],
        {"task_category": "coding", "objectivity": "objective", "controversiality": None,
         "desired_attributes": ["correctness", "concision"]},
    )
    first, *turns = text.split("\n")
    assert first == "task_category: coding; objectivity: objective; desired_attributes: correctness, concision"
    assert turns[0] == "system: Be brief." and turns[1].startswith("user: word word")
    assert len(text) <= 1300
    assert pair_text([{"role": "user", "content": "hi"}], None) == "user: hi"


def test_pair_text_keeps_the_latest_turns():
    turns = [{"role": "user", "content": f"turn {i} " + "x" * 380} for i in range(10)]
    text = pair_text(turns, None)
    assert "turn 9" in text and "turn 0" not in text


TOPICS = {
    "cooking": ["How long should I roast a {} in the oven?", "What spices go well with {}?",
                "Give me a quick weeknight recipe using {}."],
    "coding": ["Write a Python function that {}.", "Why does my JavaScript code that {} throw an error?",
               "Explain the time complexity of code that {}."],
    "travel": ["What should I pack for a week in {}?", "Is {} safe to visit in winter?",
               "Plan a three-day itinerary for {}."],
}
FILLS = {
    "cooking": ["chicken", "pumpkin", "salmon", "lamb shoulder", "cauliflower", "tofu", "beef brisket"],
    "coding": ["reverses a string", "parses a CSV file", "merges two sorted lists", "counts words",
               "reads JSON from disk", "sorts a dictionary by value", "flattens nested lists"],
    "travel": ["Lisbon", "Kyoto", "Reykjavik", "Marrakesh", "Buenos Aires", "Vancouver", "Prague"],
}


def test_retrieve_on_real_embeddings_finds_the_same_topic(lake, embedder):
    ids, texts, categories = [], [], []
    for topic, templates in TOPICS.items():
        for t, template in enumerate(templates):
            for f, fill in enumerate(FILLS[topic]):
                conversation = [{"role": "user", "content": template.format(fill)}]
                ids.append(f"{topic}-{t}-{f}")
                texts.append(pair_text(conversation, {"task_category": topic}))
                categories.append(topic)
    write(lake, ids, embedder.embed(texts), categories)

    got = by_query(retrieve(lake, [("cooking-0-0", 0.2), ("travel-2-3", 0.2)],
                            same_task_category=False, config=FLAT))
    assert sum(n.pair_id.startswith("cooking") for n in got["cooking-0-0"]) >= 6
    assert sum(n.pair_id.startswith("travel") for n in got["travel-2-3"]) >= 6
