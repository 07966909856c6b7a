"""Helpers of the kill tests: SIGKILL a child process group once it shows it is at work (a
progress line, a checkpoint), never after a fixed sleep; fail clearly when it finished first."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]  # the repository
DEADLINE_S = 600  # for a child to show it is at work: generous, a loaded CI machine is slow


def kill_when(tmp_path: Path, code: str, args: list[str], ready: Callable[[str], bool]) -> list[str]:
    """Run `code` in a child Python; SIGKILL its process group as soon as it prints a line for
    which `ready` is true. Returns the lines printed until then; fails if the child exits (or
    finished) before it could be killed, or shows nothing within DEADLINE_S."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    log = tmp_path / "child.log"
    with log.open("w") as stderr:
        child = subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=stderr, text=True, start_new_session=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in child.stdout] + [lines.put(None)],
                     daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no sign of work after {DEADLINE_S} s: {seen[-5:]}\n{log.read_text()[-3000:]}")
            if line is None:
                pytest.fail(f"the child exited ({child.wait()}) before it could be killed: {seen[-5:]}\n"
                            f"{log.read_text()[-3000:]}")
            seen.append(line.rstrip("\n"))
            if ready(seen[-1]):
                break
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, f"the child finished ({child.returncode}) before the kill"
    return seen


def kill_after_a_checkpoint(run: subprocess.Popen, out: Path, log: Path) -> int:
    """SIGKILL a training run's process group (models/train_rm.py, started in a new session)
    once it has saved a checkpoint, whichever step: on a loaded machine this process may see
    the first one late. Returns the step that the checkpoints' `latest` names after the kill,
    the one a rerun must resume from."""
    latest = out / "checkpoints" / "latest"
    deadline = time.monotonic() + DEADLINE_S
    while not (latest.exists() and latest.read_text().strip()):  # written, not only created
        assert run.poll() is None, f"the run ended ({run.returncode}) before a checkpoint: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no checkpoint in {DEADLINE_S} s: {log.read_text()[-3000:]}"
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL and not (out / "metrics.json").exists(), \
        "the run finished before it could be killed"
    return int(latest.read_text().strip().removeprefix("step-"))
