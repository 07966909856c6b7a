"""pair_attributes through real vLLM on the tiny model: cached, and resumable after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import duckdb
import pytest

from synpref.lake.duck import lit
from conftest import run_stages, write_jsonl, write_sources

pytestmark = pytest.mark.slow
MODEL = "tiny"
RUN = textwrap.dedent("""
    import sys
    from models.annotator import default_config_path, load_config, load_annotator
    from models.attributes import annotate, load_prompt
    from models.tiny_llm import is_test_model, make_tiny_llm
    from synpref.silver.attributes import annotate_pending
    from synpref.lake import Lake
    import dataclasses
    lake = Lake.at(sys.argv[1])
    config = dataclasses.replace(load_config(default_config_path()), model=str(make_tiny_llm(lake.root / "models" / "tiny-llm")))
    for shard in [int(k) for k in sys.argv[3:]] or [None]:  # the given shards, else every pending pair
        s = annotate_pending(lake, lambda: load_annotator(config), annotate, load_prompt(), model="tiny",
                             chunk_rows=int(sys.argv[2]), log=lambda m: print(m, flush=True), shard=shard,
                             test_model=is_test_model(config.model))
        print("DONE", s.annotated, s.cached, flush=True)
""")


def _attribute_rows(lake, columns: str = "pair_id, status") -> list[tuple]:
    con = duckdb.connect()
    try:
        return con.execute(f"select {columns} from read_parquet({lit(lake.table_glob('pair_attributes'))}) "
                           f"where model = 'tiny'").fetchall()
    finally:
        con.close()


def _run(lake, chunk_rows: int, shards: tuple[int, ...] = ()) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "VLLM_CPU_KVCACHE_SPACE": "1"}
    return subprocess.Popen([sys.executable, "-c", RUN, str(lake.root), str(chunk_rows), *map(str, shards)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _silver(lake, tmp_path, n: int = 24):
    write_jsonl(tmp_path / "a.jsonl", [{"prompt": f"What is {i} plus {i}?", "chosen": f"It is {2 * i}.",
                                        "rejected": f"It is {2 * i + 1}."} for i in range(n)])
    run_stages(lake, write_sources(tmp_path / "s.yaml", [{"name": "a", "path": "a.jsonl",
                                                          "shape": "prompt_chosen_rejected"}]))


def test_shards_annotated_by_two_processes_at_once_cover_every_pair_once(lake, tmp_path):
    """Two processes (as two workers would) annotate shards 0-3 and 4-7 at the same time."""
    from synpref.lake.shards import N_SHARDS, shard_of

    _silver(lake, tmp_path)
    half = N_SHARDS // 2
    runs = [_run(lake, 4, tuple(range(half))), _run(lake, 4, tuple(range(half, N_SHARDS)))]
    outs = [r.communicate(timeout=600)[0] for r in runs]
    assert [r.returncode for r in runs] == [0, 0], [o[-3000:] for o in outs]
    ids = [pair_id for pair_id, _ in _attribute_rows(lake)]
    assert len(ids) == len(set(ids)) == 24
    assert set(_attribute_rows(lake, "test_model")) == {(True,)}  # the tiny model's rows say they are noise
    # each shard's step annotated exactly its own pairs
    per_shard = [int(line.split()[1]) for out in outs for line in out.splitlines() if line.startswith("DONE")]
    assert per_shard == [sum(shard_of(i) == k for i in ids) for k in range(N_SHARDS)]


def test_killed_run_resumes_and_no_pair_is_annotated_twice(lake, tmp_path):
    _silver(lake, tmp_path)
    first = _run(lake, chunk_rows=4)
    deadline = time.time() + 300
    while not lake.table_files("pair_attributes"):  # wait for the first finished chunk
        assert first.poll() is None, first.stdout.read()
        assert time.time() < deadline, "no chunk finished in time"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    saved = _attribute_rows(lake)
    assert 4 <= len(saved) < 24  # killed mid-run: some chunks saved, not all

    second = _run(lake, chunk_rows=4)
    out, _ = second.communicate(timeout=600)
    assert second.returncode == 0, out[-3000:]
    done_line = [line for line in out.splitlines() if line.startswith("DONE")][0]
    annotated_now, cached = map(int, done_line.split()[1:])
    rows = _attribute_rows(lake)
    ids = [pair_id for pair_id, _ in rows]
    assert len(ids) == len(set(ids)) == 24  # every pair once, none twice
    assert annotated_now == 24 - len(saved) and cached == len(saved)
    assert set(saved) <= set(rows)  # the first run's rows were kept, not redone
