"""Real DeepSpeed on the CPU: the tiny encoder learns a toy preference signal in one process
and in two processes through the DeepSpeed launcher, and a run killed after a checkpoint
resumes from it and ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import TINY_RM_SETTINGS, toy_pairs_table
from support.kill import kill_after_a_checkpoint
from models.launch import LaunchConfig, free_port, run_streamed, training_command, training_env
from models.scorer import Scorer

pytestmark = pytest.mark.slow
CPU = "cpu"


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    pq.write_table(toy_pairs_table(256, seed=1), folder / "train.parquet")
    pq.write_table(toy_pairs_table(48, seed=2), folder / "eval.parquet")
    return folder


def _args(toy_files, out, tiny_rm_config_file) -> list[str]:
    return ["--train", str(toy_files / "train.parquet"), "--eval", str(toy_files / "eval.parquet"),
            "--out", str(out), "--config", str(tiny_rm_config_file)]


def _train(launch: LaunchConfig, args: list[str]) -> list[str]:
    lines: list[str] = []
    run_streamed(training_command(launch, args), training_env(launch), lines.append)
    return lines


def _events(out, kind: str) -> list[dict]:
    return [e for e in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if e["event"] == kind]


def _assert_learned(out, world_size: int):
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["world_size"] == world_size
    assert metrics["steps"] == 4 * (256 // TINY_RM_SETTINGS["global_batch_size"])  # 4 epochs
    losses = [e["loss"] for e in _events(out, "train")]
    assert losses[0] > 0.6 and losses[-1] < 0.5 * losses[0], losses  # the loss falls on the signal
    assert metrics["best"]["accuracy"] >= 0.9
    return metrics


@pytest.fixture(scope="module")
def uninterrupted(toy_files, tiny_rm_config_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "one-process"
    _train(LaunchConfig(accelerator=CPU), _args(toy_files, out, tiny_rm_config_file))
    return out


def test_one_process_learns_and_keeps_its_best_checkpoint(uninterrupted, toy_files):
    from transformers import AutoModelForSequenceClassification

    metrics = _assert_learned(uninterrupted, world_size=1)
    assert metrics["accumulation_steps"] == 2 and metrics["precision"] == "fp32"
    # best/ is a plain transformers folder: it loads and scores the eval pairs as training saw it
    model = AutoModelForSequenceClassification.from_pretrained(uninterrupted / "best")
    assert model.config.num_labels == 1
    evals = {e["step"]: e for e in _events(uninterrupted, "eval")}
    best_step = max(evals, key=lambda s: (evals[s]["accuracy"], -evals[s]["loss"]))
    assert metrics["best"]["step"] == best_step and (uninterrupted / "best").resolve().name == f"step-{best_step:06d}"
    pairs = pq.read_table(toy_files / "eval.parquet").to_pydict()
    rc, rr, _ = Scorer(uninterrupted / "best").score(pairs["conversation"], pairs["chosen"], pairs["rejected"])
    assert np.mean(rc > rr) == pytest.approx(metrics["best"]["accuracy"])
    assert float(np.mean(np.logaddexp(0, rr - rc))) == pytest.approx(metrics["best"]["loss"], abs=1e-5)
    # checkpoints: DeepSpeed's, the last `keep_checkpoints` of them
    tags = sorted(p.name for p in (uninterrupted / "checkpoints").glob("step-*"))
    assert tags == ["step-000060", "step-000064"]
    assert (uninterrupted / "checkpoints" / "latest").read_text().strip() == "step-000064"


def test_two_processes_through_the_deepspeed_launcher(toy_files, tiny_rm_config_file, tmp_path):
    out = tmp_path / "two-processes"
    lines = _train(LaunchConfig(launcher="deepspeed", processes=2, accelerator=CPU),
                   _args(toy_files, out, tiny_rm_config_file))
    metrics = _assert_learned(out, world_size=2)
    assert metrics["accumulation_steps"] == 1  # 16 pairs a step = 2 processes x 8 pairs
    assert sum("exits successfully" in line for line in lines) == 2  # the launcher's two ranks
    assert _events(out, "start")[0]["world_size"] == 2


def test_two_nodes_from_one_hostfile(toy_files, tiny_rm_config_file, tmp_path):
    """DeepSpeed's multi-node launch: one hostfile, each node started with its own rank and
    rank 0's address (no ssh, as a Kubernetes job or Slurm starts nodes); here both nodes are
    this machine, one CPU process each, over gloo on 127.0.0.1."""
    hostfile = tmp_path / "hostfile"
    hostfile.write_text("node-a slots=1\nnode-b slots=1\n")
    out, port = tmp_path / "two-nodes", free_port()
    args = _args(toy_files, out, tiny_rm_config_file)
    nodes = []
    try:
        for rank in (0, 1):
            launch = LaunchConfig(launcher="deepspeed", processes=1, accelerator=CPU, hostfile=str(hostfile),
                                  master_addr="127.0.0.1", master_port=port, node_rank=rank)
            command = training_command(launch, args)
            assert command[command.index("--hostfile"):command.index("--num_gpus")] == [
                "--hostfile", str(hostfile), "--master_addr", "127.0.0.1", "--no_ssh", "--node_rank", str(rank)]
            with (tmp_path / f"node-{rank}.log").open("w") as log:
                nodes.append(subprocess.Popen(command, env={**os.environ, **training_env(launch)}, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True))
        codes = [node.wait(timeout=600) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
    assert codes == [0, 0], (tmp_path / "node-1.log").read_text()[-3000:]
    metrics = _assert_learned(out, world_size=2)
    assert metrics["accumulation_steps"] == 1  # 16 pairs a step = 2 nodes x 8 pairs


def test_a_killed_run_resumes_from_its_checkpoint(uninterrupted, toy_files, tiny_rm_config_file, tmp_path):
    out = tmp_path / "killed"
    launch = LaunchConfig(accelerator=CPU)
    args = _args(toy_files, out, tiny_rm_config_file)
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(training_command(launch, args), env={**os.environ, **training_env(launch)},
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    saved = kill_after_a_checkpoint(first, out, tmp_path / "first.log")
    assert 0 < saved < 64 and saved % TINY_RM_SETTINGS["save_every"] == 0

    lines = _train(launch, args)
    assert any(line.startswith(f"resumed from step {saved}:") for line in lines)
    starts = _events(out, "start")
    assert [s["resumed_from"] for s in starts] == [0, saved]
    resumed_steps = [e["step"] for e in _events(out, "train") if e["time"] > starts[1]["time"]]
    assert resumed_steps[0] > saved  # nothing before the checkpoint was trained again
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["resumed_from"] == saved and metrics["status"] == "complete"
    # same data order, optimizer and schedule state: it ends where the uninterrupted run ended
    reference = json.loads((uninterrupted / "metrics.json").read_text())
    assert metrics["final_loss"] == pytest.approx(reference["final_loss"], rel=1e-4)
    assert metrics["best"]["loss"] == pytest.approx(reference["best"]["loss"], rel=1e-4)
    assert metrics["best"]["step"] == reference["best"]["step"]


def test_a_causal_lm_trains_on_its_chat_template(toy_files, tiny_model, tmp_path):
    """A Llama backbone (the tiny local test LLM) gets a reward head and its chat template."""
    from transformers import AutoModelForSequenceClassification

    out = tmp_path / "llama-rm"
    _train(LaunchConfig(accelerator=CPU), [
        "--train", str(toy_files / "train.parquet"), "--eval", str(toy_files / "eval.parquet"), "--out", str(out),
        "--backbone", str(tiny_model), "--max_length", "256", "--learning_rate", "1e-3", "--global_batch_size", "16",
        "--micro_batch_size", "8", "--max_steps", "6", "--eval_every", "3", "--save_every", "3", "--log_every", "3"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["input_format"] == "chat_template"
    losses = [e["loss"] for e in _events(out, "train")]
    assert len(losses) == 2 and all(np.isfinite(loss) for loss in losses)  # logged at steps 3 and 6
    model = AutoModelForSequenceClassification.from_pretrained(out / "best")
    assert type(model).__name__ == "LlamaForSequenceClassification" and model.config.pad_token_id is not None
    pairs = pq.read_table(toy_files / "eval.parquet").to_pydict()
    rc, rr, _ = Scorer(out / "best").score(pairs["conversation"], pairs["chosen"], pairs["rejected"])
    assert np.mean(rc > rr) == pytest.approx(metrics["best"]["accuracy"])


def test_frozen_bottom_layers_keep_the_backbone_weights_and_the_top_still_learns(toy_files, tiny_encoder, tmp_path):
    import torch
    import yaml
    from transformers import AutoModelForSequenceClassification

    from conftest import TINY_RM_SETTINGS

    config = tmp_path / "frozen.yaml"
    config.write_text(yaml.safe_dump({"backbone": str(tiny_encoder), **TINY_RM_SETTINGS, "freeze_layers": 1}))
    out = tmp_path / "frozen"
    lines = _train(LaunchConfig(accelerator=CPU), ["--train", str(toy_files / "train.parquet"), "--eval",
                                                   str(toy_files / "eval.parquet"), "--out", str(out),
                                                   "--config", str(config)])
    assert any("embeddings and 1 bottom layers frozen" in line for line in lines), lines[-10:]
    before = AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=1).state_dict()
    after = AutoModelForSequenceClassification.from_pretrained(out / "best").state_dict()
    frozen = [k for k in before if k.startswith(("bert.embeddings.", "bert.encoder.layer.0."))]
    trained = [k for k in before if k.startswith("bert.encoder.layer.1.")]
    assert frozen and trained
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert not all(torch.equal(before[k], after[k]) for k in trained)
    assert json.loads((out / "metrics.json").read_text())["best"]["accuracy"] >= 0.8  # the toy signal, still
