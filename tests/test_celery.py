"""Stage 2 past one machine: the same sharded assets under Dagster's Celery executor, on a real
Redis (Debian's redis-server on 127.0.0.1) and two real dagster-celery workers; then one
worker SIGKILLed mid-shard. Both runs must give the one-machine run's result, pair for pair;
so must the pair attributes (the LLM annotator in the workers) and the pair embeddings,
shard by shard on both workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml
from synpref.lake.duck import lit
from conftest import stage2_from_scratch
from support.celery_cluster import LocalCluster, stage2_run_config

from dagster_project.jobs import JOBS
from dagster_project.run_events import shard_steps, step_records
from synpref.lake import Lake
from synpref.lake.shards import N_SHARDS, shard_keys

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
STAGE2 = "stage2"  # the job: pool_scores, judge_queue, judge_votes, silver_labels, filtered_pairs
SHARD_OPS = ("score_shard", "judge_shard", "filter_one_shard")
# Redis hands a message not acked within the visibility timeout to another worker: an unfinished
# shard, whether its worker died or is only slow. Longer than any run of these tests (600 s), no
# step can be handed out twice, however loaded the machine; the kill test needs a short one (a
# dead worker's shard waits this long, + a 5 s sweep), and then a slow step may run twice.
NEVER_TWICE_S = 3600
AFTER_A_KILL_S = 60


@contextmanager
def _cluster(demo, folder: Path, visibility_timeout: int):
    """Redis and two workers, w1 and w2, one shard at a time each; all stopped afterwards."""
    if subprocess.run(["bash", str(ROOT / "scripts" / "install_redis.sh")], timeout=600).returncode:
        pytest.fail("redis-server is missing and could not be installed (scripts/install_redis.sh)")
    _, _, env = demo
    env = {**env, "DAGSTER_HOME": str(folder / "home")}
    (folder / "home").mkdir()
    with LocalCluster(folder, env, visibility_timeout=visibility_timeout) as c:
        c.start_worker("w1")
        c.start_worker("w2")
        yield c


@pytest.fixture(scope="module")
def cluster(demo, tmp_path_factory):
    with _cluster(demo, tmp_path_factory.mktemp("celery"), NEVER_TWICE_S) as c:
        yield c


@pytest.fixture
def redelivering_cluster(demo, tmp_path_factory):
    with _cluster(demo, tmp_path_factory.mktemp("celery-kill"), AFTER_A_KILL_S) as c:
        yield c


@contextmanager
def _stage2_run(cluster: LocalCluster, reference: Lake, tmp_path: Path):
    """The README's command on a copy of the lake without Stage 2: one run over every shard,
    the executor chosen by the run config. Yields the copy and the running CLI."""
    lake = stage2_from_scratch(reference, tmp_path / "lake")
    keys = shard_keys()
    with _materialize(cluster, lake, tmp_path, STAGE2, *stage2_job_args(keys)) as run:
        yield lake, run


def stage2_job_args(keys: list[str]) -> list[str]:
    """`dagster job execute` arguments of the stage2 job over the shards `keys` (one run)."""
    return ["--tags", json.dumps({"dagster/asset_partition_range_start": keys[0],
                                  "dagster/asset_partition_range_end": keys[-1]})]


@contextmanager
def _materialize(cluster: LocalCluster, lake: Lake, tmp_path: Path, select: str, *args: str):
    """`dagster job execute` of a named job (as the CLI runs stage2), else `dagster asset
    materialize` of the selection, on the lake under Celery; yields the CLI process."""
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(stage2_run_config(cluster.settings, lake.root)))
    what = ["job", "execute", "-j", select] if select in JOBS else ["asset", "materialize", "--select", select]
    with (tmp_path / "run.log").open("w") as log:
        run = subprocess.Popen(
            ["env", "--default-signal=INT,TERM", str(Path(sys.executable).with_name("dagster")), *what[:2],
             "-m", "dagster_project.definitions", *what[2:], *args, "-c", str(config)],
            cwd=ROOT, env=cluster.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield run
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
            run.wait(timeout=30)


def _finished(run: subprocess.Popen, tmp_path: Path, timeout: float) -> None:
    assert run.wait(timeout=timeout) == 0, (tmp_path / "run.log").read_text()[-4000:]


def _latest_run(cluster: LocalCluster, after: float):
    with dg.DagsterInstance.from_config(cluster.env["DAGSTER_HOME"]) as instance:
        runs = [r for r in instance.get_run_records(limit=5) if r.create_timestamp.timestamp() >= after]
        return (runs[0].dagster_run, step_records(instance, runs[0].dagster_run.run_id)) if runs else (None, {})


def _table(lake: Lake, table: str, columns: str) -> list[tuple]:
    con = duckdb.connect()
    try:
        return con.execute(f"select {columns} from read_parquet({lit(lake.table_glob(table))}) "
                           f"order by pair_id").fetchall()
    finally:
        con.close()


FILTER_COLUMNS = "pair_id, shard, status, reason, p_best, p_gold, judge_verdict"


def _assert_same_result(lake: Lake, reference: Lake) -> None:
    """Each pool pair exactly once in pool_scores and filtered_pairs, as in the one-machine run."""
    pool = {r[0] for r in _table(reference, "silver_pairs", "pair_id")}
    for table, columns in (("pool_scores", "pair_id, shard, p_best, p_gold, needs_judges"),
                           ("filtered_pairs", FILTER_COLUMNS)):
        rows = _table(lake, table, columns)
        assert len(rows) == len({r[0] for r in rows}) == len(pool), table
        assert {r[0] for r in rows} == pool, table
        assert rows == _table(reference, table, columns), table
    # the pool's RM scores: each pair once by the gold RM and once per repeat by the fold model
    # that never saw it; none lost or doubled
    scored = [r for r in _table(lake, "pool_model_scores", "pair_id, model, model_version, pairs_table")
              if r[3] == "silver_pairs"]
    repeats = {r[0] for r in _table(lake, "pool_scores", "members")}
    assert len(repeats) == 1 and len(scored) == len(set(scored)) == (repeats.pop() + 1) * len(pool)


def test_stage2_on_two_celery_workers_gives_the_one_machine_result(demo, cluster, tmp_path):
    reference, _, _ = demo
    started = time.time()
    with _stage2_run(cluster, reference, tmp_path) as (lake, run):
        _finished(run, tmp_path, timeout=600)
    dagster_run, records = _latest_run(cluster, started)
    assert dagster_run.status == dg.DagsterRunStatus.SUCCESS
    # every shard step of the three assets ran on a Celery worker, and both workers took shards
    by_worker: dict[str, list[str]] = {}
    for op in SHARD_OPS:
        steps = shard_steps(records, op)
        assert sorted(steps) == shard_keys(), op
        for shard, record in steps.items():
            assert len(record.workers) == 1 and record.successes == 1, (op, shard, record)
            by_worker.setdefault(record.workers[0].split("@")[0], []).append(f"{op}[{shard}]")
    print({w: sorted(s) for w, s in by_worker.items()})
    assert set(by_worker) == {"w1", "w2"}
    _assert_same_result(lake, reference)


def _shards_on_both_workers(cluster: LocalCluster, reference: Lake, tmp_path: Path, asset: str, op: str,
                            remove) -> Lake:
    """Materialise an unpartitioned sharded asset on a copy of the lake without it (`remove`):
    the run succeeds, each shard step ran once on one worker, and both workers took shards."""
    import shutil

    lake = Lake.at(tmp_path / "lake")
    shutil.copytree(reference.root, lake.root, symlinks=True)
    remove(lake)
    started = time.time()
    with _materialize(cluster, lake, tmp_path, asset) as run:
        _finished(run, tmp_path, timeout=600)
    dagster_run, records = _latest_run(cluster, started)
    assert dagster_run.status == dg.DagsterRunStatus.SUCCESS
    steps = shard_steps(records, op)
    assert sorted(steps) == shard_keys()
    by_worker: dict[str, list[str]] = {}
    for shard, record in steps.items():
        assert len(record.workers) == 1 and record.successes == 1, (shard, record)
        by_worker.setdefault(record.workers[0].split("@")[0], []).append(shard)
    print(asset, {w: sorted(s) for w, s in by_worker.items()})
    assert set(by_worker) == {"w1", "w2"}
    return lake


def test_pair_embeddings_shards_on_two_celery_workers_give_the_one_machine_table(demo, cluster, tmp_path):
    """Both workers append their shards' vectors to the one LanceDB table at once; the table
    then holds each silver pair once, with the one-machine run's vector and text."""
    import shutil

    import numpy as np

    from synpref.silver import vectors

    reference, _, _ = demo
    lake = _shards_on_both_workers(cluster, reference, tmp_path, "pair_embeddings", "embed_pool_shard",
                                   remove=lambda lake: shutil.rmtree(lake.root / "lancedb"))
    got = {r["pair_id"]: r for r in vectors.open_table(lake).to_arrow().to_pylist()}
    want = {r["pair_id"]: r for r in vectors.open_table(reference).to_arrow().to_pylist()}
    assert vectors.open_table(lake).count_rows() == len(got) == len(want)
    assert set(got) == set(want) == {r[0] for r in _table(reference, "silver_pairs", "pair_id")}
    ids = sorted(want)
    assert [got[i]["text"] for i in ids] == [want[i]["text"] for i in ids]
    assert np.allclose([got[i]["vector"] for i in ids], [want[i]["vector"] for i in ids], atol=1e-5)


