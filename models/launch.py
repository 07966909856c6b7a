"""How the training script is started: one process, the DeepSpeed launcher, or torchrun.

The command is built here and run by whoever launches it (a plain subprocess, or Dagster
Pipes); the environment it needs is built here too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

LAUNCHERS = ("python", "deepspeed", "torchrun")
ACCELERATORS = ("auto", "cpu", "cuda")
SCRIPT_MODULE = "models.train_rm"
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class LaunchConfig:
    launcher: str = "python"  # python: one process; deepspeed / torchrun: `processes` on this machine
    processes: int = 1  # data-parallel processes (GPUs; on the CPU, processes sharing the cores)
    accelerator: str = "auto"  # auto: GPUs when torch sees them, else the CPU
    master_port: int | None = None  # None: a free port (29500 across nodes: the master's port)
    # Across nodes (deepspeed only): a DeepSpeed hostfile ("node1 slots=8" per line, the first
    # node the master), and how many of its nodes to use; `processes` is then GPUs per node.
    hostfile: str | None = None
    nodes: int | None = None  # None: every node of the hostfile
    master_addr: str | None = None  # None: the hostfile's first node
    # None: this machine starts every node over ssh (pdsh, DeepSpeed's default). N: start only
    # node N's processes here (--no_ssh), the same command run on each node with its own rank,
    # as a Kubernetes job or Slurm does; master_addr is then required.
    node_rank: int | None = None

    def __post_init__(self):
        if self.hostfile and self.launcher != "deepspeed":
            raise ValueError("a hostfile is DeepSpeed's (multi-node) launch: set launcher to deepspeed")
        if self.node_rank is not None and not (self.hostfile and self.master_addr):
            raise ValueError("node_rank (a launch without ssh) needs a hostfile and master_addr")
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"launcher must be one of {LAUNCHERS}, not {self.launcher!r}")
        if self.accelerator not in ACCELERATORS:
            raise ValueError(f"accelerator must be one of {ACCELERATORS}, not {self.accelerator!r}")
        if self.processes < 1 or (self.launcher == "python" and self.processes != 1):
            raise ValueError("the python launcher runs one process; use deepspeed or torchrun for more")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def training_command(launch: LaunchConfig, script_args: list[str]) -> list[str]:
    py = sys.executable
    port = str(launch.master_port or (29500 if launch.hostfile else free_port()))
    if launch.launcher == "python":
        return [py, "-m", SCRIPT_MODULE, *script_args]
    if launch.launcher == "deepspeed":
        # across nodes the runner starts the same python and module on each host over ssh (pdsh),
        # in this directory: the code, venv and lake must be at the same paths on every node
        nodes = ["--hostfile", launch.hostfile, *(["--num_nodes", str(launch.nodes)] if launch.nodes else []),
                 *(["--master_addr", launch.master_addr] if launch.master_addr else []),
                 *(["--no_ssh", "--node_rank", str(launch.node_rank)] if launch.node_rank is not None else [])
                 ] if launch.hostfile else []
        return [py, "-m", "deepspeed.launcher.runner", *nodes, "--num_gpus", str(launch.processes),
                "--master_port", port, "--module", SCRIPT_MODULE, *script_args]
    return [py, "-m", "torch.distributed.run", "--nproc_per_node", str(launch.processes), "--master_port", port,
            "-m", SCRIPT_MODULE, *script_args]


def training_env(launch: LaunchConfig) -> dict[str, str]:
    """What the script needs on top of this process's environment: this checkout's code first
    on the path, unbuffered output (streamed into the run's log), offline models."""
    env = {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
    if launch.accelerator == "cpu":
        env["DS_ACCELERATOR"] = "cpu"
    return env


def run_streamed(command: list[str], env: dict[str, str], log: Callable[[str], None] = print,
                 tail_lines: int = 40) -> None:
    """Run the command with its output streamed line by line to `log`; raise with the last
    lines of output if it fails. Its whole process group goes if this process is interrupted."""
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    tail: deque[str] = deque(maxlen=tail_lines)
    try:
        for line in process.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            log(line)
        code = process.wait()
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise
    if code:
        raise RuntimeError(f"training failed (exit code {code}); its last lines:\n" + "\n".join(tail))
