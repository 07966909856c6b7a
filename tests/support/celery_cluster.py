"""A Celery cluster on this machine, for the tests and benchmarks of the distributed runs:
a Redis broker on 127.0.0.1 (Debian's redis-server) and dagster-celery workers, each its own
process group, every one stopped by `stop()` with bounded waits.

The settings that make a worker's death safe (tested with SIGKILL mid-shard) are in
`celery_settings`: late acks (a shard's message stays in Redis until the shard is done),
a visibility timeout after which Redis hands an unfinished shard to another worker, one
reserved message per worker, and a requeue when a pool process dies. They are those of
dagster_project/run_config/celery_worker.yaml, which a deployment uses (tests/test_executors.py
checks that the two agree); nothing in the package imports this module.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CODE_LOCATION = "dagster_project.definitions"


def celery_settings(broker: str, visibility_timeout: int = 3600) -> dict:
    """The celery executor's config: the same block for the run (which publishes) and the
    workers (which consume; `dagster-celery worker start -y` reads it)."""
    return {
        "broker": f"{broker}/0", "backend": f"{broker}/1",
        "config_source": {
            "task_acks_late": True,              # unacked until done: a dead worker's shard is not lost
            "task_reject_on_worker_lost": True,  # a killed pool process requeues its shard at once
            "worker_prefetch_multiplier": 1,     # a dead worker strands only the shard it runs
            "broker_transport_options": {
                "visibility_timeout": visibility_timeout,  # > the longest shard, or a shard runs twice
                "unacked_restore_interval": 5, "unacked_restore_throttle": 1},  # sweep every 5 s
        },
    }


def stage2_run_config(settings: dict, lake_root: str | os.PathLike) -> dict:
    """Run config for a run of the sharded assets under Celery on the lake at `lake_root`
    (in the run config, so a worker needs no SYNPREF_LAKE of its own)."""
    root = str(lake_root)
    return {"execution": {"config": {"celery": settings}},
            "resources": {"lake": {"config": {"root": root}}, "io_manager": {"config": {"root": root}}}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(done, timeout: float, what: str, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(poll)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _spawn(command: list[str], log: Path, env: dict) -> subprocess.Popen:
    # children of these shells may start with SIGINT ignored; Dagster and Celery stop on it
    with log.open("ab") as out:
        return subprocess.Popen(["env", "--default-signal=INT,TERM", *command], stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)


def stop_group(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM to the process group, then SIGKILL if it is still there after grace_s."""
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        _signal_group(proc, signal.SIGKILL)
        proc.wait(timeout=10)


class Service:
    """A local service for tests and benchmarks: start() on entering (stop() if that fails),
    stop() on leaving."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen
    log: Path

    def kill(self) -> None:
        """SIGKILL the whole worker (wrapper, celery main process, pool process): a lost machine."""
        _signal_group(self.proc, signal.SIGKILL)
        self.proc.wait(timeout=30)


@dataclass
class LocalCluster(Service):
    """Redis and dagster-celery workers under `folder`, sharing the Dagster instance at
    env['DAGSTER_HOME'] (SQLite: one machine; Postgres across machines)."""

    folder: Path
    env: dict
    visibility_timeout: int = 3600
    port: int = field(default_factory=free_port)
    redis: subprocess.Popen | None = None
    workers: dict[str, Worker] = field(default_factory=dict)

    def __post_init__(self):
        # dagster-celery's wrapper starts `celery` by name: this venv's, whatever PATH says
        self.env = {**self.env, "PATH": os.pathsep.join([str(Path(sys.executable).parent), self.env.get("PATH", "")])}

    @property
    def broker(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def settings(self) -> dict:
        return celery_settings(self.broker, self.visibility_timeout)

    @property
    def worker_yaml(self) -> Path:
        return self.folder / "worker.yaml"

    def start_redis(self) -> None:
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(server).exists():
            raise FileNotFoundError("redis-server is not installed: bash scripts/install_redis.sh")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.redis = _spawn([server, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                             "--appendonly", "no", "--dir", str(self.folder)], self.folder / "redis.log", self.env)
        _wait(self._redis_answers, 30, "redis-server")
        self.worker_yaml.write_text(yaml.safe_dump({"execution": {"config": self.settings}}))
        # create the instance's SQLite schema once: workers starting together would race on it
        subprocess.run([str(Path(sys.executable).with_name("dagster")), "instance", "migrate"], env=self.env,
                       check=True, capture_output=True, timeout=120)

    def _redis_answers(self) -> bool:
        import redis

        if self.redis is not None and self.redis.poll() is not None:
            raise RuntimeError(f"redis-server exited: {(self.folder / 'redis.log').read_text()[-2000:]}")
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.exceptions.ConnectionError:
            return False

    def start_worker(self, name: str, timeout: float = 180, env: dict | None = None) -> Worker:
        """`dagster-celery worker start` with one pool process (one shard at a time); `env`
        adds to the cluster's environment for this worker alone (e.g. its own local disk)."""
        log = self.folder / f"{name}.log"
        proc = _spawn([str(Path(sys.executable).with_name("dagster-celery")), "worker", "start",
                       "-A", "dagster_celery.app", "-y", str(self.worker_yaml), "-n", name, "-i", CODE_LOCATION,
                       "--", "--concurrency=1"], log, {**self.env, **(env or {})})
        worker = self.workers[name] = Worker(name, proc, log)

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"worker {name} exited: {log.read_text()[-3000:]}")
            return " ready." in log.read_text(errors="replace")

        _wait(ready, timeout, f"worker {name}", poll=0.5)
        return worker

    def stop_worker(self, name: str) -> None:
        """Warm shutdown over the broker, then SIGTERM, then SIGKILL to the process group."""
        worker = self.workers.pop(name)
        if worker.proc.poll() is None:
            subprocess.run([str(Path(sys.executable).with_name("dagster-celery")), "worker", "terminate", name,
                            "-y", str(self.worker_yaml)], env=self.env, capture_output=True, timeout=60)
        for sig, wait in ((None, 20), (signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            if sig is not None:
                _signal_group(worker.proc, sig)
            try:
                worker.proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        _signal_group(worker.proc, signal.SIGKILL)  # the wrapper's celery child, if it outlived it

    def stop(self) -> None:
        for name, worker in list(self.workers.items()):
            try:
                self.stop_worker(name)
            except (subprocess.SubprocessError, OSError):
                _signal_group(worker.proc, signal.SIGKILL)
        if self.redis is not None:
            stop_group(self.redis, 15)  # redis-server saves nothing (--save "")
            self.redis = None

    def start(self) -> None:
        self.start_redis()
