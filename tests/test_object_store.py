"""Lakes on an object store: a real S3 server (SeaweedFS on 127.0.0.1, tests/support/object_store.py)
holds the lake at s3://lakes/...; every client reads the standard AWS_* variables. The stages
must give what they give on a local folder, leave no half-written object, and, past one
machine, need no disk but the store: the Celery workers get a local folder each, as machines
would, and the shard steps spread over both still give the one-machine result."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from synpref.lake.duck import lit
from conftest import (TINY_RM_SETTINGS, rows, run_stages, stage2_from_scratch, toy_preference_records, write_jsonl,
                      write_sources)
from support.celery_cluster import LocalCluster
from support.object_store import LocalObjectStore
from test_celery import _finished, _latest_run, _materialize, stage2_job_args

from dagster_project.cli import main
from dagster_project.run_events import shard_steps
from synpref.lake.duck import connect as duck_connect
from synpref.lake import CACHE_ENV, Lake, atomic_path, cache_base, copy_lake
from synpref.lake.shards import shard_keys

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "lakes"
BENCH = ("Describe in detail the main causes of the French Revolution and how they led to the fall of the "
         "monarchy in the late eighteenth century")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """SeaweedFS on a free local port for this module, its credentials in the environment."""
    folder = tmp_path_factory.mktemp("store")
    with LocalObjectStore(folder / "server") as server, pytest.MonkeyPatch.context() as env:
        for key, value in server.env.items():
            env.setenv(key, value)
        env.setenv(CACHE_ENV, str(folder / "cache"))
        server.make_bucket(BUCKET)
        yield server


def _store_lake(tmp_path: Path) -> Lake:
    return Lake.at(f"s3://{BUCKET}/{tmp_path.name}/lake")


def _keys(store: LocalObjectStore, lake: Lake) -> list[str]:
    """Every object under the lake, relative to its root."""
    prefix = lake.root.path.rstrip("/") + "/"
    return sorted(k[len(prefix):] for k in store.filesystem().find(prefix))


def _sources(tmp_path: Path) -> Path:
    """Pairs with planted defects: duplicates, an empty response, a contaminated prompt."""
    records = [{"prompt": f"Question {i} about bread?", "chosen": f"A helpful answer {i}.", "rejected": f"No {i}."}
               for i in range(60)]
    records += records[:5]  # duplicates
    records += [{"prompt": "x", "chosen": "", "rejected": "y"},
                {"prompt": "Please: " + " ".join(BENCH.split()[1:15]), "chosen": "a", "rejected": "b"}]
    write_jsonl(tmp_path / "a.jsonl", records)
    (tmp_path / "bench.jsonl").write_text(json.dumps({"question": BENCH}) + "\n")
    return write_sources(tmp_path / "s.yaml", [{"name": "a", "path": "a.jsonl", "shape": "prompt_chosen_rejected"}],
                         benchmark_prompts=["bench.jsonl"], field="question")


def _store_rows(lake: Lake, table: str, columns: str, order: str = "pair_id") -> list[tuple]:
    con = duck_connect(lake)
    try:
        return con.execute(f"select {columns} from read_parquet({lit(lake.table_glob(table))}, union_by_name = true) "
                           f"order by {order}").fetchall()
    finally:
        con.close()


def test_raw_and_silver_on_a_store_are_the_local_lake_s(store, tmp_path):
    sources = _sources(tmp_path)
    local, remote = Lake.at(tmp_path / "local"), _store_lake(tmp_path)
    _, want = run_stages(local, sources)
    ingest, got = run_stages(remote, sources)
    assert remote.remote and not (tmp_path / "s3:").exists()
    assert (got.raw_rows, got.silver_rows, got.reasons) == (want.raw_rows, want.silver_rows, want.reasons) \
        == (67, 60, {"contaminated": 1, "duplicate": 5, "empty_response": 1})
    columns = "pair_id, raw_id, source_row, chosen, rejected"
    assert _store_rows(remote, "silver_pairs", columns) == [
        tuple(r[c] for c in columns.split(", ")) for r in rows(local, "silver_pairs", order="pair_id")]
    # the store holds whole Parquet parts and manifests only: nothing hidden, nothing half-written
    keys = _keys(store, remote)
    assert keys and all(k.endswith((".parquet", ".json")) and "/." not in k for k in keys), keys
    assert {k.split("/")[1] for k in keys if k.endswith(".parquet")} == {
        "raw_pairs", "ingest_quarantine", "silver_decisions", "silver_pairs", "silver_quarantine"}
    # the DuckDB file of views is on the local disk, and `synpref sql` reads the store through it
    result = CliRunner().invoke(main, ["sql", "--lake", str(remote.root), "select count(*) as pairs from silver_pairs"])
    assert result.exit_code == 0 and "60" in result.output, result.output
    assert remote.db_path.exists() and remote.db_path.is_relative_to(cache_base())
    # the assets' previews read the first rows of the first part that has any
    from dagster_project.metadata import preview

    shown = preview(remote.table_files("silver_pairs"), ["pair_id", "chosen"]).value
    assert shown == preview(local.table_files("silver_pairs"), ["pair_id", "chosen"]).value
    assert shown.count("| A helpful answer") == 5
    assert preview(remote.table_files("ingest_quarantine"), ["raw_id", "reason"]).value.count("\n") == 1  # no rows
    # a rerun reuses what is done
    again_ingest, again = run_stages(remote, sources)
    assert again.reused and all(f.reused for f in again_ingest.files)
    assert _keys(store, remote) == keys


def test_a_write_that_fails_leaves_no_object(store, tmp_path):
    lake = _store_lake(tmp_path)
    final = lake.table_dir("raw_pairs") / "part-0.parquet"
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_path(final) as tmp:
            pq.write_table(pa.table({"x": [1, 2, 3]}), tmp)
            raise RuntimeError("killed before the upload")
    assert not final.exists() and not lake.has_table("raw_pairs") and _keys(store, lake) == []
    with atomic_path(final) as tmp:
        pq.write_table(pa.table({"x": [1, 2, 3]}), tmp)
    assert lake.has_table("raw_pairs") and _keys(store, lake) == ["raw/raw_pairs/part-0.parquet"]
    assert not list((cache_base() / "scratch").glob("*/*"))  # local scratch cleaned


def test_a_silver_swap_killed_midway_is_redone_by_the_next_run(store, tmp_path, monkeypatch):
    """A store has no folder rename: new parts go up, then old ones go. Killed in between, the
    table holds both generations; the next run must not take that for a finished build."""
    from synpref.silver import pool as silver

    lake, sources = _store_lake(tmp_path), _sources(tmp_path)
    run_stages(lake, sources)
    want = _store_rows(lake, "silver_pairs", "pair_id, raw_id")
    real_remove = silver.remove

    def killed(path, recursive=False):
        raise KeyboardInterrupt("killed between the upload of the new parts and the removal of the old")

    monkeypatch.setattr(silver, "remove", lambda path, recursive=False: real_remove(path, recursive)
                        if str(path).endswith(".json") else killed(path))
    with pytest.raises(KeyboardInterrupt):
        silver.build_silver(lake, silver_settings(sources), force=True)
    assert len(lake.table_files("silver_decisions")) == 2  # the first table holds both generations now
    monkeypatch.setattr(silver, "remove", real_remove)
    _, again = run_stages(lake, sources)
    assert not again.reused and all(len(lake.table_files(t)) == 1 for t in silver.SILVER_TABLES)
    assert _store_rows(lake, "silver_pairs", "pair_id, raw_id") == want


def silver_settings(sources):
    from synpref.raw.sources import load_sources

    return load_sources(sources).decontamination


def test_local_copies_are_fetched_once_per_machine_and_again_when_the_store_changes(store, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    lake = _store_lake(tmp_path)
    folder = lake.root / "models" / "rm" / "m" / "v001" / "best"
    fs = store.filesystem()
    for i in range(5):
        fs.pipe_file(f"{folder.path}/part-{i}.bin", bytes([i]) * 1000)
    with ThreadPoolExecutor(4) as pool:  # steps of one machine resolving the model at once
        copies = list(pool.map(lambda _: lake.local_copy(folder), range(8)))
    assert len(set(copies)) == 1 and copies[0].is_relative_to(lake.home)
    assert sorted(p.name for p in copies[0].iterdir()) == [f"part-{i}.bin" for i in range(5)]
    fs.pipe_file(f"{folder.path}/part-0.bin", b"changed")  # the lake was rebuilt at the same URL
    assert (lake.local_copy(folder) / "part-0.bin").read_bytes() == b"changed"


def test_push_copies_a_local_lake_to_a_store_and_nothing_else(tmp_path):
    for source, target in ((f"s3://{BUCKET}/a", str(tmp_path / "b")), (str(tmp_path / "a"), str(tmp_path / "b"))):
        result = CliRunner().invoke(main, ["push", "--lake", source, "--to", target])
        assert result.exit_code == 2 and "copies a local lake" in result.output, result.output


@pytest.mark.slow
def test_a_reward_model_trains_into_the_store_and_scores_from_it(store, tmp_path, tiny_rm_config_file):
    """Training writes its checkpoints on the local disk, then uploads the version (metrics.json
    last); a scorer loads the weights from a local copy; outputs go back to the store."""
    from models.launch import LaunchConfig
    from models.scorer import Scorer
    from models.train_config import load_config
    from synpref.rm import rm_models
    from synpref.rm.rm_eval import evaluate_reward_model
    from synpref.rm.rm_predictions import score_shard
    from synpref.rm.rm_training import train_reward_model

    lake = _store_lake(tmp_path)
    write_jsonl(tmp_path / "a.jsonl", toy_preference_records(120, seed=5))
    run_stages(lake, write_sources(tmp_path / "s.yaml", [{"name": "a", "path": "a.jsonl",
                                                          "shape": "prompt_chosen_rejected"}]))
    con = duck_connect(lake)
    with atomic_path(lake.table_dir("gold_pairs") / "part-0.parquet") as tmp:  # humans are not in this test
        con.execute(f"copy (select pair_id, conversation, chosen, rejected, false as flipped, source from "
                    f"read_parquet({lit(lake.table_glob('silver_pairs'))}) order by md5(pair_id) limit 24) "
                    f"to {lit(tmp)} (format parquet)")
    con.close()
    sql = "select pair_id, conversation, chosen, rejected, source from silver_pairs"
    config, cpu = load_config(tiny_rm_config_file), LaunchConfig(accelerator="cpu")
    summary = train_reward_model(lake, "baseline", sql, config, launch=cpu, log=lambda msg: None)
    assert (summary.version, summary.status, summary.eval_set, summary.eval_pairs) == ("v001", "trained", "gold", 24)
    assert summary.metrics["best"]["accuracy"] >= 0.9 and TINY_RM_SETTINGS["epochs"] == config.epochs
    keys = [k for k in _keys(store, lake) if k.startswith("models/")]
    assert "models/rm/baseline/v001/metrics.json" in keys and "models/rm/baseline/v001/best/config.json" in keys
    assert not any("/checkpoints/" in k for k in keys)  # resume points stay on the trainer's disk
    ref = rm_models.resolve(lake, "baseline")
    assert ref.path.is_relative_to(lake.home) and (ref.path / "config.json").exists()
    evaluation = evaluate_reward_model(lake, ref, lambda: Scorer(ref.path))
    assert evaluation.accuracy >= 0.9 and lake.has_table("rm_eval")
    scored = score_shard(lake, ref, 0, lambda: Scorer(ref.path))
    assert scored.rows and scored.path.exists() and score_shard(lake, ref, 0, lambda: None).skipped
    # the same pairs and settings: reused from the store, nothing launched
    again = train_reward_model(lake, "baseline", sql, config, launch=cpu, log=lambda msg: None,
                               run=lambda *a: pytest.fail("nothing should have been launched"))
    assert (again.version, again.status) == ("v001", "unchanged")


# ---------------------------------------------------------------- past one machine, on the store

STAGE2 = "stage2"  # the job: pool_scores, judge_queue, judge_votes, silver_labels, filtered_pairs
SHARD_OPS = ("score_shard", "judge_shard", "filter_one_shard")
@pytest.fixture(scope="module")
def store_cluster(demo, store, tmp_path_factory):
    """Redis and two Celery workers, each with a local folder of its own (no shared disk)."""
    if subprocess.run(["bash", str(ROOT / "scripts" / "install_redis.sh")], timeout=600).returncode:
        pytest.fail("redis-server is missing and could not be installed (scripts/install_redis.sh)")
    _, _, env = demo
    folder = tmp_path_factory.mktemp("celery-store")
    env = {**env, **store.env, "DAGSTER_HOME": str(folder / "home"), CACHE_ENV: str(folder / "cli-disk")}
    (folder / "home").mkdir()
    # longer than any shard step on the store (each reads the store through fsspec), or a running
    # shard is handed out again; no worker is killed in this module
    with LocalCluster(folder, env, visibility_timeout=300) as cluster:
        for name in ("w1", "w2"):
            cluster.start_worker(name, env={CACHE_ENV: str(folder / f"{name}-disk")})
        yield cluster


def _by_worker(records, op: str) -> dict[str, list[str]]:
    steps = shard_steps(records, op)
    assert sorted(steps) == shard_keys(), op
    out: dict[str, list[str]] = {}
    for shard, record in steps.items():
        assert len(record.workers) == 1 and record.successes == 1, (op, shard, record)
        out.setdefault(record.workers[0].split("@")[0], []).append(shard)
    return out


@pytest.mark.slow
def test_stage2_on_two_celery_workers_with_the_lake_on_the_store(demo, store, store_cluster, tmp_path):
    reference, _, _ = demo
    lake = Lake.at(f"s3://{BUCKET}/{tmp_path.name}/lake")
    local = stage2_from_scratch(reference, tmp_path / "copy")
    pushed = CliRunner().invoke(main, ["push", "--lake", str(local.root), "--to", str(lake.root)])
    assert pushed.exit_code == 0 and f"now at {lake.root}" in pushed.output, pushed.output
    assert not any(k.startswith(("synpref.duckdb", "annotation/", "landing/")) or "/checkpoints/" in k
                   for k in _keys(store, lake))  # what a machine keeps locally stays there
    assert not lake.has_table("pool_scores") and lake.has_table("silver_pairs")
    keys = shard_keys()
    started = time.time()
    with _materialize(store_cluster, lake, tmp_path, STAGE2, *stage2_job_args(keys)) as run:
        _finished(run, tmp_path, timeout=900)
    dagster_run, records = _latest_run(store_cluster, started)
    assert dagster_run.status == dg.DagsterRunStatus.SUCCESS
    for op in SHARD_OPS:
        by_worker = _by_worker(records, op)
        print(op, {w: sorted(s) for w, s in by_worker.items()})
        assert set(by_worker) == {"w1", "w2"}, op
    pool = [r["pair_id"] for r in rows(reference, "silver_pairs", order="pair_id")]
    for table, columns in (("pool_scores", "pair_id, shard, p_best, p_gold, needs_judges"),
                           ("filtered_pairs", "pair_id, shard, status, reason, p_best, p_gold, judge_verdict")):
        got = _store_rows(lake, table, columns)
        assert [r[0] for r in got] == pool, table  # every pool pair once
        assert got == [tuple(r[c] for c in columns.split(", ")) for r in rows(reference, table, order="pair_id")]
    # the step values between steps went through the store too, not a disk the workers share
    assert any(k.startswith("_dagster/steps/") for k in _keys(store, lake))


@pytest.mark.slow
def test_pair_embeddings_shards_on_two_celery_workers_into_lancedb_on_the_store(demo, store, store_cluster,
                                                                               tmp_path):
    import numpy as np

    from synpref.silver import vectors

    reference, _, _ = demo
    local = Lake.at(tmp_path / "copy")
    shutil.copytree(reference.root, local.root, symlinks=True)
    shutil.rmtree(local.root / "lancedb")
    lake = Lake.at(f"s3://{BUCKET}/{tmp_path.name}/lake")
    copy_lake(local, lake)
    assert not vectors.has_table(lake) and lake.has_table("silver_pairs")
    started = time.time()
    with _materialize(store_cluster, lake, tmp_path, "pair_embeddings") as run:
        _finished(run, tmp_path, timeout=900)
    dagster_run, records = _latest_run(store_cluster, started)
    assert dagster_run.status == dg.DagsterRunStatus.SUCCESS
    assert set(_by_worker(records, "embed_pool_shard")) == {"w1", "w2"}
    got = {r["pair_id"]: r for r in vectors.open_table(lake).to_arrow().to_pylist()}
    want = {r["pair_id"]: r for r in vectors.open_table(reference).to_arrow().to_pylist()}
    assert vectors.open_table(lake).count_rows() == len(got) == len(want)  # each pair once
    ids = sorted(want)
    assert sorted(got) == ids and [got[i]["text"] for i in ids] == [want[i]["text"] for i in ids]
    assert np.allclose([got[i]["vector"] for i in ids], [want[i]["vector"] for i in ids], atol=1e-5)
    assert vectors.search(lake, np.array([want[ids[0]]["vector"]]), 1,
                          config=vectors.IndexConfig())[0][0][0] == ids[0]
