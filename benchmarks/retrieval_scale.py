"""The scale mode of benchmarks/retrieval.py: the pipeline's index settings at pool sizes.

    PYTHONPATH=. .venv/bin/python benchmarks/retrieval.py --scale --rows 100000 1000000 4000000

No embedding is needed: each size is a table of generated clustered unit vectors (384-d,
CLUSTERS Gaussian clusters; a pair's task_category is its cluster's own with probability
0.7, else any of CATEGORIES), written once under benchmarks/_work/retrieval_scale/ and
reused. Queries are held-out vectors of the same mixture; the truth is exact search by
numpy (plain, and filtered to the query's own category as Stage 1 searches). Per size:

- `defaults`: `build_index(lake, IndexConfig())`, what the pipeline builds (partitions
  and nprobes from the row count, checked by the build's sampled recall), searched with
  `IndexConfig()` (the settings recorded with the index);
- the same index searched with half and with twice the recorded nprobes (the trade-off; at
  most every partition);
- `fixed (50k choice)`: the settings the pipeline used before, chosen on 50,000 pairs
  (LanceDB's own ~8k-row partitions, nprobes 4, refine 5).

Latency is single-query `nearest` calls (the settings of one index take turns over ROUNDS
rounds, after a warm-up). SIGMA sets the clusters' spread: 1.2 reproduces the measurement
the retrieval issue was filed with (1M rows, nprobes 4: recall@10 0.768 there, 0.74 here).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from synpref.lake import Lake
from synpref.silver.vectors import (IndexConfig, build_index, index_settings, nearest, open_table,
                                    vector_array, write_embeddings)

HERE = Path(__file__).resolve().parent
WORK = HERE / "_work" / "retrieval_scale"
RESULTS = HERE / "results"
DIM, CLUSTERS, CATEGORIES, SIGMA = 384, 2000, 12, 1.2
K = 10
ROUNDS = 3
CHUNK = 250_000
FIXED_50K = "fixed (50k choice)"


def clustered(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors of the mixture and their categories (the mixture is the same for any seed)."""
    mixture = np.random.default_rng(0)
    centres = mixture.normal(size=(CLUSTERS, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    dominant = mixture.integers(0, CATEGORIES, CLUSTERS)
    rng = np.random.default_rng(seed)
    vectors, categories = np.empty((n, DIM), np.float32), np.empty(n, np.int16)
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        cluster = rng.integers(0, CLUSTERS, m)
        x = centres[cluster] + rng.normal(size=(m, DIM)).astype(np.float32) * (SIGMA / np.sqrt(DIM))
        vectors[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
        categories[start:start + m] = np.where(rng.random(m) < 0.7, dominant[cluster],
                                               rng.integers(0, CATEGORIES, m))
    return vectors, categories


def pool_lake(rows: int, vectors: np.ndarray, categories: np.ndarray, log) -> Lake:
    """The lake holding this size's table, written once (a marker says it is whole)."""
    lake = Lake.at(WORK / f"lake_{rows}")
    marker = lake.root / "written.json"
    params = {"rows": rows, "dim": DIM, "clusters": CLUSTERS, "sigma": SIGMA}
    if marker.exists() and json.loads(marker.read_text()) == params:
        return lake
    shutil.rmtree(lake.root, ignore_errors=True)
    start = time.perf_counter()
    for first in range(0, rows, CHUNK):
        last = min(rows, first + CHUNK)
        write_embeddings(lake, pa.table({
            "pair_id": [f"p{i}" for i in range(first, last)],
            "vector": vector_array(vectors[first:last]),
            "task_category": [f"c{c}" for c in categories[first:last]],
        }), mode="overwrite" if first == 0 else "append")
    open_table(lake).optimize()
    marker.write_text(json.dumps(params))
    log(f"  wrote {rows:,} rows in {time.perf_counter() - start:.0f} s")
    return lake


def exact_top(queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Per query, the row numbers of its K nearest (cosine) by numpy, a chunk at a time."""
    best = np.full((len(queries), 0), -np.inf, np.float32)
    ids = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(vectors), CHUNK):
        chunk = vectors[start:start + CHUNK]
        sims = np.concatenate([best, queries @ chunk.T], axis=1)
        span = np.concatenate([ids, np.broadcast_to(np.arange(start, start + len(chunk)),
                                                    (len(queries), len(chunk)))], axis=1)
        top = np.argpartition(-sims, K, axis=1)[:, :K]
        best, ids = np.take_along_axis(sims, top, 1), np.take_along_axis(span, top, 1)
    return ids


def exact_truth(queries, query_categories, vectors, categories) -> tuple[list[set[str]], list[set[str]]]:
    """Plain and filtered (the query's own category) truth, as sets of pair ids."""
    plain = [{f"p{i}" for i in row} for row in exact_top(queries, vectors)]
    filtered: list[set[str]] = [set() for _ in queries]
    for category in np.unique(query_categories):
        members = np.flatnonzero(categories == category)
        which = np.flatnonzero(query_categories == category)
        for q, row in zip(which, exact_top(queries[which], vectors[members])):
            filtered[q] = {f"p{members[i]}" for i in row}
    return plain, filtered


def recall(found: list[list[tuple[str, float]]], truth: list[set[str]]) -> float:
    return float(np.mean([len({p for p, _ in hits} & t) / len(t) for hits, t in zip(found, truth)]))


def latencies_ms(table, queries: np.ndarray, configs: list[IndexConfig]) -> list[np.ndarray]:
    for config in configs:
        for q in queries[:10]:
            nearest(table, q[None], K, config=config)
    times: list[list[float]] = [[] for _ in configs]
    for _ in range(ROUNDS):
        for config, config_times in zip(configs, times):
            for q in queries:
                start = time.perf_counter()
                nearest(table, q[None], K, config=config)
                config_times.append((time.perf_counter() - start) * 1000)
    return [np.array(t) for t in times]


def measure(lake: Lake, kind: str, configs: list[IndexConfig], built: dict, queries, wheres,
            truth, truth_filtered) -> list[dict]:
    """One row per search config on the index just built."""
    table = open_table(lake)
    recorded = index_settings(table)
    rows = []
    for config, ms in zip(configs, latencies_ms(table, queries, configs)):
        plain = [nearest(table, q[None], K, config=config)[0] for q in queries]
        filtered = [nearest(table, q[None], K, where=w, config=config)[0] for q, w in zip(queries, wheres)]
        nprobes = config.nprobes or recorded.nprobes
        rows.append(result_row(kind if config.nprobes is None else f"{kind}, nprobes {nprobes}", built,
                               replace(recorded, nprobes=nprobes), recall(plain, truth),
                               recall(filtered, truth_filtered), ms))
    return rows


def result_row(kind: str, built: dict, settings, recall_plain: float, recall_filtered: float,
               ms: np.ndarray) -> dict:
    """One row of results/retrieval_scale.json."""
    return {
        "rows": built["rows"], "kind": kind, "index": built["kind"], "num_partitions": settings.num_partitions,
        "nprobes": settings.nprobes, "refine": settings.refine_factor,
        "recall_at_10": round(recall_plain, 4), "recall_at_10_filtered": round(recall_filtered, 4),
        "p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "build_s": round(built["seconds"], 1),
        "sampled_recall_at_build": built.get("sampled_recall_at_10"),
        "sampled_recall_at_build_filtered": built.get("sampled_recall_at_10_filtered"),
    }


def run_size(rows: int, n_queries: int, log) -> list[dict]:
    log(f"{rows:,} rows")
    vectors, categories = clustered(rows, seed=1)
    queries, query_categories = clustered(n_queries, seed=2)
    lake = pool_lake(rows, vectors, categories, log)
    start = time.perf_counter()
    truth, truth_filtered = exact_truth(queries, query_categories, vectors, categories)
    log(f"  exact truth in {time.perf_counter() - start:.0f} s")
    wheres = [f"task_category = 'c{c}'" for c in query_categories]
    del vectors
    out = []
    defaults = IndexConfig()
    built = build_index(lake, defaults, log=lambda msg: log(f"  {msg}"))
    recorded = index_settings(open_table(lake))
    others = sorted({max(1, recorded.nprobes // 2), min(recorded.num_partitions, recorded.nprobes * 2)}
                    - {recorded.nprobes})
    configs = [defaults] + [replace(defaults, nprobes=n) for n in others]
    out += measure(lake, "defaults", configs, built, queries, wheres, truth, truth_filtered)
    for row in out:
        log("  " + _line(row))
    fixed = IndexConfig(num_partitions=max(1, round(rows / 8192)), nprobes=4, recall_sample=0)
    built = build_index(lake, fixed)
    out += measure(lake, FIXED_50K, [fixed], built, queries, wheres, truth, truth_filtered)
    out[-1]["kind"] = FIXED_50K
    log("  " + _line(out[-1]))
    return out


def _line(row: dict) -> str:
    return (f"{row['kind']}: partitions {row['num_partitions']}, nprobes {row['nprobes']}, "
            f"recall@10 {row['recall_at_10']:.3f} / filtered {row['recall_at_10_filtered']:.3f}, "
            f"p50 {row['p50_ms']:.1f} ms, p95 {row['p95_ms']:.1f} ms, build {row['build_s']:.0f} s")


def markdown(result: dict) -> str:
    lines = [
        f"Machine: {result['machine']}; load average {result['load_before']} before, "
        f"{result['load_after']} after. {result['queries']} held-out queries per size, "
        f"k={K}, cosine; clustered vectors ({DIM}-d, {CLUSTERS} clusters, sigma {SIGMA}); filtered: "
        "each query's own task_category (about 1/12 of rows and 70% of its cluster).",
        "",
        "| rows | search | partitions | nprobes | refine | recall@10 | recall@10 filtered | p50 ms "
        "| p95 ms | build s | sampled recall at build |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        sampled = "" if r["sampled_recall_at_build"] is None else f"{r['sampled_recall_at_build']:.3f}"
        lines.append(f"| {r['rows']:,} | {r['kind']} | {r['num_partitions']:,} | {r['nprobes']} | {r['refine']} "
                     f"| {r['recall_at_10']:.3f} | {r['recall_at_10_filtered']:.3f} | {r['p50_ms']:.1f} "
                     f"| {r['p95_ms']:.1f} | {r['build_s']:.0f} | {sampled} |")
    return "\n".join(lines) + "\n"


def run(sizes: list[int], n_queries: int, machine: str) -> dict:
    WORK.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("LANCE_INCLUDE_VECTOR_CENTROIDS", "false")  # silences a per-stats warning
    started = time.perf_counter()
    before = os.getloadavg()
    rows: list[dict] = []
    for size in sizes:
        for row in run_size(size, n_queries, lambda msg: print(msg, flush=True)):
            rows.append({**row, "load_average": round(os.getloadavg()[0], 2)})
    result = {"machine": machine, "queries": n_queries, "k": K, "dim": DIM, "clusters": CLUSTERS,
              "sigma": SIGMA, "load_before": round(before[0], 2), "load_after": round(os.getloadavg()[0], 2),
              "minutes": round((time.perf_counter() - started) / 60, 1), "rows": rows}
    return result


def write(result: dict, real: list[dict] | None = None) -> None:
    """results/retrieval_scale.json and .md (the real-pair rows appended when given)."""
    if real:
        result = {**result, "rows": result["rows"] + real}
    (RESULTS / "retrieval_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "retrieval_scale.md").write_text(markdown(result))


def real_pair_rows(lake: Lake, pairs: dict, embedders: dict, n_queries: int, log) -> list[dict]:
    """The pipeline's index over the real pairs' vectors from each embedder, recall against
    exact search on the reference (first) embedder's fp32 vectors; each query is a stored
    pair (its own row left out of both sides), filtered to its own source."""
    import models.embedder as embedding

    texts = [embedding.pair_text(c) for c in pairs["conversation"]]
    ids, sources = pairs["pair_id"], np.array(pairs["source"])
    vectors = {name: make().embed(texts) for name, make in embedders.items()}
    reference = next(iter(vectors.values()))
    picks = np.random.default_rng(3).choice(len(ids), size=min(n_queries, len(ids)), replace=False)
    truth, truth_filtered = [], []
    for q in picks:
        sims = reference @ reference[q]
        sims[q] = -np.inf
        truth.append({ids[i] for i in np.argsort(-sims)[:K]})
        sims[sources != sources[q]] = -np.inf
        truth_filtered.append({ids[i] for i in np.argsort(-sims)[:K]})
    rows = []
    for name, vecs in vectors.items():
        shutil.rmtree(lake.root / "lancedb", ignore_errors=True)
        write_embeddings(lake, pa.table({"pair_id": ids, "vector": vector_array(vecs),
                                         "task_category": list(sources)}), mode="overwrite")
        built = build_index(lake, IndexConfig(min_rows_for_index=0))
        table = open_table(lake)
        config = IndexConfig()
        plain = [_without(ids[q], nearest(table, vecs[q][None], K + 1, config=config)[0]) for q in picks]
        filtered = [_without(ids[q], nearest(table, vecs[q][None], K + 1, where=f"task_category = '{sources[q]}'",
                                             config=config)[0]) for q in picks]
        (ms,) = latencies_ms(table, vecs[picks], [config])
        rows.append(result_row(f"real pairs, {name} vectors", built, index_settings(table),
                               recall(plain, truth), recall(filtered, truth_filtered), ms))
        log(_line(rows[-1]))
    return rows


def _without(pair_id: str, hits: list[tuple[str, float]]) -> list[tuple[str, float]]:
    return [hit for hit in hits if hit[0] != pair_id][:K]
