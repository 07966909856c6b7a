"""The console of a long CLI command (the demo): one line per stage with a progress bar, and
everything else in a log file.

Quiet by default: the process's stdout and stderr file descriptors are pointed at
<lake home>/logs/<name>-<time>.log, so Dagster's event lines, vLLM's engine logs, DeepSpeed's
launcher and the subprocesses they start (which inherit the descriptors) all land there; the
stage lines go to the terminal the command was started on. Progress comes from the Dagster
instance: the step events of the runs started since the stage began, counted against the steps
of the job's last successful run when there is one (so a second round shows an ETA).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from datetime import datetime

import dagster as dg
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from synpref.lake import Lake

STEP_EVENTS = {dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.STEP_SKIPPED}


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


class StageConsole:
    """`with StageConsole(lake, "demo", verbose) as console:` then `with console.stage(title, jobs):`."""

    def __init__(self, lake: Lake, name: str, verbose: bool = False):
        self.lake, self.verbose = lake, verbose
        self.log_path = lake.home / "logs" / f"{name}-{datetime.now():%Y%m%d-%H%M%S}.log"
        self._saved: list[int] = []
        self.console = Console(highlight=False)

    def __enter__(self) -> StageConsole:
        if self.verbose:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = [os.dup(1), os.dup(2)]
        # the terminal keeps a descriptor of its own; 1 and 2 now write to the log, whoever writes
        self.console = Console(file=os.fdopen(os.dup(self._saved[0]), "w", buffering=1), highlight=False)
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        # Python's own streams too, where they are not the descriptors (a notebook, a test's capture)
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout = open(1, "w", buffering=1, closefd=False, errors="replace")
        sys.stderr = open(2, "w", buffering=1, closefd=False, errors="replace")
        return self

    def __exit__(self, *exc) -> None:
        if not self._saved:
            return
        for stream in (sys.stdout, sys.stderr):  # the wrappers __enter__ opened (they leave 1 and 2 open)
            stream.close()
        sys.stdout, sys.stderr = self._streams
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        for fd in self._saved:
            os.close(fd)
        self._saved = []
        self.console.file.close()
        self.console = Console(highlight=False)

    def say_log(self) -> None:
        """The last line of a quiet command: where everything else went."""
        if not self.verbose:
            self.echo(f"The full log of this run (Dagster events, vLLM, DeepSpeed): {self.log_path}")

    def echo(self, text: str = "") -> None:
        """A line for the user: on the terminal, and in the log beside the lines it summarises."""
        self.console.print(text, markup=False, soft_wrap=True)
        if self._saved:
            print(text, flush=True)

    @contextlib.contextmanager
    def stage(self, title: str, jobs: tuple[str, ...] = ()):
        """One stage: a live line (spinner, steps done, elapsed, ETA) while it runs, then
        `==> title: done (1m 02s)`. Yields a dict the caller sets `ok` in (default True)."""
        outcome = {"ok": True}
        start = time.time()
        if self.verbose or not self.console.is_terminal:
            if self.verbose:
                self.echo(f"==> {title} ...")
            yield outcome
        else:
            with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("steps"), TimeElapsedColumn(), TimeRemainingColumn(),
                          console=self.console, transient=True,
                          # the log keeps what Python prints: rich would show it above the bar
                          redirect_stdout=False, redirect_stderr=False) as progress:
                task = progress.add_task(title, total=_expected_steps(jobs))
                watcher = _StepWatcher(start, lambda done: progress.update(task, completed=done))
                watcher.start()
                try:
                    yield outcome
                finally:
                    watcher.stop()
        self.echo(f"==> {title}: {'done' if outcome['ok'] else 'FAILED'} ({_duration(time.time() - start)})")

    def run(self, title: str, work, jobs: tuple[str, ...] = ()):
        """work() as one stage; its value if truthy, else the failures are said and the command
        exits 1."""
        from dagster_project import pipeline

        with self.stage(title, jobs) as outcome:
            value = work()
            outcome["ok"] = bool(value)
        if not value:
            for failure in pipeline.FAILURES:
                self.echo(f"    {failure}")
            if not self.verbose:
                self.echo(f"the full log: {self.log_path}")
            sys.exit(1)
        return value


def _expected_steps(jobs: tuple[str, ...]) -> int | None:
    """Steps of the jobs' last successful runs on this instance (None if a job never succeeded)."""
    if not jobs:
        return None
    instance = dg.DagsterInstance.get()
    total = 0
    for job in jobs:
        runs = instance.get_run_records(dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.SUCCESS]), limit=1)
        if not runs:
            return None
        total += len(instance.get_records_for_run(runs[0].dagster_run.run_id,
                                                  of_type=dg.DagsterEventType.STEP_SUCCESS).records)
    return total


class _StepWatcher(threading.Thread):
    """Counts the finished steps of the runs created since `start`, every second."""

    def __init__(self, start: float, report):
        super().__init__(daemon=True)
        self.since, self.report = datetime.fromtimestamp(start).astimezone(), report
        self._stop_event = threading.Event()

    def run(self) -> None:
        instance = dg.DagsterInstance.get()
        while not self._stop_event.wait(1.0):
            try:
                runs = instance.get_run_records(dg.RunsFilter(created_after=self.since))
                done = sum(len(instance.get_records_for_run(r.dagster_run.run_id, of_type=STEP_EVENTS,
                                                            limit=10_000).records) for r in runs)
            except Exception:  # a busy SQLite file: try again next second
                continue
            self.report(done)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
