"""Filtered layer: the curated export of Stage 2's decisions (filtered_pairs: assets/filtered/pool.py)."""

import dagster as dg

from dagster_project.checks import table_check_specs
from dagster_project.metadata import counts_table, in_lake, preview
from dagster_project.plots import retention_bars
from dagster_project.resources import LakeResource, QualityResource
from dagster_project.results import table_result
from synpref.lake.duck import refresh_views
from synpref.filtered.export import export_curated, export_path


def retention_md(rows: list[tuple], key: str) -> dg.MetadataValue:
    lines = [f"| {key} | pool | kept | flipped | dropped | retention |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r[0]} | {r[1]:,} | {r[2]:,} | {r[3]:,} | {r[4]:,} | {r[5]:.1%} |" for r in rows]
    return dg.MetadataValue.md("\n".join(lines) if rows else "_none_")


@dg.asset(
    group_name="filtered", deps=["filtered_pairs"], kinds={"parquet", "huggingface"},
    check_specs=table_check_specs("curated_export"),
    description="The kept and flipped pairs in TRL's conversational preference form (Parquet and a "
                "`datasets` folder), with retention by source and task category.",
)
def curated_export(context: dg.AssetExecutionContext, lake: LakeResource,
                   quality: QualityResource) -> dg.MaterializeResult:
    the_lake = lake.lake()
    try:
        summary = export_curated(the_lake, lake.duck_settings(), log=context.log.info)
    except FileNotFoundError as e:
        raise dg.Failure(description=str(e)) from e
    refresh_views(the_lake)
    return table_result(context, lake, quality, "curated_export", {
        "dagster/row_count": summary.pairs, "pool": summary.pool, "retention": round(summary.retention, 4),
        "by_status": counts_table(summary.by_status, key="status"),
        "by_reason": counts_table(summary.by_reason),
        "retention_by_source": retention_md(summary.by_source, "source"),
        "retention_by_task_category": retention_md(summary.by_task_category, "task category"),
        "retention_chart": retention_bars(summary.by_source, "Stage 2 decisions by source"),
        "path": dg.MetadataValue.path(in_lake(the_lake, export_path(the_lake))),
        "preview": preview([export_path(the_lake)], ["pair_id", "source", "status"]),
    })
