"""Filtered layer: Stage 2's decision per pool pair (shard by shard) and the curated export."""

import dagster as dg
from pydantic import Field

from dagster_project.metadata import counts_table, preview
from dagster_project.partitions import pool_shards
from dagster_project.plots import retention_bars
from dagster_project.resources import LakeResource
from synpref.duck import refresh_views
from synpref.export_stage import export_curated, export_path
from synpref.filter_stage import FilterSettings, filter_shard, shard_part
from synpref.shards import parse_shard_key


class FilterConfig(dg.Config):
    best_model: str = Field(description="The current best RM: its rm_predictions give p_best.")
    gold_model: str = Field(description="The RM trained on all human-verified pairs: its rm_predictions give p_gold.")
    recycle_flipped: bool = Field(default=True, description="Bring back dropped pairs whose flipped label "
                                                            "passes the same rule, flipped.")
    force: bool = Field(default=False, description="Decide the shard again even if its inputs are unchanged.")


@dg.asset(
    group_name="filtered", partitions_def=pool_shards, deps=["silver_pairs", "silver_labels", "rm_predictions"],
    kinds={"duckdb", "parquet"},
    description="Every pool pair of the shard kept, flipped or dropped, with the reason and the evidence "
                "(p_best, p_gold, the judges' verdict).",
)
def filtered_pairs(context: dg.AssetExecutionContext, config: FilterConfig, lake: LakeResource) -> dg.MaterializeResult:
    the_lake, shard = lake.lake(), parse_shard_key(context.partition_key)
    settings = FilterSettings(config.best_model, config.gold_model, config.recycle_flipped)
    try:
        summary = filter_shard(the_lake, shard, settings, duck=lake.duck_settings(), force=config.force,
                               log=context.log.info)
    except (ValueError, FileNotFoundError) as e:
        raise dg.Failure(description=str(e)) from e
    refresh_views(the_lake)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": summary.pairs, "reused": summary.reused, "seconds": summary.seconds,
        "statuses": counts_table(summary.statuses, key="status"),
        "reasons": counts_table(summary.reasons),
        "preview": preview([shard_part(the_lake, shard)], ["pair_id", "status", "reason", "p_best", "p_gold"]),
    })


def retention_md(rows: list[tuple], key: str) -> dg.MetadataValue:
    lines = [f"| {key} | pool | kept | flipped | dropped | retention |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r[0]} | {r[1]:,} | {r[2]:,} | {r[3]:,} | {r[4]:,} | {r[5]:.1%} |" for r in rows]
    return dg.MetadataValue.md("\n".join(lines) if rows else "_none_")


@dg.asset(
    group_name="filtered", deps=["filtered_pairs"], kinds={"parquet", "huggingface"},
    description="The kept and flipped pairs in TRL's conversational preference form (Parquet and a "
                "`datasets` folder), with retention by source and task category.",
)
def curated_export(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    the_lake = lake.lake()
    try:
        summary = export_curated(the_lake, lake.duck_settings(), log=context.log.info)
    except FileNotFoundError as e:
        raise dg.Failure(description=str(e)) from e
    refresh_views(the_lake)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": summary.pairs, "pool": summary.pool, "retention": round(summary.retention, 4),
        "by_status": counts_table(summary.by_status, key="status"),
        "by_reason": counts_table(summary.by_reason),
        "retention_by_source": retention_md(summary.by_source, "source"),
        "retention_by_task_category": retention_md(summary.by_task_category, "task category"),
        "retention_chart": retention_bars(summary.by_source, "Stage 2 decisions by source"),
        "path": dg.MetadataValue.path(str(export_path(the_lake))),
        "preview": preview([export_path(the_lake)], ["pair_id", "source", "status"]),
    })
