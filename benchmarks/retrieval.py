"""Benchmark: MiniLM embedding throughput and the choice of LanceDB ANN index for retrieval.

    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python benchmarks/retrieval.py --pairs 50000
    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python benchmarks/retrieval.py --scale \
        --rows 100000 1000000 4000000

`--scale` (benchmarks/retrieval_scale.py) measures the pipeline's own index settings on
generated clustered vectors at pool sizes, then on the real pairs of ../shared/data embedded
by the PyTorch and the CPU default embedders, and writes results/retrieval_scale.json.
The default mode, below, compares index kinds on one table of MiniLM-embedded pairs.

Texts are `pair_text` of the first pairs of the silver table made by
benchmarks/silver_stage.py (n1000000), else of freshly generated demo pairs. It measures
embedding throughput on a sample with 1 and 2 torch threads, embeds every pair (cached in
benchmarks/_work/retrieval/ for reruns), then builds each candidate index over the pairs and
measures build time, recall@10 against exact search over held-out queries (also with a
selective task_category prefilter) and single-query latency (the settings of one index take
turns over ROUNDS rounds); each index is also built over as many random unit vectors, a
worst case (no cluster structure). The pick is the config with the lowest p50 among those
reaching recall@10 >= 0.95 on the pairs (filtered too) and >= 0.5 on random vectors.
Prints a markdown table and writes it to
benchmarks/_work/retrieval/retrieval.md. `--sample 0` skips the throughput runs.
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
from synpref.silver.vectors import (IndexConfig, build_index, nearest, open_table,  # noqa: E402
                             vector_array, write_embeddings)

WORK = HERE / "_work" / "retrieval"
SILVER = HERE / "_work" / "n1000000" / "lake" / "silver" / "silver_pairs"
K = 10
RECALL_TARGET = 0.95  # on the MiniLM pairs, with and without the filter
# On random vectors too: generated pairs cluster tightly (few probes find everything), real
# pools less so; an index that keeps half its recall with no structure at all is safe there.
WORST_CASE_FLOOR = 0.5

ROUNDS = 3  # latency rounds; the settings of one index take turns so background load hits all alike

# (label, index to build, search settings tried on it). refine None: 1 (only re-ranks the k
# results it already has). Partitions left None are LanceDB's own choice (`lancedb_partitions`):
# ~8k rows for IVF_FLAT/SQ/PQ (6 partitions at 50k) and ~1M for IVF_HNSW (one partition below
# that, so its rows vary refine and ef, not nprobes). "the pipeline's rule" is IndexConfig():
# partitions and nprobes from the row count (see --scale).
CANDIDATES: list[tuple[str, IndexConfig, list[dict]]] = [
    ("the pipeline's rule", IndexConfig(), [dict()]),
    ("IVF_PQ", IndexConfig(kind="IVF_PQ"),
     [dict(nprobes=32, refine_factor=10), dict(nprobes=64, refine_factor=20)]),
    ("IVF_FLAT", IndexConfig(kind="IVF_FLAT"),
     [dict(nprobes=n, refine_factor=None) for n in (1, 2, 4)]),
    ("IVF_SQ", IndexConfig(kind="IVF_SQ"),
     [dict(nprobes=n, refine_factor=5) for n in (1, 2, 4)]),
    ("IVF_SQ 64 partitions", IndexConfig(kind="IVF_SQ", num_partitions=64),
     [dict(nprobes=n, refine_factor=5) for n in (4, 8, 16)]),
    ("IVF_HNSW_SQ", IndexConfig(kind="IVF_HNSW_SQ"),
     [dict(nprobes=1, refine_factor=r) for r in (None, 2, 5, 10)]
     + [dict(nprobes=1, refine_factor=10, ef=500)]),
    ("IVF_HNSW_SQ 4 partitions", IndexConfig(kind="IVF_HNSW_SQ", num_partitions=4),
     [dict(nprobes=n, refine_factor=2) for n in (1, 2, 4)]),
    ("IVF_HNSW_PQ", IndexConfig(kind="IVF_HNSW_PQ"),
     [dict(nprobes=1, refine_factor=r) for r in (10, 30)]),
]


def lancedb_partitions(index: IndexConfig, rows: int) -> IndexConfig:
    """The candidate with LanceDB's own partition count where it names none (the pipeline's
    rule would otherwise size it: IndexConfig leaves None to plan_index)."""
    if index.num_partitions or index == IndexConfig():
        return index
    return replace(index, num_partitions=1 if "HNSW" in index.kind else max(1, round(rows / 8192)))


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
    from synpref.raw.ingest import ingest_sources
    from synpref.silver.pool import build_silver
    from synpref.raw.sources import load_sources

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


def embed_all(pair_ids: list[str], texts: list[str], threads: int) -> tuple[np.ndarray, float, int]:
    """All vectors (from the cache when it holds these pairs), the pairs/s and threads it took."""
    cache = WORK / f"embeddings_{len(texts)}.npz"
    if cache.exists():
        saved = np.load(cache)
        if saved["pair_ids"].tolist() == pair_ids:
            return saved["vectors"], float(saved["pairs_per_s"]), int(saved["threads"])
    embedder = Embedder(EmbedderConfig(threads=threads))
    start = time.perf_counter()
    vectors = np.concatenate([embedder.embed(texts[i:i + 5000]) for i in range(0, len(texts), 5000)])
    rate = len(texts) / (time.perf_counter() - start)
    np.savez(cache, pair_ids=np.array(pair_ids), vectors=vectors, pairs_per_s=rate, threads=threads)
    return vectors, rate, threads


def write_lake(name: str, pair_ids, texts, categories, vectors) -> Lake:
    lake = Lake.at(WORK / name)
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


def latencies_ms(table, queries: np.ndarray, configs: list[IndexConfig],
                exact: bool = False) -> list[np.ndarray]:
    """Single-query latencies per config, the configs taking turns over ROUNDS rounds."""
    for config in configs:
        for q in queries[:10]:  # warm the index cache
            nearest(table, q[None], K, config=config, exact=exact)
    times: list[list[float]] = [[] for _ in configs]
    for _ in range(ROUNDS):
        for config, config_times in zip(configs, times):
            for q in queries:
                start = time.perf_counter()
                nearest(table, q[None], K, config=config, exact=exact)
                config_times.append((time.perf_counter() - start) * 1000)
    return [np.array(t) for t in times]


def measured(ms: np.ndarray) -> dict:
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def random_unit(n: int, dim: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def run_candidates(lake: Lake, queries: np.ndarray, where: str, stress: Lake) -> list[dict]:
    """Each index built on the pairs (recall, latency) and on random vectors (recall only)."""
    table = open_table(lake)
    stress_queries = random_unit(len(queries), queries.shape[1], seed=1)
    (flat_ms,) = latencies_ms(table, queries, [IndexConfig()], exact=True)
    rows = [{"label": "exact (no index)", "search": "flat scan", "build_s": 0.0, "recall": 1.0,
             "recall_filtered": 1.0, "recall_random": 1.0, **measured(flat_ms)}]
    print(_row(rows[-1]), flush=True)
    for label, index, settings in CANDIDATES:
        index = replace(lancedb_partitions(index, open_table(lake).count_rows()), min_rows_for_index=0)
        built = build_index(lake, index)
        build_index(stress, replace(index, recall_sample=0))
        table, stress_table = open_table(lake), open_table(stress)
        configs = [replace(index, **setting) for setting in settings]
        for setting, config, ms in zip(settings, configs, latencies_ms(table, queries, configs)):
            rows.append({"label": label, "search": _setting(setting), "build_s": built["seconds"],
                         "config": asdict(config), "recall": recall(table, queries, config, None),
                         "recall_filtered": recall(table, queries, config, where),
                         "recall_random": recall(stress_table, stress_queries, config, None),
                         **measured(ms)})
            print(_row(rows[-1]), flush=True)
    return rows


def _setting(setting: dict) -> str:
    if not setting:
        return "as recorded by the build"
    ef = f", ef {setting['ef']}" if setting.get("ef") else ""
    return f"nprobes {setting['nprobes']}, refine {setting['refine_factor'] or 1}{ef}"


def _row(r: dict) -> str:
    return (f"| {r['label']} | {r['search']} | {r['build_s']:.1f} | {r['recall']:.3f} | "
            f"{r['recall_filtered']:.3f} | {r['recall_random']:.3f} | {r['p50_ms']:.1f} | "
            f"{r['p95_ms']:.1f} |")


def pick(rows: list[dict]) -> dict | None:
    good = [r for r in rows if "config" in r and min(r["recall"], r["recall_filtered"]) >= RECALL_TARGET
            and r["recall_random"] >= WORST_CASE_FLOOR]
    return min(good, key=lambda r: r["p50_ms"]) if good else None


def scale(sizes: list[int], n_queries: int, part: str) -> None:
    """--scale: the generated sizes and the real pairs (part "all"), or one of them ("generated",
    "real"), the other part's rows kept from the last results file."""
    import duckdb

    import retrieval_scale
    from rm_accuracy import SHARED, build_lake

    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    last = retrieval_scale.RESULTS / "retrieval_scale.json"
    kept = json.loads(last.read_text()) if last.exists() and part != "all" else None
    if part == "real" and kept:
        result = {**kept, "rows": [r for r in kept["rows"] if not r["kind"].startswith("real pairs")]}
    else:
        result = retrieval_scale.run(sizes, n_queries, machine)
        if kept:  # the sizes not rerun keep their rows (and the file says which run made which)
            others = [r for r in kept["rows"] if not r["kind"].startswith("real pairs") and r["rows"] not in sizes]
            result["rows"] = sorted(others + result["rows"], key=lambda r: r["rows"])
    real = []
    if part == "generated" and kept:
        real = [r for r in kept["rows"] if r["kind"].startswith("real pairs")]
    elif part != "generated" and SHARED.is_dir():
        lake = Lake.at(retrieval_scale.WORK / "real_pairs")
        build_lake(lake, SHARED, retrieval_scale.WORK)
        pairs = duckdb.sql(f"select pair_id, conversation, source from read_parquet('{lake.table_glob('silver_pairs')}') "
                           "order by pair_id").fetch_arrow_table().to_pydict()
        print(f"real pairs: {len(pairs['pair_id']):,} silver pairs of {SHARED}", flush=True)
        reference, default = Embedder(EmbedderConfig(backend="torch")), Embedder(EmbedderConfig())
        embedders = {"PyTorch fp32": lambda: reference,
                     f"{default.backend} {default.precision} (the CPU default)": lambda: default}
        real = retrieval_scale.real_pair_rows(lake, pairs, embedders, n_queries, lambda m: print(m, flush=True))
    retrieval_scale.write(result, real)
    print((retrieval_scale.RESULTS / "retrieval_scale.md").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sample", type=int, default=3000, help="texts for the throughput runs")
    parser.add_argument("--scale", action="store_true", help="the pool-size mode (see above)")
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 4_000_000],
                        help="--scale: table sizes")
    parser.add_argument("--part", choices=["all", "generated", "real"], default="all",
                        help="--scale: both parts, or one (the other's rows kept from the last results)")
    args = parser.parse_args()
    if args.scale:
        scale(args.rows, args.queries, args.part)
        return
    WORK.mkdir(parents=True, exist_ok=True)

    pair_ids, texts, categories = load_texts(args.pairs + args.queries)
    rates = {t: throughput(texts[: args.sample], t) for t in (1, 2)} if args.sample else {}
    best_threads = max(rates, key=rates.get) if rates else 1
    for t, rate in rates.items():
        print(f"throughput, {t} torch thread(s), {args.sample:,} texts: {rate:.0f} pairs/s", flush=True)
    vectors, full_rate, best_threads = embed_all(pair_ids, texts, best_threads)
    print(f"embedded all {len(texts):,} pairs at {full_rate:.0f} pairs/s "
          f"({best_threads} thread(s))", flush=True)

    n = args.pairs  # the last `queries` pairs are held out as queries
    lake = write_lake("lake", pair_ids[:n], texts[:n], categories[:n], vectors[:n])
    stress = write_lake("stress_lake", pair_ids[:n], texts[:n], categories[:n],
                        random_unit(n, vectors.shape[1], seed=0))
    rarest = min(set(categories[:n]), key=categories[:n].count)
    where = f"task_category = '{rarest}'"
    share = categories[:n].count(rarest) / n
    header = ("| index | search | build s | recall@10 | recall@10 filtered | recall@10 random "
              "| p50 ms | p95 ms |\n|---|---|---:|---:|---:|---:|---:|---:|")
    print(header, flush=True)
    rows = run_candidates(lake, vectors[n:], where, stress)
    best = pick(rows)

    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{n:,} pairs x {vectors.shape[1]}-d MiniLM vectors, {len(vectors) - n} held-out queries, k={K}, "
        f"cosine. Filtered: prefilter `{where}` ({share:.1%} of rows). Random: the same index "
        f"over {n:,} random unit vectors, {len(vectors) - n} random queries (recall only).",
        "",
        *[f"Embedding throughput ({args.sample:,} texts, {t} torch thread(s)): {rate:.0f} pairs/s"
          for t, rate in rates.items()],
        f"All {len(texts):,} texts ({best_threads} thread(s)): {full_rate:.0f} pairs/s",
        "", header, *map(_row, rows), "",
        f"Pick (lowest p50 with recall@10 >= {RECALL_TARGET} with and without the filter, and >= "
        f"{WORST_CASE_FLOOR} on random vectors): "
        + (f"{best['label']}, {best['search']} -> {json.dumps(best['config'])}" if best else "none"),
    ]
    report = "\n".join(lines)
    (WORK / "retrieval.md").write_text(report + "\n")
    print("\n" + report)


if __name__ == "__main__":
    main()
