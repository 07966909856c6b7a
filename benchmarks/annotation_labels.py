"""The human-label store, measured side by side in one run:

A. the durable write behind each acknowledged label: a journal line (write + fdatasync), against
   a durable Parquet part per label (what writing human_labels directly would cost);
B. the annotation server (`synpref annotate serve`, a subprocess) under 1, 4 and 8 concurrent
   HTTP clients: acknowledged labels/s and the latency of POST /api/labels;
C. sealing a killed server's journal of 10,000 lines, and building gold_pairs over them.

    .venv/bin/python benchmarks/annotation_labels.py [--labels 300] [--pairs 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from synpref.gold.annotate.process import AnnotationServer  # noqa: E402
from synpref.lake.duck import lit  # noqa: E402
from synpref.gold.annotation_queue import queue_for_humans  # noqa: E402
from synpref.gold.annotators import add_annotator  # noqa: E402
from synpref.gold.gold_pairs import build_gold_pairs  # noqa: E402
from synpref.gold.human_labels import normalise, seal, to_table  # noqa: E402
from synpref.raw.ingest import ingest_sources  # noqa: E402
from synpref.gold.label_journal import LabelJournal, journal_dir  # noqa: E402
from synpref.lake import Lake, write_part  # noqa: E402
from synpref.silver.pool import build_silver  # noqa: E402
from synpref.raw.sources import load_sources  # noqa: E402


def silver(root: Path, pairs: int) -> Lake:
    root.mkdir(parents=True)
    lake = Lake.at(root / "lake")
    (root / "pairs.jsonl").write_text("".join(json.dumps({"prompt": f"Question {i}: {i} + {i}?",
                                                          "chosen": f"{2 * i}", "rejected": f"{2 * i + 1}"}) + "\n"
                                              for i in range(pairs)))
    (root / "sources.yaml").write_text("sources:\n  - {name: b, path: pairs.jsonl, shape: prompt_chosen_rejected}\n")
    config = load_sources(root / "sources.yaml")
    ingest_sources(lake, config)
    build_silver(lake, config.decontamination)
    return lake


def label(i: int, pair_id: str, annotator: str = "bench") -> dict:
    now = datetime.now(timezone.utc).isoformat()
    return {"label_id": f"{annotator}-{i}", "pair_id": pair_id, "annotator": annotator,
            "choice": ("chosen", "rejected", "cannot_decide")[i % 3], "shown_order": "chosen_first",
            "seconds": 5.0, "labelled_at": now, "guideline_version": "annotation-v1", "simulated": False,
            "source": "web", "recorded_at": now}


def durable_writes(lake: Lake, n: int, pair_id: str) -> list[tuple[str, float]]:
    journal = LabelJournal(lake)
    start = time.perf_counter()
    for i in range(n):
        journal.append(label(i, pair_id))
    journal_s = time.perf_counter() - start
    journal.close()
    now = datetime.now(timezone.utc)
    start = time.perf_counter()
    for i in range(n):
        write_part(lake, "human_labels", to_table([normalise(label(n + i, pair_id), "web", now)]), durable=True)
    parquet_s = time.perf_counter() - start
    return [("journal line + fdatasync", n / journal_s), ("Parquet part per label, fsynced", n / parquet_s)]


def server_run(lake: Lake, root: Path, pairs: int, clients: tuple[int, ...]) -> list[tuple[int, float, float, float]]:
    queue_for_humans(lake, "bench", select_sql="select pair_id from silver_pairs")
    server = AnnotationServer(lake, root / "server.log", "--labels-per-pair", str(sum(clients)))
    out = []
    try:
        for k in clients:
            tokens = [add_annotator(lake, f"k{k}-{j}") for j in range(k)]
            latencies: list[float] = []

            def annotate(token: str) -> None:
                with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"},
                                  timeout=60) as client:
                    while (data := client.get("/api/next").json())["pair"] is not None:
                        t = time.perf_counter()
                        client.post("/api/labels", json={"ticket": data["ticket"], "choice": "1"}).raise_for_status()
                        latencies.append(time.perf_counter() - t)

            threads = [threading.Thread(target=annotate, args=(t,)) for t in tokens]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            seconds = time.perf_counter() - start
            cuts = statistics.quantiles(latencies, n=20)
            out.append((k, k * pairs / seconds, cuts[9] * 1000, cuts[18] * 1000))
    finally:
        server.shutdown()
    return out


def seal_and_gold(lake: Lake, lines: int, pair_ids: list[str]) -> tuple[float, float, int]:
    folder = journal_dir(lake)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "segment-0-0-killed.jsonl").open("w") as f:  # what a killed server leaves
        for i in range(lines):
            f.write(json.dumps(label(i, pair_ids[i % len(pair_ids)], f"a{i // len(pair_ids)}")) + "\n")
    start = time.perf_counter()
    sealed = seal(lake).sealed
    seal_s = time.perf_counter() - start
    start = time.perf_counter()
    rows = build_gold_pairs(lake).rows
    assert rows > 0
    return seal_s, time.perf_counter() - start, sealed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels", type=int, default=300, help="labels per durable-write method (A)")
    parser.add_argument("--pairs", type=int, default=100, help="queued pairs each client labels (B)")
    parser.add_argument("--journal-lines", type=int, default=10_000, help="(C)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lake = silver(root / "a", 2_000)
        import duckdb

        pair_ids = [r[0] for r in duckdb.sql(f"select pair_id from read_parquet({lit(lake.table_glob('silver_pairs'))}) "
                                             f"order by pair_id").fetchall()]
        writes = durable_writes(silver(root / "w", 10), args.labels, pair_ids[0])
        print("\nA. durable write per label\n\n| method | labels/s | vs journal |\n|---|---:|---:|")
        for name, rate in writes:
            print(f"| {name} | {rate:,.0f} | {rate / writes[0][1]:.2f}x |")
        runs = server_run(silver(root / "s", args.pairs), root, args.pairs, (1, 4, 8))
        print("\nB. annotation server\n\n| clients | acknowledged labels/s | POST p50 ms | POST p95 ms | vs 1 client |\n"
              "|---:|---:|---:|---:|---:|")
        for k, rate, p50, p95 in runs:
            print(f"| {k} | {rate:,.0f} | {p50:.1f} | {p95:.1f} | {rate / runs[0][1]:.2f}x |")
        seal_s, gold_s, sealed = seal_and_gold(lake, args.journal_lines, pair_ids)
        print(f"\nC. sealed {sealed:,} journal lines in {seal_s:.2f} s; gold_pairs over them "
              f"({len(pair_ids):,} pairs x {args.journal_lines // len(pair_ids)} annotators) in {gold_s:.2f} s")


if __name__ == "__main__":
    main()
