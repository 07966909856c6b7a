"""pair_embeddings: real MiniLM into real LanceDB; reruns embed only new pairs; shards from concurrent
processes (a run SIGKILLed mid-way and resumed: tests/test_kill_resume.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from synpref.lake.duck import lit
from conftest import run_stages, write_jsonl, write_sources
from synpref.silver import vectors
from synpref.silver.embeddings import embed_pending

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
TOPICS = ["baking bread", "fixing a bicycle", "learning french", "planting tomatoes", "saving money"]


@pytest.fixture(scope="module")
def embedder():
    from models.embedder import Embedder, EmbedderConfig

    return Embedder(EmbedderConfig(batch_size=16))


def _silver(lake, tmp_path, n: int, name: str = "a"):
    write_jsonl(tmp_path / f"{name}.jsonl", [
        {"prompt": f"How do I get better at {TOPICS[i % 5]}? (question {name}{i})", "chosen": f"Practise daily {i}.",
         "rejected": f"Give up {i}."} for i in range(n)])
    src = write_sources(tmp_path / "s.yaml", [{"name": "src", "path": "*.jsonl", "shape": "prompt_chosen_rejected"}])
    run_stages(lake, src)


def _ids(lake) -> list[str]:
    return sorted(vectors.open_table(lake).to_arrow()["pair_id"].to_pylist())


def _silver_ids(lake) -> list[str]:
    con = duckdb.connect()
    try:
        return sorted(r[0] for r in con.execute(
            f"select pair_id from read_parquet({lit(lake.table_glob('silver_pairs'))})").fetchall())
    finally:
        con.close()


def test_embeds_every_silver_pair_once_and_reruns_only_new_ones(lake, tmp_path, embedder):
    _silver(lake, tmp_path, 30)
    first = embed_pending(lake, lambda: embedder, vectors.IndexConfig(), chunk_rows=8)
    assert first.embedded == 30 and first.total == 30 and first.index["kind"] == "flat"
    assert _ids(lake) == _silver_ids(lake)
    again = embed_pending(lake, lambda: embedder, vectors.IndexConfig(), chunk_rows=8)
    assert again.embedded == 0 and again.total == 30
    _silver(lake, tmp_path, 7, name="b")
    third = embed_pending(lake, lambda: embedder, vectors.IndexConfig(), chunk_rows=8)
    assert third.embedded == 7 and _ids(lake) == _silver_ids(lake)


SHARD_WORKER = """
import sys
from models.embedder import Embedder, EmbedderConfig
from synpref.silver.embeddings import embed_shard
from synpref.lake import Lake
lake, embedder = Lake.at(sys.argv[1]), Embedder(EmbedderConfig(batch_size=16))
for shard in map(int, sys.argv[2:]):
    print(f"embedded={embed_shard(lake, lambda: embedder, shard, chunk_rows=4).embedded}", flush=True)
"""


def test_shards_embedded_by_concurrent_processes_give_the_one_process_table(lake, tmp_path, embedder):
    """Four processes append their shards to the one LanceDB table at once (as Celery workers
    do): every pair lands exactly once, with the vector a single process gives it."""
    from synpref.silver.embeddings import embed_shard, finish_embeddings
    from synpref.lake.shards import N_SHARDS, shard_of

    _silver(lake, tmp_path, 60)
    ids = _silver_ids(lake)
    # a few pairs are already in (a rerun): no shard may embed them again
    first = embed_shard(lake, lambda: embedder, shard_of(ids[0]), chunk_rows=4)
    assert first.embedded == sum(shard_of(i) == shard_of(ids[0]) for i in ids)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    workers = [subprocess.Popen([sys.executable, "-c", SHARD_WORKER, str(lake.root),
                                 *map(str, range(w, N_SHARDS, 4))], env=env, stdout=subprocess.PIPE, text=True)
               for w in range(4)]
    outs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0, 0]
    # tagged lines: a library may print progress bars on stdout too
    assert sum(int(line.split("=")[1]) for out in outs for line in out.splitlines()
               if line.startswith("embedded=")) == len(ids) - first.embedded
    versions_before = len(vectors.open_table(lake).list_versions())
    # as if the run were killed before its last step: the rerun embeds nothing, yet finishes
    assert vectors.unfinished(lake, vectors.IndexConfig())
    total, index = finish_embeddings(lake, vectors.IndexConfig(), embedded_now=0)
    assert total == len(ids) and index["kind"] == "flat"
    assert not vectors.unfinished(lake, vectors.IndexConfig())
    assert finish_embeddings(lake, vectors.IndexConfig(), embedded_now=0) == (len(ids), {})
    assert _ids(lake) == ids  # each pair once
    table = vectors.open_table(lake)
    assert len(table.list_versions()) > versions_before  # compacted
    assert len(table.to_lance().get_fragments()) == 1
    stored = {r["pair_id"]: r for r in table.to_arrow().to_pylist()}
    from models.embedder import pair_text

    texts = [stored[i]["text"] for i in ids]
    assert texts == [pair_text(c, None) for c in _conversations(lake, ids)]
    expected = embedder.embed(texts)
    assert np.allclose(np.array([stored[i]["vector"] for i in ids]), expected, atol=1e-5)


def _conversations(lake, ids: list[str]) -> list:
    con = duckdb.connect()
    try:
        silver = lit(lake.table_glob('silver_pairs'))
        rows = dict(con.execute(f"select pair_id, conversation from read_parquet({silver})").fetchall())
    finally:
        con.close()
    return [rows[i] for i in ids]
