"""The whole method through Dagster, as the README's main command runs it: Stage 1 in two
rounds (simulated humans, the tiny LLM judges), then Stage 2 over every shard under the
multiprocess executor, killed mid-way and resumed."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
from conftest import SYNPREF, stage2_from_scratch

from dagster_project.definitions import defs
from synpref.lake.duck import connect as duck_connect
from synpref.lake import Lake
from synpref.lake.shards import N_SHARDS

pytestmark = pytest.mark.slow


def _all(lake: Lake, sql: str) -> list[tuple]:
    con = duck_connect(lake, str(lake.db_path), read_only=True)  # its views read paths relative to the root
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _one(lake: Lake, sql: str):
    return _all(lake, sql)[0]


def test_the_demo_console_is_short_and_quiet_and_names_its_log(demo):
    lake, console, _ = demo
    lines = console.splitlines()
    assert len(lines) < 200, console
    # no library warning, Python's or vLLM's or torch's, reaches the console
    assert not re.search(r"Warning\b|WARNING|\[W\d{4}", console), console
    stages = [line for line in lines if line.startswith("==> ")]
    assert len(stages) == 8 and all(re.search(r": done \((\d+m )?\d+s\)$", s) for s in stages), stages
    # everything else is in the run's log, named on the last line
    (log,) = re.findall(r"^The full log of this run .*: (.+)$", console, re.M)
    assert lines[-1].endswith(log) and Path(log).parent == lake.home / "logs"
    text = Path(log).read_text()
    assert "dagster - INFO - ingest_and_clean" in text and "- stage2 -" in text  # Dagster's events, every run's
    assert "starting:" in text and "vllm" in text.lower()  # the RM trainer's lines, the vLLM engine's


def test_demo_runs_both_stages_and_every_count_reconciles(demo):
    lake, stdout, env = demo
    assert "retention by source" in stdout and "http://127.0.0.1:3000" in stdout and "filtered_pairs" in stdout
    assert "duplicate" in stdout  # the planted defects show in the quarantine table
    assert "SIMULATED" in stdout
    # the demo's attributes come from the tiny random LLM, and every row says so (the page's banner)
    assert _one(lake, "select bool_and(test_model), min(model) from pair_attributes") == (True, "tiny")
    # the printed query, pasted into a shell as it stands (the lake's path holds a quote and a space)
    (query,) = [line.strip() for line in stdout.splitlines() if " sql --lake " in line and "filtered_pairs" in line]
    pasted = subprocess.run(["bash", "-c", query + " --format csv"], capture_output=True, text=True, env=env)
    assert pasted.returncode == 0, pasted.stderr
    assert pasted.stdout.splitlines()[0] == "status,reason,pairs,p_gold" and "kept" in pasted.stdout
    # Stage 1: two rounds, each with its RM evaluated on gold and its figures
    rounds = _one(lake, "select count(*), list(round order by round_number), bool_and(simulated_humans) "
                        "from stage1_rounds")
    assert rounds == (2, ["round-1", "round-2"], True)
    # each round's figures are its own tables' counts: the gold pairs it queried around (wrong or
    # unsure: p <= 0.5 from its RM), the distinct pairs retrieved, the demo's --to-humans 8 of them
    # queued for humans and all the rest for the judges, and the gold its humans' labels added
    figures = _all(lake, """
        select r.queries, r.wrong_or_unsure, r.retrieved, r.to_humans, r.to_judges,
               r.gold_pairs_before, r.gold_pairs_after,
               (select count(distinct query_pair_id) from stage1_retrievals as t where t.round = r.round),
               (select count(*) from rm_eval_pairs as p where p.model = r.model and p.model_version = r.model_version
                   and p.pairs_table = 'eval_gold' and p.p_chosen <= 0.5),
               (select count(distinct pair_id) from stage1_retrievals as t where t.round = r.round),
               (select count(*) from annotation_queue as a where a.origin = r.round),
               (select count(*) from judge_queue as j where j.origin = r.round),
               (select count(*) from gold_pairs as g
                   where g.pair_id in (select a.pair_id from annotation_queue as a where a.origin = r.round))
        from stage1_rounds as r order by r.round_number""")
    seed_gold = _one(lake, "select count(*) from gold_pairs where pair_id in "
                           "(select pair_id from annotation_queue where origin = 'seed')")[0]
    gold_before = seed_gold
    for (queries, wrong, retrieved, humans, judges, before, after,
         queried, p_wrong, found, queued_humans, queued_judges, verified) in figures:
        assert (queries, wrong, retrieved) == (queried, p_wrong, found)
        assert humans == queued_humans == min(8, retrieved) and judges == queued_judges == retrieved - humans
        assert before == gold_before and after - before == verified > 0
        gold_before = after
    assert gold_before == _one(lake, "select count(*) from gold_pairs")[0]
    # the recorded k is the paper's: 8 where p <= 0.5, else ceil(8 (1 - p))
    for p, k in _all(lake, "select distinct p_query, k from stage1_retrievals"):
        assert k == (8 if p <= 0.5 else math.ceil(round(8 * (1 - p), 9))), (p, k)
    assert _one(lake, "select count(distinct model) from rm_eval where eval_set = 'gold' "
                      "and model like 'round-%'")[0] == 2
    retrieved = _one(lake, "select count(*) filter (where destination = 'humans'), "
                           "count(*) filter (where destination = 'judges') from stage1_retrievals")
    assert retrieved[0] > 0 and retrieved[1] > 0
    # humans: simulated everywhere they appear
    assert _one(lake, "select bool_and(simulated), count(*) from human_labels")[0] is True
    assert _one(lake, "select bool_and(simulated) from gold_pairs")[0] is True
    # Stage 2: every pool pair scored by both RMs and decided exactly once
    pool = _one(lake, "select count(*) from silver_pairs")[0]
    assert _one(lake, "select count(*), count(distinct pair_id) from pool_scores") == (pool, pool)
    decided = _one(lake, "select count(*), count(distinct pair_id), count(*) filter (where status = 'kept'), "
                         "count(*) filter (where status = 'flipped'), count(distinct shard) from filtered_pairs")
    assert decided[:2] == (pool, pool) and decided[4] == N_SHARDS
    assert _one(lake, "select count(*) from curated_export")[0] == decided[2] + decided[3]
    # the pairs the best RM does not confirm went to the judges, with no humans
    judged = _one(lake, "select count(*) from pool_scores where needs_judges and pair_id not in "
                        "(select pair_id from judge_queue)")[0]
    assert judged == 0
    assert _one(lake, "select count(*) from filtered_pairs where reason = 'human_verified'")[0] == \
        _one(lake, "select count(*) from gold_pairs")[0]
    assert "rm_eval" in stdout
    # the check summary counts every check of the demo's Dagster runs (Stage 2's shard run, a
    # subprocess, included) with its latest result in the instance: each check of every asset the
    # demo materialized, and every one passed
    summary = re.search(r"^data-quality checks: (\d+) of (\d+) passed in the Dagster runs"
                        r"(?:; not passed \(warnings\): (.*))?$", stdout, re.M)
    assert summary, stdout[-3000:]
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        latest = {}
        for run_id in reversed(instance.get_run_ids()):  # oldest first
            for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
                e = entry.dagster_event.asset_check_evaluation_data
                latest[f"{e.asset_key.to_user_string()}:{e.check_name}"] = e.passed
        materialized = set(instance.get_asset_keys())
    expected = {f"{k.asset_key.to_user_string()}:{k.name}" for k in defs.resolve_asset_graph().asset_check_keys
                if k.asset_key in materialized}
    assert set(latest) == expected and {"filtered_pairs:expectations", "pool_scores:expectations"} <= expected
    failed = sorted(k for k, passed in latest.items() if not passed)
    assert summary.groups() == (str(len(expected) - len(failed)), str(len(expected)), ", ".join(failed) or None)
    assert not failed


def test_stage2_killed_mid_run_resumes_without_redoing_finished_shards(demo, tmp_path):
    lake, _, env = demo
    copy = stage2_from_scratch(lake, tmp_path / "lake")
    env = {**env, "DAGSTER_HOME": str(tmp_path / "home")}
    command = [str(SYNPREF), "stage2", "--lake", str(copy.root)]
    with (tmp_path / "killed.log").open("w") as log:
        run = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 600
        while len(copy.table_files("pool_scores")) < 3 and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert run.poll() is None, "stage 2 ended before it could be killed"
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in copy.table_files("pool_scores")}
    assert 3 <= len(finished) < N_SHARDS
    for p in copy.table_files("pool_scores"):  # whatever is visible is whole
        assert pq.read_metadata(p).num_rows > 0
    assert not copy.has_table("filtered_pairs")

    again = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in copy.table_files("pool_scores") if p.name in finished} == finished
    # the finished shards were reused, as the rerun's event log says (its console output can
    # drop a step's line on a loaded machine)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        rerun = instance.get_run_records(dg.RunsFilter(job_name="stage2"), limit=1)[0].dagster_run.run_id
        reused = [e for e in instance.all_logs(rerun) if "pool_scores up to date" in (e.user_message or "")]
    assert len(reused) >= len(finished)
    pool = _one(copy, "select count(*) from silver_pairs")[0]
    assert _one(copy, "select count(*), count(distinct pair_id) from filtered_pairs") == (pool, pool)
    assert _one(copy, "select count(*), count(distinct pair_id) from pool_scores") == (pool, pool)
    # the pool's scores: each pair once per model version, none lost or doubled by the kill
    assert _one(copy, "select count(*) = count(distinct (pair_id, model, model_version)) from pool_model_scores "
                      "where pairs_table = 'silver_pairs'")[0] is True


def test_no_pool_pair_is_scored_by_a_model_that_trained_on_it(demo):
    """p_best is out of fold: read each fold model's frozen training pairs (its data/) and every
    score it gave a pool pair, and check the two never meet; p_best is the mean of exactly one
    score per repeat, and the gold RM is a separately trained model."""
    lake, _, _ = demo
    con = duck_connect(lake, str(lake.db_path), read_only=True)  # its views read paths relative to the root
    try:
        scores = con.execute("""
            select model, model_version, list(pair_id) from pool_model_scores
            where pairs_table = 'silver_pairs' and model like 'fold-%' group by all""").fetchall()
        pool = dict(con.execute("select pair_id, members from pool_scores").fetchall())
        mismatch = con.execute("""
            select count(*) from pool_scores as s join (
                select pair_id, avg(p_chosen) as p, count(*) as n from pool_model_scores
                where pairs_table = 'silver_pairs' and model like 'fold-%' group by pair_id) as f using (pair_id)
            where abs(s.p_best - f.p) > 1e-12 or s.members <> f.n""").fetchone()[0]
        best, gold = con.execute("select any_value(best_model), any_value(gold_model) from pool_scores").fetchone()
    finally:
        con.close()
    repeats = len({name.rsplit("-", 1)[1] for name, _, _ in scores})
    assert {m.removesuffix("-r0") for m, _, _ in scores if m.endswith("-r0")} == {f"fold-{k}" for k in range(5)}
    scored = 0
    for name, version, pair_ids in scores:
        data = lake.root / "models" / "rm" / name / version / "data"
        seen = set(pq.read_table(data / "train.parquet", columns=["pair_id"])["pair_id"].to_pylist())
        assert seen and not seen & set(pair_ids), f"{name} {version} scored pairs it trained on"
        scored += len(pair_ids)
    assert set(pool.values()) == {repeats} and scored == repeats * len(pool)
    assert mismatch == 0
    assert (best, gold) == ("fold-models", "gold")
