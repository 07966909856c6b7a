"""The whole method as Dagster runs, for the CLI: Stage 1 rounds and Stage 2 over the shards.

Every step is a run of one of the project's named jobs (dagster_project/jobs.py) on the lake's
Dagster instance, so the UI shows each round and each Stage 2 run by name, with its logs and
metadata. A round is two runs, as it is for people: `stage1_round` trains the round's RM and
queues the retrieved pairs for humans and judges; `stage1_round_finish` (once humans have
labelled) seals the labels, rebuilds gold, runs the judges and records the round. Stage 2 trains
the gold RM and the fold models in-process (`stage2_models`), then runs `stage2` over every shard
in one run under the multiprocess executor (one step per shard), then `export`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import click
import dagster as dg
import yaml

from dagster_project.definitions import build_defs
from dagster_project.partitions import STAGE1_ROUNDS
from synpref.gold import stage1
from synpref.rm.crossfit import fold_keys
from synpref.lake import Lake
from synpref.lake.shards import shard_keys


# (asset, check) -> passed, for every check run by run() in this process (the demo's summary)
CHECKS: dict[tuple[str, str], bool] = {}
# what failed in run() in this process, one line each (a quiet console repeats them)
FAILURES: list[str] = []


def execute(lake: Lake, job: str, partition_key: str | None = None, ops: dict | None = None,
            tags: dict | None = None, partition_range: tuple[str, str] | None = None, log_level: str = "INFO",
            resources: dict | None = None):
    """One in-process run of the named job (its assets and their checks) on the lake's instance;
    a partition range runs as one run (the assets' single-run backfill policy); `resources`
    replace the default ones (a trainer with another launcher). Returns the result."""
    if partition_range:
        tags = {**(tags or {}), "dagster/asset_partition_range_start": partition_range[0],
                "dagster/asset_partition_range_end": partition_range[1]}
    return build_defs(str(lake.root), **(resources or {})).resolve_job_def(job).execute_in_process(
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}, "ops": ops or {}},
        instance=dg.DagsterInstance.get(), partition_key=partition_key, raise_on_error=False,
        tags={"launched_by": "synpref-cli", **(tags or {})})


def failures(result) -> list[str]:
    """What went wrong in a run, one line per failed step."""
    return [f"{e.step_key}: {e.step_failure_data.error.message.strip()}" for e in result.all_events
            if e.is_step_failure and e.step_failure_data]


def run(lake: Lake, job: str, partition_key: str | None = None, ops: dict | None = None,
        tags: dict | None = None, partition_range: tuple[str, str] | None = None) -> bool:
    """execute(), its failures and blocking check failures said on stderr, its checks kept in CHECKS."""
    result = execute(lake, job, partition_key, ops, tags, partition_range)
    for failure in failures(result):
        FAILURES.append(f"FAILED {failure}")
        click.echo(f"FAILED {failure}", err=True)
    evaluations = result.get_asset_check_evaluations()
    CHECKS.update({(e.asset_key.to_user_string(), e.check_name): e.passed for e in evaluations})
    blocking = [e for e in evaluations if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR]
    for e in blocking:
        FAILURES.append(f"FAILED check {e.asset_key.to_user_string()}:{e.check_name}")
        click.echo(FAILURES[-1], err=True)
    return result.success and not blocking


def queue_seed(lake: Lake, seed_gold: int) -> int | None:
    """Queue the seed set for humans (up to `seed_gold` pairs over all runs; objective and
    low-controversy first) with the queue_for_humans job; returns the pairs queued now (None on failure)."""
    before = stage1.queued_for_humans(lake, stage1.SEED_ORIGIN)
    ok = run(lake, "queue_for_humans", ops={"annotation_queue": {"config": {
        "sql": "select pair_id from silver_pairs", "origin": stage1.SEED_ORIGIN, "size": max(0, seed_gold - before)}}})
    return stage1.queued_for_humans(lake, stage1.SEED_ORIGIN) - before if ok else None


def record_checks(instance: dg.DagsterInstance, run_ids: list[str]) -> None:
    """Add the check results of runs launched outside run() (oldest first, the latest result of a
    check wins) to CHECKS."""
    for run_id in reversed(run_ids):  # get_run_ids lists the newest first
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            e = entry.dagster_event.asset_check_evaluation_data
            CHECKS[(e.asset_key.to_user_string(), e.check_name)] = e.passed


def rounds_started(instance: dg.DagsterInstance) -> list[str]:
    keys = instance.get_dynamic_partitions(STAGE1_ROUNDS)
    return sorted(keys, key=stage1.round_number)


def start_round(lake: Lake, to_humans: int = stage1.RoundSettings.to_humans, simulated_humans: bool = False,
                model_overrides: dict | None = None, echo=click.echo) -> str | None:
    """Add the next round (round-N) and run its start: the round RM, retrieval, the queues.
    `simulated_humans` (demo lakes only): simulated annotators then label the round's pairs for
    humans, into the label journal, as people on the annotation page would."""
    from synpref.demo.simulated import simulate_annotators

    instance = dg.DagsterInstance.get()
    started = rounds_started(instance)
    key = stage1.round_key(stage1.round_number(started[-1]) + 1 if started else 1)
    instance.add_dynamic_partitions(STAGE1_ROUNDS, [key])
    ok = run(lake, "stage1_round", key, ops={
        "round_reward_model": {"config": model_overrides or {}},
        "stage1_retrievals": {"config": {"to_humans": to_humans}}})
    if ok and simulated_humans:
        echo(f"    {simulate_annotators(lake, origin=key):,} SIMULATED human labels on {key}'s pairs "
             f"(journaled like the annotation page's)")
    return key if ok else None


def finish_round(lake: Lake, key: str) -> bool:
    """Seal the round's human labels into gold, judge its queued pairs (one step: a round's queue
    is small, and one model load serves it), record its figures."""
    return run(lake, "stage1_round_finish", key,
               ops={"judge_votes": {"ops": {"plan_judging": {"config": {"per_shard": False}},
                                            "judge_shard": {"config": {"per_shard": False}}}}})


def _on_this_lake(run_config: Path, lake: Lake) -> Path:
    """The run config with the lake root set for the lake and step-value resources (the
    workers read it from there, not from their environment); a different root is an error."""
    config = yaml.safe_load(run_config.read_text()) or {}
    for key in ("lake", "io_manager"):
        resource = config.setdefault("resources", {}).setdefault(key, {}).setdefault("config", {})
        root = resource.setdefault("root", str(lake.root))
        if Lake.at(root).root != lake.root:
            raise click.UsageError(f"{run_config}: resources.{key}.config.root is {root}, not the lake {lake.root}")
    merged = lake.home / "_dagster" / "run_config" / f"stage2-{run_config.stem}.yaml"
    merged.parent.mkdir(parents=True, exist_ok=True)
    merged.write_text(yaml.safe_dump(config))
    return merged


@dataclass
class Stage2Result:
    ok: bool
    returncode: int


def run_stage2(lake: Lake, model_overrides: dict | None = None, max_concurrent: int | None = None,
               run_config: Path | None = None, rule: str | None = None, in_process: bool = False) -> Stage2Result:
    """The gold RM and the fold models, then every shard through scoring, the judges and the
    filter (one run over the shard range, under the multiprocess executor or the one
    `run_config` selects, e.g. Celery; `in_process`: every step in one process, one after
    another), then the export. `rule` picks the filter's rule (synpref/filtered/filtering.py
    RULES; default the paper's)."""
    if not run(lake, "stage2_models", ops={"gold_reward_model": {"config": model_overrides or {}}},
               partition_range=(fold_keys()[0], fold_keys()[-1])):
        return Stage2Result(False, 1)
    keys = shard_keys()
    if in_process and not run_config:  # in this process, as the other stages run
        ops = {"filtered_pairs": {"ops": {"filter_one_shard": {"config": {"rule": rule}}}}} if rule else None
        if not run(lake, "stage2", ops=ops, partition_range=(keys[0], keys[-1])):
            return Stage2Result(False, 1)
        return Stage2Result(run(lake, "export"), 0)
    command = [sys.executable, "-m", "dagster_project.dagster_cli", "job", "execute",
               "-m", "dagster_project.definitions", "-j", "stage2",
               "--tags", json.dumps({"launched_by": "synpref-cli", "dagster/asset_partition_range_start": keys[0],
                                     "dagster/asset_partition_range_end": keys[-1]})]
    config = yaml.safe_load(_on_this_lake(run_config, lake).read_text()) if run_config else {}
    if max_concurrent:
        config["execution"] = {"config": {"multiprocess": {"max_concurrent": int(max_concurrent)}}}
    if in_process:  # a run config's other settings, with every step in the one process
        config["execution"] = {"config": {"in_process": {}}}
    if rule:  # merged into whatever the run config sets for the filter
        op = config.setdefault("ops", {}).setdefault("filtered_pairs", {}).setdefault("ops", {})
        op.setdefault("filter_one_shard", {}).setdefault("config", {})["rule"] = rule
    if config:
        merged = lake.home / "_dagster" / "run_config" / (f"stage2-{run_config.stem if run_config else 'cli'}-"
                                                           f"{uuid.uuid4().hex[:8]}.yaml")  # one per run
        merged.parent.mkdir(parents=True, exist_ok=True)
        merged.write_text(yaml.safe_dump(config))
        command += ["-c", str(merged)]
    env = {**os.environ, "SYNPREF_LAKE": str(lake.root)}
    instance = dg.DagsterInstance.get()
    before = set(instance.get_run_ids())
    done = subprocess.run(command, env=env)
    # the shards' run is another process's: its checks count in the summary too
    record_checks(instance, [r for r in instance.get_run_ids() if r not in before])
    if done.returncode != 0:
        FAILURES.append(f"FAILED the stage2 run over the shards (`dagster job execute` exited {done.returncode})")
        return Stage2Result(False, done.returncode)
    return Stage2Result(run(lake, "export"), 0)