def test_pair_attributes_shards_on_two_celery_workers_annotate_every_pair_once(demo, cluster, tmp_path):
    """The LLM annotator (vLLM, the tiny model) in a Celery worker, one engine per shard step."""
    import shutil

    reference, _, _ = demo
    lake = _shards_on_both_workers(cluster, reference, tmp_path, "pair_attributes", "annotate_shard",
                                   remove=lambda lake: shutil.rmtree(lake.table_dir("pair_attributes")))
    got = _table(lake, "pair_attributes", "pair_id, model, prompt_version")
    want = _table(reference, "pair_attributes", "pair_id, model, prompt_version")
    assert len(got) == len({r[0] for r in got}) == len(want)  # each pair once
    assert got == want


def _first_shard_running(cluster: LocalCluster, run: subprocess.Popen, started: float) -> tuple[str, str]:
    """(worker, shard) of the first scoring step a worker has taken and not finished."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and run.poll() is None:
        _, records = _latest_run(cluster, started)
        running = {k: r for k, r in shard_steps(records, "score_shard").items() if r.workers and not r.successes}
        if running:
            shard, record = sorted(running.items())[0]
            return record.workers[0].split("@")[0], shard
        time.sleep(0.2)
    raise AssertionError("no shard step started on a worker")


def test_a_worker_killed_mid_shard_its_shard_runs_on_the_other(demo, redelivering_cluster, tmp_path):
    cluster = redelivering_cluster
    reference, _, _ = demo
    started = time.time()
    with _stage2_run(cluster, reference, tmp_path) as (lake, run):
        victim, shard = _first_shard_running(cluster, run, started)
        cluster.workers[victim].kill()  # the whole worker, as if its machine were lost
        killed_at = time.time()
        _finished(run, tmp_path, timeout=600)
    dagster_run, records = _latest_run(cluster, started)
    assert dagster_run.status == dg.DagsterRunStatus.SUCCESS
    record = shard_steps(records, "score_shard")[shard]
    survivor = ({"w1", "w2"} - {victim}).pop()
    # started on the victim, never finished there; handed to the survivor, which finished it
    # (again, should it have outlasted the short visibility timeout on a loaded machine)
    workers = [w.split("@")[0] for w in record.workers]
    assert workers[0] == victim and set(workers[1:]) == {survivor}, record
    assert record.successes >= 1 and record.succeeded > killed_at
    print(f"killed {victim} during score_shard[{shard}]; re-run on {survivor} "
          f"{record.succeeded - killed_at:.1f} s after the kill")
    for op in SHARD_OPS:  # every shard step done, on the survivor once the victim was gone
        steps = shard_steps(records, op)
        assert sorted(steps) == shard_keys() and all(r.successes >= 1 for r in steps.values()), op
    assert len(shard_steps(records, "score_shard")) == N_SHARDS
    # what counts: each pool pair once, exactly as in the one-machine run
    _assert_same_result(lake, reference)
