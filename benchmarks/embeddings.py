"""Benchmark: pair embeddings on the CPU, the PyTorch path against the OpenVINO one (fp32 and int8),
side by side in one run on the real pairs of ../shared/data.

    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python benchmarks/embeddings.py --threads 2

The texts are `pair_text` of every silver pair made from ../shared/data (hh-rlhf harmless-base
test + the eight LLMBar sets, ingested raw -> silver as the pipeline does, into a lake under
benchmarks/_work/embeddings/; 3,181 pairs), as the embeddings stage renders them (conversation,
no attributes). Each backend is `models.embedder.Embedder` with the same model, batch size and
thread count (torch's intra-op threads and OpenVINO's inference threads): torch (today's path:
sentence-transformers, which batches an embed call's texts sorted by characters), openvino fp32
and openvino int8 (which batch by tokens), and two rows that swap the batching, to tell its
share of the gain from the backend's: openvino int8 batched by characters, and torch fed
batches of equal token counts. The OpenVINO models are made first in a fresh cache folder
(their one-off export time is reported), then every backend embeds 64 texts to warm up, then
the texts are embedded in blocks of 1,024 (one embed call each, as the embeddings stage makes),
every backend in turn on the same block (the order rotating from block to block), so background
load falls on all alike. Reported per backend: pairs/s over all blocks and its ratio to torch
(also the median of the per-block ratios), the cosine of each vector with the torch fp32 one
(min, 1st percentile, mean), and recall@10 of exact search with its vectors against exact
search with the torch vectors (every text a query against all others: the neighbour sets of
numpy dot products, so it measures the vectors, not an index), with the share of its 10 nearest
that are among torch's 20 nearest (how far a miss goes).
Writes benchmarks/results/embeddings.json and embeddings.md and prints the load average
(`uptime`) with the figures; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from models.embedder import Embedder, EmbedderConfig, pair_text  # noqa: E402

WORK = HERE / "_work" / "embeddings"
SHARED = HERE.parent.parent / "shared" / "data"
RESULTS = HERE / "results"
K = 10
TARGET_SPEEDUP, TARGET_COSINE = 3.0, 0.99
# (label, backend, precision, batches): "as is" is the backend's own batching (sentence-transformers
# sorts an embed call's texts by characters, the OpenVINO path by tokens); the two other rows
# swap that, to tell the gain of batching by tokens from the gain of the backend
VARIANTS = (("torch", "torch", "fp32", "as is"),
            ("openvino fp32", "openvino", "fp32", "as is"),
            ("openvino int8", "openvino", "int8", "as is"),
            ("openvino int8, batches by characters", "openvino", "int8", "chars"),
            ("torch, batches by tokens", "torch", "fp32", "tokens"))


def load_texts(data: Path, limit: int | None) -> tuple[list[str], list[str]]:
    """`pair_text` and source of the silver pairs of the real data (ingested once under WORK)."""
    import duckdb

    from rm_accuracy import build_lake  # the same raw -> silver of the real pairs
    from synpref.lake import Lake
    from synpref.lake.duck import lit

    lake = Lake.at(WORK / "lake")
    build_lake(lake, data, WORK)
    rows = duckdb.sql(f"select conversation, source from read_parquet({lit(lake.table_glob('silver_pairs'))}) "
                      "order by pair_id").fetchall()
    rows = rows[:limit] if limit else rows
    return [pair_text(conversation) for conversation, _ in rows], [source for _, source in rows]


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def cosine_figures(vectors: np.ndarray, reference: np.ndarray) -> dict:
    cosine = np.sum(vectors * reference, axis=1)
    return {"min": float(cosine.min()), "p1": float(np.percentile(cosine, 1)), "mean": float(cosine.mean()),
            "below_target": int((cosine < TARGET_COSINE).sum())}


def neighbours(vectors: np.ndarray, k: int = K, block: int = 1024) -> np.ndarray:
    """The k nearest other texts of every text (exact, by dot product)."""
    out = np.empty((len(vectors), k), dtype=np.int64)
    for start in range(0, len(vectors), block):
        scores = vectors[start:start + block] @ vectors.T
        scores[np.arange(len(scores)), np.arange(start, start + len(scores))] = -np.inf  # not itself
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        out[start:start + block] = top
    return out


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """The mean share of each row of `truth` found in the same row of `found`."""
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--limit", type=int, default=None, help="the first N pairs only (default all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=EmbedderConfig.batch_size)
    parser.add_argument("--block", type=int, default=1024,
                        help="texts per timed block (one embed call; the embeddings stage embeds 1,024 pairs a call)")
    parser.add_argument("--out", type=Path, default=RESULTS / "embeddings.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    load_start = uptime()
    print(load_start, flush=True)
    texts, sources = load_texts(args.data, args.limit)
    cache = Path(tempfile.mkdtemp(prefix="synpref-embed-cache-"))
    os.environ["SYNPREF_CACHE"] = str(cache)  # a fresh cache: the export time is measured
    try:
        run(args, texts, sources, load_start)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def by_tokens(embedder: Embedder, batch_size: int):
    """The torch path fed batches of about equal token counts (one embed call per batch)."""
    def embed(texts: list[str]) -> np.ndarray:
        counts = [len(ids) for ids in embedder.model.tokenizer(texts, truncation=True,
                                                                 max_length=embedder.model.max_seq_length)["input_ids"]]
        order = np.argsort([-n for n in counts], kind="stable")
        out = np.empty((len(texts), embedder.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            out[rows] = embedder.embed([texts[i] for i in rows])
        return out
    return embed


def run(args, texts: list[str], sources: list[str], load_start: str) -> None:
    embedders, loads, embed = {}, {}, {}
    for label, backend, precision, batches in VARIANTS:
        start = time.perf_counter()
        embedder = embedders[label] = Embedder(EmbedderConfig(backend=backend, precision=precision,
                                                              threads=args.threads, batch_size=args.batch_size))
        loads[label] = {"seconds_to_load": round(time.perf_counter() - start, 1), "exported": embedder.exported,
                        "precision": embedder.precision, "batches": batches}
        embed[label] = embedder.embed
        if batches == "chars":
            embedder.encoder.sort_by = "chars"
        elif batches == "tokens":
            embed[label] = by_tokens(embedder, args.batch_size)
        print(f"{label}: loaded in {loads[label]['seconds_to_load']} s"
              + (" (converted and cached)" if loads[label]["exported"] else ""), flush=True)
    tokens = np.array([len(ids) for ids in embedders["torch"].model.tokenizer(texts, verbose=False)["input_ids"]])
    print(f"texts: {len(texts):,} pairs ({', '.join(f'{s} {sources.count(s):,}' for s in sorted(set(sources)))}); "
          f"tokens per text mean {tokens.mean():.0f}, median {np.median(tokens):.0f}, "
          f"{np.mean(tokens > EmbedderConfig.max_seq_length):.1%} cut at {EmbedderConfig.max_seq_length}", flush=True)

    for label in embedders:
        embed[label](texts[:64])  # warm-up
    labels = list(embedders)
    seconds = {label: 0.0 for label in labels}
    block_ratios: dict[str, list[float]] = {label: [] for label in labels}
    vectors = {label: np.empty((len(texts), embedders[label].dim), dtype=np.float32) for label in labels}
    for n, start in enumerate(range(0, len(texts), args.block)):
        block = texts[start:start + args.block]
        taken = {}
        for label in labels[n % len(labels):] + labels[:n % len(labels)]:
            t0 = time.perf_counter()
            vectors[label][start:start + len(block)] = embed[label](block)
            taken[label] = time.perf_counter() - t0
            seconds[label] += taken[label]
        for label in labels:
            block_ratios[label].append(taken["torch"] / taken[label])
        print(f"  block {n + 1}: " + ", ".join(f"{label} {len(block) / taken[label]:.0f}/s" for label in labels)
              + f" (load {os.getloadavg()[0]:.2f})", flush=True)

    truth, truth_20 = neighbours(vectors["torch"]), neighbours(vectors["torch"], 2 * K)
    rows = []
    for label in labels:
        rows.append({"backend": label, **loads[label], "seconds": round(seconds[label], 2),
                     "pairs_per_s": round(len(texts) / seconds[label], 1),
                     "speedup_vs_torch": round(seconds["torch"] / seconds[label], 2),
                     "speedup_median_block": round(float(np.median(block_ratios[label])), 2),
                     "cosine_vs_torch": {k: (round(v, 5) if isinstance(v, float) else v)
                                         for k, v in cosine_figures(vectors[label], vectors["torch"]).items()},
                     "recall_at_10_vs_torch_exact": round(recall_at_k(neighbours(vectors[label]), truth), 4),
                     # how far the misses go: the share of its 10 nearest among torch's 20 nearest
                     "top10_within_torch_top20": round(recall_at_k(truth_20, neighbours(vectors[label])), 4)})
    load_end = uptime()
    int8 = next(r for r in rows if r["backend"] == "openvino int8")
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "cpu": _cpu_model(), "load_start": _load(load_start),
        "load_end": _load(load_end), "uptime_start": load_start, "uptime_end": load_end,
        "texts": len(texts), "sources": {s: sources.count(s) for s in sorted(set(sources))},
        "tokens_mean": round(float(np.mean(tokens)), 1), "threads": args.threads, "batch_size": args.batch_size,
        "block": args.block, "k": K, "versions": _versions(), "rows": rows,
        "headline": {"int8_speedup_vs_torch": int8["speedup_vs_torch"],
                     "int8_cosine_min": int8["cosine_vs_torch"]["min"], "int8_cosine_p1": int8["cosine_vs_torch"]["p1"],
                     "int8_cosine_mean": int8["cosine_vs_torch"]["mean"],
                     "int8_recall_at_10": int8["recall_at_10_vs_torch_exact"],
                     "int8_top10_within_torch_top20": int8["top10_within_torch_top20"],
                     "speedup_target_met": int8["speedup_vs_torch"] >= TARGET_SPEEDUP,
                     "cosine_target_met": int8["cosine_vs_torch"]["min"] >= TARGET_COSINE},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    report = markdown(result)
    args.out.with_suffix(".md").write_text(report)
    print(report)
    print(load_end)


def _load(uptime_line: str) -> float:
    """The 1-minute load average of an `uptime` line."""
    return float(uptime_line.rsplit("load average:", 1)[1].split(",")[0])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions() -> dict:
    from importlib import metadata

    return {name: metadata.version(name) for name in ("torch", "transformers", "sentence-transformers",
                                                      "openvino", "nncf")}


def markdown(r: dict) -> str:
    h = r["headline"]
    lines = [
        f"Machine: {r['machine']} ({r['cpu']}); {', '.join(f'{k} {v}' for k, v in r['versions'].items())}.",
        f"Load: `{r['uptime_start']}` at the start, `{r['uptime_end']}` at the end.",
        "",
        f"{r['texts']:,} real pairs ({', '.join(f'{k} {v:,}' for k, v in r['sources'].items())}), `pair_text` "
        f"of each ({r['tokens_mean']:.0f} tokens on average); {r['threads']} thread(s), batch size "
        f"{r['batch_size']}, blocks of {r['block']} texts taking turns; cosine and recall@{r['k']} against the "
        "torch fp32 vectors (exact search, every text a query).",
        "",
        "| backend | batches | load s | pairs/s | vs torch | median block | cosine min | cosine p1 "
        f"| cosine mean | recall@{r['k']} | top {r['k']} in torch's top {2 * r['k']} |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["rows"]:
        c = row["cosine_vs_torch"]
        load = f"{row['seconds_to_load']:g}" + (" (export)" if row["exported"] else "")
        batches = {"as is": "by characters" if row["backend"] == "torch" else "by tokens",
                   "chars": "by characters", "tokens": "by tokens"}[row["batches"]]
        lines.append(f"| {row['backend']} | {batches} | {load} | {row['pairs_per_s']:,.1f} "
                     f"| {row['speedup_vs_torch']:.2f}x | {row['speedup_median_block']:.2f}x "
                     f"| {c['min']:.4f} | {c['p1']:.4f} | {c['mean']:.4f} "
                     f"| {row['recall_at_10_vs_torch_exact']:.3f} | {row['top10_within_torch_top20']:.3f} |")
    lines += ["", f"int8 over torch: **{h['int8_speedup_vs_torch']:.2f}x** (target {TARGET_SPEEDUP:g}x: "
              f"{'met' if h['speedup_target_met'] else 'NOT met'}); cosine with torch fp32 min "
              f"**{h['int8_cosine_min']:.4f}**, p1 {h['int8_cosine_p1']:.4f}, mean {h['int8_cosine_mean']:.4f} "
              f"(target min {TARGET_COSINE}: {'met' if h['cosine_target_met'] else 'NOT met'}); recall@{r['k']} "
              f"{h['int8_recall_at_10']:.3f} (its 10 nearest among torch's 20 nearest: "
              f"{h['int8_top10_within_torch_top20']:.3f}).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
