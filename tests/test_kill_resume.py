"""Stages SIGKILLed mid-run, for real: each stage runs in a child process on a lake on the local
disk, the test waits for evidence that it is writing (a progress line, a hidden temporary
file), kills the child's process group with SIGKILL (no `finally`, no cleanup in the child),
then reruns the stage and compares every table with an uninterrupted run on the same inputs.

A killed run may leave nothing that a reader takes for data, and its rerun must leave no
scratch behind (staged folders under `_tmp/`, hidden `.tmp-` files beside table parts)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import rows, run_stages, write_jsonl, write_sources
from support.kill import kill_when
from synpref.raw.ingest import ingest_sources
from synpref.lake import Lake
from synpref.silver.pool import MANIFEST, SILVER_TABLES, build_silver
from synpref.raw.sources import load_sources

INGEST = """
import sys
from synpref.raw.ingest import ingest_sources
from synpref.lake import Lake
from synpref.raw.sources import load_sources
ingest_sources(Lake.at(sys.argv[1]), load_sources(sys.argv[2]),
               progress=lambda file, n: print(f"read {n} {file}", flush=True))
"""

SILVER = """
import sys
from synpref.lake import Lake
from synpref.silver.pool import build_silver
from synpref.raw.sources import load_sources
build_silver(Lake.at(sys.argv[1]), load_sources(sys.argv[2]).decontamination, rows_per_bucket=int(sys.argv[3]),
             log=lambda msg: print(msg, flush=True))
"""

EMBED = """
import sys
from models.embedder import Embedder, EmbedderConfig
from synpref.silver import vectors
from synpref.silver.embeddings import embed_pending
from synpref.lake import Lake
embedder = Embedder(EmbedderConfig(batch_size=16, threads=1))
embed_pending(Lake.at(sys.argv[1]), lambda: embedder, vectors.IndexConfig(), chunk_rows=int(sys.argv[2]),
              log=lambda msg: print(msg, flush=True))
"""


def _all_rows(lake: Lake, table: str) -> list[dict]:
    """Every row of a table in a fixed order (parts, and rows within them, may differ)."""
    return rows(lake, table, order="all")


def _scratch(lake: Lake) -> list[str]:
    """What killed runs leave: anything under _tmp/, hidden temporary files anywhere."""
    tmp = sorted(str(p) for p in lake.tmp_dir.rglob("*")) if lake.tmp_dir.exists() else []
    return tmp + sorted(str(p) for p in lake.root.rglob("*") if ".tmp" in p.name and lake.tmp_dir not in p.parents)


def _records(n: int, tag: str) -> list[dict]:
    """n pairs: some repeat an earlier pair (silver duplicates), some have an empty answer."""
    keys = [i - 1 if i and i % 50 == 0 else i for i in range(n)]
    return [{"prompt": f"{tag} question {k}", "chosen": "" if k % 997 == 3 else f"good answer {k}",
             "rejected": f"bad answer {k}"} for k in keys]


# ---------------------------------------------------------------- ingest

def test_ingest_killed_mid_file_resumes_to_the_uninterrupted_tables(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "a.jsonl", _records(1_000, "a"))
    with (data / "b.jsonl").open("w") as f:  # big enough that the kill lands mid-file
        for i, record in enumerate(_records(100_000, "b")):
            f.write("{not json\n" if i % 1_000 == 7 else json.dumps(record) + "\n")
    src = write_sources(tmp_path / "s.yaml", [{"name": "src", "path": "data/*.jsonl",
                                              "shape": "prompt_chosen_rejected"}])
    reference = Lake.at(tmp_path / "reference")
    ingest_sources(reference, load_sources(src))

    lake = Lake.at(tmp_path / "lake")
    # past the first write batch (20,000 rows) of b.jsonl: its part is half written
    kill_when(tmp_path, INGEST, [str(lake.root), str(src)],
               lambda line: line.endswith("b.jsonl") and int(line.split()[1]) >= 25_000)
    raw = lake.table_dir("raw_pairs")
    assert [p.name.split("--")[1] for p in lake.table_files("raw_pairs")] == ["a.jsonl"]  # b: no part, whole or not
    assert any(p.name.startswith(".src--b.jsonl--") for p in raw.iterdir())  # the half-written one, hidden
    assert len(list((lake.root / "_manifests" / "raw").glob("*.json"))) == 1

    again = ingest_sources(lake, load_sources(src))
    assert [(Path(f.file).name, f.reused) for f in again.files] == [("a.jsonl", True), ("b.jsonl", False)]
    assert (again.read, again.quarantined) == (101_000, 100)
    for table in ("raw_pairs", "ingest_quarantine"):
        assert _all_rows(lake, table) == _all_rows(reference, table), table
    # scratch cleanup lands with issue 19 item 6
    assert _scratch(lake) == []


# ---------------------------------------------------------------- silver

def test_silver_killed_mid_run_keeps_the_old_tables_and_reruns_to_the_uninterrupted_ones(tmp_path):
    rows_per_bucket = 400  # 100 buckets: the kill lands between two of them
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "a.jsonl", _records(2_000, "a"))
    src = write_sources(tmp_path / "s.yaml", [{"name": "src", "path": "data/*.jsonl",
                                              "shape": "prompt_chosen_rejected"}])
    lake = Lake.at(tmp_path / "lake")
    config = load_sources(src)
    ingest_sources(lake, config)
    build_silver(lake, config.decontamination, rows_per_bucket=rows_per_bucket)
    before = {t: [(p.name, p.read_bytes()) for p in lake.table_files(t)] for t in SILVER_TABLES}
    manifest = lake.read_manifest(MANIFEST)

    write_jsonl(data / "b.jsonl", _records(38_000, "b"))  # new raw rows: silver must be rebuilt
    ingest_sources(lake, load_sources(src))
    reference = Lake.at(tmp_path / "reference")
    shutil.copytree(lake.root, reference.root)
    expected = build_silver(reference, config.decontamination, rows_per_bucket=rows_per_bucket)
    assert expected.buckets == 100 and set(expected.reasons) == {"duplicate", "empty_response"}

    seen = kill_when(tmp_path, SILVER, [str(lake.root), str(src), str(rows_per_bucket)],
                      lambda line: line.startswith("bucket 1/100 "))
    assert any(line.startswith("hashed 40,000 raw pairs") for line in seen)
    staged = list(lake.tmp_dir.glob("silver-*/silver_pairs/part-00000.parquet"))
    assert staged, "the killed run had written its first bucket under _tmp"
    # readers still see the previous tables, whole, and the stage still records them as its last
    assert {t: [(p.name, p.read_bytes()) for p in lake.table_files(t)] for t in SILVER_TABLES} == before
    assert lake.read_manifest(MANIFEST) == manifest

    again = build_silver(lake, config.decontamination, rows_per_bucket=rows_per_bucket)
    assert not again.reused
    assert (again.raw_rows, again.silver_rows, again.reasons, again.buckets) == \
        (expected.raw_rows, expected.silver_rows, expected.reasons, expected.buckets)
    for table in SILVER_TABLES:
        assert _all_rows(lake, table) == _all_rows(reference, table), table
    assert lake.read_manifest(MANIFEST)["fingerprint"] == reference.read_manifest(MANIFEST)["fingerprint"]
    # scratch cleanup lands with issue 19 item 6
    assert _scratch(lake) == []


# ---------------------------------------------------------------- pair embeddings

TOPICS = ["baking bread", "fixing a bicycle", "learning french", "planting tomatoes", "saving money"]


@pytest.fixture
def one_thread_embedder():
    """MiniLM on one torch thread (several thrash a loaded machine); torch's setting restored after."""
    import torch

    from models.embedder import Embedder, EmbedderConfig

    threads = torch.get_num_threads()
    try:
        yield Embedder(EmbedderConfig(batch_size=16, threads=1))
    finally:
        torch.set_num_threads(threads)


