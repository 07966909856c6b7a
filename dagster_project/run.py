"""Run assets in-process against a persistent Dagster instance (for the CLI)."""

from __future__ import annotations

import click
import dagster as dg

from dagster_project.definitions import build_defs, defs
from dagster_project.jobs import materialize_job
from synpref.lake import Lake

# Dagster's run tags for a run over a range of partitions (what a single-run backfill launches)
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def _single_run(policy) -> bool:
    return policy is not None and policy.max_partitions_per_run is None


def materialize_assets(lake: Lake, select: str = "*", sources_file: str | None = None,
                       ops: dict | None = None) -> bool:
    """Materialise the selected assets; the runs show up in `synpref ui` (same DAGSTER_HOME).
    `ops` is run config per op, e.g. {"judge_queue": {"config": {...}}}. Partitioned assets
    (the pool-wide ones) run after the others: all their shards in one run where the asset
    loops over them (a single-run backfill policy), else one run per shard."""
    instance = dg.DagsterInstance.get()
    graph = defs.resolve_asset_graph()
    # Selecting one table of a multi-table stage (say silver_pairs) runs the whole stage.
    try:
        selection = dg.AssetSelection.from_string(select).required_multi_asset_neighbors()
        selected = selection.resolve(graph)
    except Exception as e:  # a selection that does not parse or names an unknown asset
        raise click.ClickException(f"bad asset selection {select!r}: {e}") from e
    if not selected:
        known = ", ".join(sorted(k.to_user_string() for k in defs.resolve_all_asset_keys()))
        raise click.ClickException(f"asset selection {select!r} matches no asset; assets: {known}")
    partitioned = {k for k in selected if graph.get(k).partitions_def is not None}
    runs = [(selected - partitioned, {}, None)] if selected - partitioned else []  # (assets, tags, partition)
    for partitions_def in {graph.get(k).partitions_def for k in partitioned}:
        keys = partitions_def.get_partition_keys(dynamic_partitions_store=instance)
        if not keys:
            continue  # e.g. no Stage 1 round started yet
        assets = {k for k in partitioned if graph.get(k).partitions_def == partitions_def}
        # assets with a single-run backfill policy take all their partitions in one run
        single = {k for k in assets if _single_run(graph.get(k).backfill_policy)}
        if single:
            runs.append((single, {RANGE_START: keys[0], RANGE_END: keys[-1]}, None))
        runs += [(assets - single, {}, key) for key in keys if assets - single]
    evaluations, ok = {}, True
    names = {k.to_user_string() for k in partitioned}
    for keys, tags, partition in runs:
        in_run = {k.to_user_string() for k in keys}
        run_ops = {op: c for op, c in (ops or {}).items() if (op in in_run if tags or partition else op not in names)}
        job = build_defs(str(lake.root), sources_file).resolve_job_def(materialize_job(bool(tags or partition), keys))
        result = job.execute_in_process(
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}, "ops": run_ops},
            instance=instance, partition_key=partition, asset_selection=sorted(keys, key=str), raise_on_error=False,
            tags={"launched_by": "synpref-cli", **tags})
        evaluations.update({(e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations()})
        if not result.success:
            for event in result.all_events:
                if event.is_step_failure and event.step_failure_data:
                    click.echo(f"FAILED {event.step_key}: {event.step_failure_data.error.message.strip()}", err=True)
            ok = False
            break  # later runs need what this one made
    print_checks(list(evaluations.values()))
    return ok


def print_checks(evaluations) -> None:
    if not evaluations:
        return
    click.echo(f"\n{'check':<40} {'result':<8} kind")
    for e in sorted(evaluations, key=lambda e: (e.asset_key.to_user_string(), e.check_name)):
        name = f"{e.asset_key.to_user_string()}:{e.check_name}"
        kind = "blocking" if e.severity == dg.AssetCheckSeverity.ERROR else "warning"
        click.echo(f"{name:<40} {'passed' if e.passed else 'FAILED':<8} {kind}")
