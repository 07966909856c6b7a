"""What a run's event log says about where and when its steps ran (Celery runs)."""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

WORKER_KEY = "Celery worker"  # dagster-celery's engine event: "Executing steps ... in celery worker"


@dataclass
class StepRecord:
    step_key: str
    workers: list[str] = field(default_factory=list)  # every worker that started it, in order
    started: float | None = None  # first STEP_START
    succeeded: float | None = None  # STEP_SUCCESS
    successes: int = 0


def step_records(instance: dg.DagsterInstance, run_id: str) -> dict[str, StepRecord]:
    records: dict[str, StepRecord] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or not event.step_key:
            continue
        record = records.setdefault(event.step_key, StepRecord(event.step_key))
        if event.event_type == dg.DagsterEventType.ENGINE_EVENT and event.engine_event_data:
            worker = event.engine_event_data.metadata.get(WORKER_KEY)
            if worker is not None:
                record.workers.append(str(worker.value))
        elif event.event_type == dg.DagsterEventType.STEP_START and record.started is None:
            record.started = entry.timestamp
        elif event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            record.succeeded, record.successes = entry.timestamp, record.successes + 1
    return records


def shard_steps(records: dict[str, StepRecord], op: str) -> dict[str, StepRecord]:
    """The per-shard steps of one op, by shard key: `pool_scores.score_shard[shard_003]` -> shard-003."""
    return {key.split("[", 1)[1].rstrip("]").replace("_", "-"): r for key, r in records.items()
            if key.split("[", 1)[0].endswith(f".{op}") or key.split("[", 1)[0] == op}