def test_embeddings_killed_mid_run_resume_to_the_uninterrupted_table(lake, tmp_path, one_thread_embedder):
    from synpref.silver import vectors
    from synpref.silver.embeddings import embed_pending

    n, chunk = 160, 4  # 40 appends in the killed run: the kill lands between two of them
    write_jsonl(tmp_path / "a.jsonl", [
        {"prompt": f"How do I get better at {TOPICS[i % 5]}? (question {i})", "chosen": f"Practise daily {i}.",
         "rejected": f"Give up {i}."} for i in range(n)])
    run_stages(lake, write_sources(tmp_path / "s.yaml", [{"name": "src", "path": "a.jsonl",
                                                          "shape": "prompt_chosen_rejected"}]))
    reference = Lake.at(tmp_path / "reference")
    shutil.copytree(lake.root, reference.root)
    embedder = one_thread_embedder
    assert embed_pending(reference, lambda: embedder, vectors.IndexConfig(), chunk_rows=64).embedded == n

    kill_when(tmp_path, EMBED, [str(lake.root), str(chunk)], lambda line: line == f"pool: {chunk} pairs embedded")
    stored = vectors.open_table(lake).count_rows()
    assert 0 < stored < n and stored % chunk == 0  # whole appends only
    assert vectors.unfinished(lake, vectors.IndexConfig()) or stored == chunk  # killed before compaction

    rest = embed_pending(lake, lambda: embedder, vectors.IndexConfig(), chunk_rows=64)
    assert (rest.embedded, rest.total) == (n - stored, n)
    assert not vectors.unfinished(lake, vectors.IndexConfig())
    got = {r["pair_id"]: r for r in vectors.open_table(lake).to_arrow().to_pylist()}
    want = {r["pair_id"]: r for r in vectors.open_table(reference).to_arrow().to_pylist()}
    assert len(got) == vectors.open_table(lake).count_rows() == n and set(got) == set(want)  # each pair once
    ids = sorted(want)
    for column in ("text", "task_category", "objectivity", "controversiality"):
        assert [got[i][column] for i in ids] == [want[i][column] for i in ids], column
    assert np.allclose([got[i]["vector"] for i in ids], [want[i]["vector"] for i in ids], atol=1e-5)
    assert _scratch(lake) == []
