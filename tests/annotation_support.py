"""Helpers of the human-annotation tests: a silver lake with attributes, and a real annotation
server (`synpref annotate serve`) in a subprocess on a free port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa

from conftest import _free_port, run_stages, write_jsonl, write_sources
from synpref import schemas
from synpref.lake import Lake, write_part


def silver_lake(lake: Lake, tmp_path: Path, records: list[dict]) -> Lake:
    """Ingest prompt/chosen/rejected records and build silver_pairs."""
    write_jsonl(tmp_path / "pairs.jsonl", records)
    run_stages(lake, write_sources(tmp_path / "sources.yaml", [{"name": "test", "path": "pairs.jsonl",
                                                              "shape": "prompt_chosen_rejected"}]))
    return lake


def simple_records(n: int, tag: str = "") -> list[dict]:
    return [{"prompt": f"Question {i}{tag}: what is {i} + {i}?", "chosen": f"{i} + {i} = {2 * i}.",
             "rejected": f"{i} + {i} = {2 * i + 1}."} for i in range(n)]


def pair_ids(lake: Lake, where: str = "true") -> list[str]:
    con = duckdb.connect()
    try:
        return [r[0] for r in con.execute(f"select pair_id from read_parquet('{lake.table_glob('silver_pairs')}') "
                                          f"where {where} order by pair_id").fetchall()]
    finally:
        con.close()


def silver_texts(lake: Lake) -> dict[str, tuple[str, str]]:
    """pair_id -> (chosen, rejected) as in silver_pairs."""
    con = duckdb.connect()
    try:
        return {p: (c, r) for p, c, r in con.execute(
            f"select pair_id, chosen, rejected from read_parquet('{lake.table_glob('silver_pairs')}')").fetchall()}
    finally:
        con.close()


def write_attributes(lake: Lake, attributes: dict[str, tuple[str, str]], guideline: str = "Check the sum.") -> None:
    """pair_attributes rows (status ok) with the given (objectivity, controversiality) per pair."""
    now = datetime.now(timezone.utc)
    write_part(lake, "pair_attributes", pa.Table.from_pylist([{
        "pair_id": pid, "model": "test", "prompt_version": "attributes-v1", "status": "ok",
        "task_category": "math", "objectivity": obj, "controversiality": contro,
        "desired_attributes": ["correct arithmetic"], "annotation_guideline": guideline, "attempts": 1,
        "error": None, "raw_output": "{}", "annotated_at": now} for pid, (obj, contro) in attributes.items()],
        schema=schemas.PAIR_ATTRIBUTES))


def stored_labels(lake: Lake) -> list[dict]:
    con = duckdb.connect()
    try:
        rel = con.sql(f"select * from read_parquet('{lake.table_glob('human_labels')}') order by recorded_at, label_id")
        return [dict(zip(rel.columns, r)) for r in rel.fetchall()]
    finally:
        con.close()


class AnnotationServer:
    """`synpref annotate serve` on a free 127.0.0.1 port, in its own process group."""

    def __init__(self, lake: Lake, log: Path, *extra: str):
        self.lake, self.log = lake, log
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # `env --default-signal`: shells here may start children with SIGTERM ignored
        command = ["env", "--default-signal=INT,TERM", sys.executable, "-m", "dagster_project.cli", "annotate",
                   "serve", "--host", "127.0.0.1", "--port", str(self.port), "--lake", str(lake.root), *extra]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
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
        return code in (0, -signal.SIGTERM) and "shutdown: sealed" in self.log.read_text()

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
