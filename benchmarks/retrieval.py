"""Benchmark: MiniLM embedding throughput and the choice of LanceDB ANN index for retrieval.

    HF_HUB_OFFLINE=1 PYTHONPATH=. /tmp/fullvenv/bin/python benchmarks/retrieval.py --pairs 50000

Texts are `pair_text` of the first pairs of the silver table made by
benchmarks/silver_stage.py (n1000000), else of freshly generated demo pairs. It measures
embedding throughput on a sample with 1 and 2 torch threads, embeds every pair (cached in
benchmarks/_work/retrieval/ for reruns), then builds each candidate index over the pairs and
measures build time, recall@10 against exact search over held-out queries (also with a
selective task_category prefilter) and single-query latency. The pick is the config with the
lowest p50 among those reaching recall@10 >= 0.95 (filtered too). Prints a markdown table and
writes it to benchmarks/_work/retrieval/retrieval.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from models.embedder import Embedder, EmbedderConfig, pair_text  # noqa: E402
from synpref.lake import Lake  # noqa: E402
from synpref.vectors import (IndexConfig, build_index, nearest, open_table,  # noqa: E402
                             vector_array, write_embeddings)

WORK = HERE / "_work" / "retrieval"
SILVER = HERE / "_work" / "n1000000" / "lake" / "silver" / "silver_pairs"
K = 10
RECALL_TARGET = 0.95

# (label, index to build, search settings tried on it). nprobes None / refine None:
# LanceDB's own search defaults (refine 1 only re-ranks the k results it already has).
CANDIDATES: list[tuple[str, IndexConfig, list[dict]]] = [
    ("IVF_PQ defaults", IndexConfig(kind="IVF_PQ"), [dict(nprobes=None, refine_factor=None)]),
    ("IVF_PQ", IndexConfig(kind="IVF_PQ"),
     [dict(nprobes=32, refine_factor=10), dict(nprobes=64, refine_factor=20)]),
    ("IVF_FLAT", IndexConfig(kind="IVF_FLAT"),
     [dict(nprobes=n, refine_factor=None) for n in (8, 16, 32)]),
    ("IVF_SQ", IndexConfig(kind="IVF_SQ"),
     [dict(nprobes=n, refine_factor=r) for n, r in ((8, 5), (16, 5), (16, 10))]),
    ("IVF_HNSW_SQ", IndexConfig(kind="IVF_HNSW_SQ"),
     [dict(nprobes=n, refine_factor=r) for n, r in ((1, 2), (1, 5), (4, 5), (8, 5), (16, 10))]),
    ("IVF_HNSW_SQ 4 partitions", IndexConfig(kind="IVF_HNSW_SQ", num_partitions=4),
     [dict(nprobes=n, refine_factor=r) for n, r in ((1, 5), (2, 5), (4, 5))]),
    ("IVF_HNSW_PQ", IndexConfig(kind="IVF_HNSW_PQ"),
     [dict(nprobes=n, refine_factor=r) for n, r in ((4, 10), (16, 10))]),
]


def load_texts(n: int) -> tuple[list[str], list[str], list[str]]:
    """pair_id, text and a category for n pairs (the source, a selective filter here)."""
    if SILVER.is_dir():
        frame = pl.scan_parquet(str(SILVER / "*.parquet")).select(
            "pair_id", "source", "conversation").head(n).collect()
        origin = f"silver_pairs of {SILVER.parent.parent.parent.name}"
    else:
        frame, origin = generated_pairs(n), "generated demo pairs"
    print(f"texts: {frame.height:,} pairs from {origin}", flush=True)
    texts = [pair_text(c) for c in frame["conversation"].to_list()]
    return frame["pair_id"].to_list(), texts, frame["source"].to_list()


def generated_pairs(n: int) -> pl.DataFrame:
    """Demo pairs through ingest and silver, when the silver benchmark has not been run."""
    from synpref.demo import generate_demo
    from synpref.ingest import ingest_sources
    from synpref.silver import build_silver
    from synpref.sources import load_sources

    landing, lake = WORK / "demo_landing", Lake.at(WORK / "demo_lake")
    generate_demo(landing, pairs=int(n * 1.1), seed=0)  # ~6% of records are planted defects
    config = load_sources(landing / "sources.yaml")
    ingest_sources(lake, config)
    build_silver(lake, config.decontamination)
    return pl.read_parquet(lake.table_glob("silver_pairs")).select(
        "pair_id", "source", "conversation").head(n)


def throughput(texts: list[str], threads: int) -> float:
    embedder = Embedder(EmbedderConfig(threads=threads))
    embedder.embed(texts[:64])  # warm-up
    start = time.perf_counter()
    embedder.embed(texts)
    return len(texts) / (time.perf_counter() - start)


def embed_all(pair_ids: list[str], texts: list[str], threads: int) -> tuple[np.ndarray, float]:
    """All vectors, from the cache when it holds these pairs; and the pairs/s it took."""
    cache = WORK / f"embeddings_{len(texts)}.npz"
    if cache.exists():
        saved = np.load(cache)
        if saved["pair_ids"].tolist() == pair_ids:
            return saved["vectors"], float(saved["pairs_per_s"])
    embedder = Embedder(EmbedderConfig(threads=threads))
    start = time.perf_counter()
    vectors = np.concatenate([embedder.embed(texts[i:i + 5000]) for i in range(0, len(texts), 5000)])
    rate = len(texts) / (time.perf_counter() - start)
    np.savez(cache, pair_ids=np.array(pair_ids), vectors=vectors, pairs_per_s=rate)
    return vectors, rate


def write_lake(pair_ids, texts, categories, vectors) -> Lake:
    lake = Lake.at(WORK / "lake")
    shutil.rmtree(lake.root, ignore_errors=True)
    rows = pa.table({"pair_id": pair_ids, "vector": vector_array(vectors),
                     "task_category": categories, "text": texts})
    write_embeddings(lake, rows, mode="overwrite")
    return lake


def recall(table, queries: np.ndarray, config: IndexConfig, where: str | None) -> float:
    approx = nearest(table, queries, K, where=where, config=config)
    exact = nearest(table, queries, K, where=where, config=config, exact=True)
    return float(np.mean([len({p for p, _ in a} & {p for p, _ in e}) / len(e)
                          for a, e in zip(approx, exact)]))


def latencies_ms(table, queries: np.ndarray, config: IndexConfig, exact: bool = False) -> np.ndarray:
    for q in queries[:10]:  # warm the index cache
        nearest(table, q[None], K, config=config, exact=exact)
    times = []
    for q in queries:
        start = time.perf_counter()
        nearest(table, q[None], K, config=config, exact=exact)
        times.append((time.perf_counter() - start) * 1000)
    return np.array(times)


def evaluate(table, queries, config, where, exact=False) -> dict:
    ms = latencies_ms(table, queries, config, exact)
    return {"recall": 1.0 if exact else recall(table, queries, config, None),
            "recall_filtered": 1.0 if exact else recall(table, queries, config, where),
            "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def run_candidates(lake: Lake, queries: np.ndarray, where: str) -> list[dict]:
    table = open_table(lake)
    rows = [{"label": "exact (no index)", "search": "flat scan", "build_s": 0.0,
             **evaluate(table, queries, IndexConfig(), where, exact=True)}]
    print(_row(rows[-1]), flush=True)
    for label, index, settings in CANDIDATES:
        built = build_index(lake, replace(index, min_rows_for_index=0))
        table = open_table(lake)
        for setting in settings:
            config = replace(index, **setting)
            rows.append({"label": label, "search": _setting(setting), "build_s": built["seconds"],
                         "config": asdict(config), **evaluate(table, queries, config, where)})
            print(_row(rows[-1]), flush=True)
    return rows


def _setting(setting: dict) -> str:
    if setting["nprobes"] is None:
        return "LanceDB defaults"
    return f"nprobes {setting['nprobes']}, refine {setting['refine_factor'] or 1}"


def _row(r: dict) -> str:
    return (f"| {r['label']} | {r['search']} | {r['build_s']:.1f} | {r['recall']:.3f} | "
            f"{r['recall_filtered']:.3f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} |")


def pick(rows: list[dict]) -> dict | None:
    good = [r for r in rows if "config" in r
            and min(r["recall"], r["recall_filtered"]) >= RECALL_TARGET]
    return min(good, key=lambda r: r["p50_ms"]) if good else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sample", type=int, default=3000, help="texts for the throughput runs")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)

    pair_ids, texts, categories = load_texts(args.pairs + args.queries)
    rates = {t: throughput(texts[: args.sample], t) for t in (1, 2)}
    best_threads = max(rates, key=rates.get)
    for t, rate in rates.items():
        print(f"throughput, {t} torch thread(s), {args.sample:,} texts: {rate:.0f} pairs/s", flush=True)
    vectors, full_rate = embed_all(pair_ids, texts, best_threads)
    print(f"embedded all {len(texts):,} pairs at {full_rate:.0f} pairs/s "
          f"({best_threads} thread(s))", flush=True)

    n = args.pairs  # the last `queries` pairs are held out as queries
    lake = write_lake(pair_ids[:n], texts[:n], categories[:n], vectors[:n])
    rarest = min(set(categories[:n]), key=categories[:n].count)
    where = f"task_category = '{rarest}'"
    share = categories[:n].count(rarest) / n
    header = ("| index | search | build s | recall@10 | recall@10 filtered | p50 ms | p95 ms |\n"
              "|---|---|---:|---:|---:|---:|---:|")
    print(header, flush=True)
    rows = run_candidates(lake, vectors[n:], where)
    best = pick(rows)

    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{n:,} pairs x {vectors.shape[1]}-d MiniLM vectors, {len(vectors) - n} held-out queries, k={K}, "
        f"cosine. Filtered: prefilter `{where}` ({share:.1%} of rows).",
        "",
        *[f"Embedding throughput ({args.sample:,} texts, {t} torch thread(s)): {rate:.0f} pairs/s"
          for t, rate in rates.items()],
        f"All {len(texts):,} texts ({best_threads} thread(s)): {full_rate:.0f} pairs/s",
        "", header, *map(_row, rows), "",
        f"Pick (recall@10 >= {RECALL_TARGET} with and without the filter, lowest p50): "
        + (f"{best['label']}, {best['search']} -> {json.dumps(best['config'])}" if best else "none"),
    ]
    report = "\n".join(lines)
    (WORK / "retrieval.md").write_text(report + "\n")
    print("\n" + report)


if __name__ == "__main__":
    main()
