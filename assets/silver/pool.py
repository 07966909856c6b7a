"""Silver layer: the SQL stage (sql/silver_*.sql) over raw_pairs, run by DuckDB."""


import dagster as dg
from pydantic import Field

from dagster_project.checks import table_check_specs
from dagster_project.metadata import counts_table, preview
from dagster_project.resources import LakeResource, QualityResource, SourcesResource
from synpref.lake.duck import refresh_views
from dagster_project.results import table_result
from synpref.silver.pool import build_silver

TABLES = ("silver_decisions", "silver_pairs", "silver_quarantine")


class SilverConfig(dg.Config):
    force: bool = Field(default=False, description="Rebuild even if raw_pairs has not changed.")


@dg.multi_asset(
    name="silver",
    specs=[
        dg.AssetSpec("silver_decisions", group_name="silver", deps=["raw_pairs"], kinds={"duckdb", "parquet"},
                     description="Every raw pair's pair_id and, where it stays out of silver, why."),
        dg.AssetSpec("silver_pairs", group_name="silver", deps=["silver_decisions"], kinds={"duckdb", "parquet"},
                     description="Normalised, hashed, deduplicated, decontaminated pairs."),
        dg.AssetSpec("silver_quarantine", group_name="silver", deps=["silver_decisions"],
                     kinds={"duckdb", "parquet"},
                     description="Raw pairs kept out of silver, with the reason (duplicate, contaminated, ...)."),
    ],
    check_specs=[spec for table in TABLES for spec in table_check_specs(table)],
)
def silver(context: dg.AssetExecutionContext, config: SilverConfig, lake: LakeResource,
           sources: SourcesResource, quality: QualityResource):
    the_lake = lake.lake()
    deco = sources.load(the_lake).decontamination
    summary = build_silver(the_lake, deco, lake.duck_settings(), log=context.log.info, force=config.force)
    refresh_views(the_lake)
    common = {"seconds": summary.seconds, "reused": summary.reused, "raw_rows": summary.raw_rows}
    yield table_result(context, lake, quality, "silver_decisions", {
        **common, "dagster/row_count": summary.raw_rows, "timings_s": summary.timings})
    yield table_result(context, lake, quality, "silver_pairs", {
        **common,
        "dagster/row_count": summary.silver_rows,
        "retention": round(summary.silver_rows / summary.raw_rows, 4) if summary.raw_rows else 0.0,
        "benchmark_prompts": summary.benchmark_prompts,
        "preview": preview(the_lake.table_files("silver_pairs"), ["pair_id", "source", "chosen", "rejected"]),
    })
    yield table_result(context, lake, quality, "silver_quarantine", {
        **common,
        "dagster/row_count": summary.quarantined,
        "by_reason": counts_table(summary.reasons),
        "preview": preview(the_lake.table_files("silver_quarantine"), ["pair_id", "source", "reason", "detail"]),
    })


