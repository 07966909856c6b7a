"""The code location's executor selector: the documented run configs (dagster_project/run_config/)
are valid for the job as written, Kubernetes included (checked against dagster-k8s's own
schema, not run), and a misspelt key is refused."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from dagster_project.definitions import defs
from support.celery_cluster import celery_settings, stage2_run_config

RUN_CONFIG = Path(__file__).resolve().parents[1] / "dagster_project" / "run_config"


@pytest.fixture(scope="module")
def job():
    return defs.resolve_implicit_global_asset_job_def()


@pytest.mark.parametrize("name", ["celery.yaml", "k8s.yaml"])
def test_the_documented_run_configs_are_valid(job, name):
    dg.validate_run_config(job, yaml.safe_load((RUN_CONFIG / name).read_text()))


def test_the_worker_config_is_the_runs_celery_block():
    run = yaml.safe_load((RUN_CONFIG / "celery.yaml").read_text())
    worker = yaml.safe_load((RUN_CONFIG / "celery_worker.yaml").read_text())
    assert worker["execution"]["config"] == run["execution"]["config"]["celery"]
    # and the tests' cluster uses the same settings, with its own broker and a short timeout
    settings = celery_settings("redis://broker.internal:6379", visibility_timeout=7200)
    assert settings == worker["execution"]["config"]


def test_multiprocess_stays_the_default_and_others_are_config(job):
    dg.validate_run_config(job, {})
    dg.validate_run_config(job, {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}})
    dg.validate_run_config(job, stage2_run_config(celery_settings("redis://127.0.0.1:6379"), "/mnt/lake"))
    with pytest.raises(dg.DagsterInvalidConfigError):
        dg.validate_run_config(job, {"execution": {"config": {"k8s": {"job_namespce": "synpref"}}}})
    with pytest.raises(dg.DagsterInvalidConfigError):  # one executor at a time
        dg.validate_run_config(job, {"execution": {"config": {"multiprocess": {}, "in_process": {}}}})


def test_the_k8s_gpu_steps_are_ops_of_the_job(job):
    """dagster-k8s matches per_step_k8s_config by op name: a renamed op would lose its GPU silently."""
    k8s = yaml.safe_load((RUN_CONFIG / "k8s.yaml").read_text())["execution"]["config"]["k8s"]
    ops = {op.name for op in job.graph.iterate_op_defs()}
    assert set(k8s["per_step_k8s_config"]) == {"annotate_shard", "embed_pool_shard", "score_shard", "judge_shard"}
    assert set(k8s["per_step_k8s_config"]) <= ops
