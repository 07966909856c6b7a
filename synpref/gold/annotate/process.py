"""The annotation server as a subprocess (`synpref annotate serve` on a free 127.0.0.1 port):
for tests, benchmarks and scripts that need a real server and must stop it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from synpref.lake import Lake

REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AnnotationServer:
    """`synpref annotate serve` on a free 127.0.0.1 port, in its own process group."""

    def __init__(self, lake: Lake, log: Path, *extra: str):
        self.lake, self.log = lake, log
        self._log_from = log.stat().st_size if log.exists() else 0  # this server's lines only (logs may be shared)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # `env --default-signal`: shells here may start children with SIGTERM ignored
        command = ["env", "--default-signal=INT,TERM", sys.executable, "-m", "dagster_project.cli", "annotate",
                   "serve", "--host", "127.0.0.1", "--port", str(self.port), "--lake", str(lake.root), *extra]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        with log.open("a") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                            start_new_session=True)
        self._wait_up()

    def _wait_up(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"annotation server exited with {self.process.returncode}:\n"
                                   f"{self.log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(self.url + "/", timeout=2)
            except urllib.error.HTTPError as e:
                if e.code == 401:  # up, and asking for a token
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"annotation server not up after {timeout_s} s:\n{self.log.read_text()[-3000:]}")

    def shutdown(self) -> bool:
        """SIGTERM, as a service manager stops it; True if it shut down cleanly (its journal sealed).
        uvicorn re-raises the signal after its graceful shutdown, so the exit code is -SIGTERM."""
        code = self.stop(signal.SIGTERM)
        with self.log.open() as f:
            f.seek(self._log_from)
            return code in (0, -signal.SIGTERM) and "shutdown: sealed" in f.read()

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30) -> int:
        """Send sig to the server's process group and wait for it to end; returns its exit code."""
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(timeout=10)
