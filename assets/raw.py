"""Raw layer: ingest the declared sources into raw_pairs and ingest_quarantine."""


import time

import dagster as dg

from dagster_project.checks import table_check_specs
from dagster_project.metadata import counts_table, in_lake, preview
from dagster_project.resources import LakeResource, QualityResource, SourcesResource
from dagster_project.results import table_result
from synpref.lake.duck import refresh_views
from synpref.raw.ingest import ingest_sources
from synpref.raw.mapping import MappingError
from synpref.raw.readers import FileReadError
from synpref.raw.sources import SourcesError

TABLES = ("raw_pairs", "ingest_quarantine")


@dg.multi_asset(
    name="ingest",
    specs=[
        dg.AssetSpec("raw_pairs", group_name="raw", kinds={"parquet", "python"},
                     description="Every readable record as a normalised pair, with its source file and row."),
        dg.AssetSpec("ingest_quarantine", group_name="raw", kinds={"parquet", "python"},
                     description="Records that could not become pairs, with a reason code and the raw text."),
    ],
    check_specs=[spec for table in TABLES for spec in table_check_specs(table)],
)
def ingest(context: dg.AssetExecutionContext, lake: LakeResource, sources: SourcesResource, quality: QualityResource):
    the_lake = lake.lake()
    config = sources.load(the_lake)
    start = time.perf_counter()
    try:
        summary = ingest_sources(
            the_lake, config, log=context.log.info,
            progress=lambda file, n: context.log.debug(f"{file}: {n:,} records"))
    except (SourcesError, FileReadError, MappingError) as e:  # the sources file, a file or a source's SQL
        raise dg.Failure(description=str(e)) from e
    refresh_views(the_lake)
    per_file = {f"{f.source}: {f.file}": f.read for f in summary.files}
    seconds = time.perf_counter() - start
    ingested = sum(f.read for f in summary.files if not f.reused)
    common = {"sources_file": in_lake(the_lake, config.path), "seconds": round(seconds, 2),
              "records_per_second": round(ingested / max(seconds, 1e-3)),  # of the files ingested, not reused
              "rows_read": summary.read, "files": len(summary.files),
              "files_reused": sum(f.reused for f in summary.files)}
    yield table_result(context, lake, quality, "raw_pairs", {
        **common,
        "dagster/row_count": summary.raw,
        "records_by_file": counts_table(per_file, key="file"),
        "preview": preview(the_lake.table_files("raw_pairs"), ["raw_id", "source", "chosen", "rejected"]),
    })
    yield table_result(context, lake, quality, "ingest_quarantine", {
        **common,
        "dagster/row_count": summary.quarantined,
        "by_reason": counts_table(summary.reasons()),
        "preview": preview(the_lake.table_files("ingest_quarantine"),
                           ["source_file", "source_row", "reason", "detail"]),
    })
