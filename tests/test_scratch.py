"""A rerun removes the scratch a killed run left (hidden parts, silver's staging folder, DuckDB
spill folders), and never the scratch of a process that is still running."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import run_stages, write_sources
from synpref.lake import scratch
from synpref.lake import Lake


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _plant(lake: Lake, pid: int, host: str = scratch.HOST) -> list:
    """What a run killed mid-write leaves, owned by `pid` on `host`."""
    tag = f"{host}-{pid}-0123abcd"
    raw_dir, quar_dir = lake.table_dir("raw_pairs"), lake.table_dir("ingest_quarantine")
    for folder in (raw_dir, quar_dir, lake.tmp_dir / f"silver-{tag}" / "keyed", lake.tmp_dir / f"duckdb-{tag}"):
        folder.mkdir(parents=True, exist_ok=True)
    planted = [raw_dir / f".src--a.jsonl--1234.parquet.tmp-{tag}", quar_dir / f".src--a.jsonl--1234.parquet.tmp-{tag}",
               lake.tmp_dir / f"silver-{tag}", lake.tmp_dir / f"duckdb-{tag}"]
    for f in planted[:2]:
        f.write_bytes(b"PAR1 half a part")
    (lake.tmp_dir / f"silver-{tag}" / "keyed" / "data_0.parquet").write_bytes(b"x" * 1000)
    (lake.tmp_dir / f"duckdb-{tag}" / "duckdb_temp_storage-0.tmp").write_bytes(b"x" * 1000)
    return planted


def test_a_rerun_sweeps_a_dead_runs_scratch_and_keeps_a_live_ones(lake, tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"prompt": "p", "chosen": "c", "rejected": "r"}) + "\n")
    src = write_sources(tmp_path / "s.yaml", [{"name": "a", "path": "a.jsonl", "shape": "prompt_chosen_rejected"}])
    run_stages(lake, src)
    dead = _plant(lake, _dead_pid())
    live = _plant(lake, os.getpid())  # this process: still writing, as far as anyone can tell
    other_host = _plant(lake, _dead_pid(), host="ffffff")  # a machine sharing the disk: not ours to judge
    legacy = lake.table_dir("raw_pairs") / ".x.parquet.tmp-89abcdef"  # an untagged name from before
    legacy.write_bytes(b"old")
    os.utime(legacy, (0, 0))

    ingest, silver = run_stages(lake, src)  # both stages sweep before they write

    assert all(f.reused for f in ingest.files) and silver.reused  # nothing redone: only scratch went
    assert not any(p.exists() for p in dead) and not legacy.exists()
    assert all(p.exists() for p in live + other_host)
    assert [f.name for f in lake.table_files("raw_pairs")] == [ingest.files[0].part + ".parquet"]


def test_a_stage_connection_spills_into_its_own_folder_and_duckdb_removes_it(lake):
    from synpref.lake.duck import DuckSettings, stage_connection

    lake.root.mkdir(parents=True)
    con = stage_connection(lake, DuckSettings(memory_limit="100MB"))
    con.execute("create temp table t as select range as a, md5(range::varchar) as b from range(3000000) order by b")
    (spill,) = [p for p in lake.tmp_dir.iterdir() if p.name.startswith("duckdb-")]
    assert scratch.HOST in spill.name and f"-{os.getpid()}-" in spill.name and any(spill.iterdir())
    con.close()
    assert not spill.exists()
