"""What a table's asset returns: its metadata, its data version and its checks, in one result."""

from __future__ import annotations

import dagster as dg

from dagster_project.checks import table_check_results
from dagster_project.resources import LakeResource, QualityResource
from synpref.lake.versions import table_version


def table_result(context, lake: LakeResource, quality: QualityResource | None, table: str,
                 metadata: dict) -> dg.MaterializeResult:
    """The table's materialisation: the data version of what it holds now (unchanged when the
    step reused its work, so nothing downstream turns stale) and, with `quality`, its checks
    run in this step."""
    checks = table_check_results(lake, quality, table, context.log.info) if quality is not None else None
    return dg.MaterializeResult(asset_key=table, metadata=metadata,
                                data_version=dg.DataVersion(table_version(lake.lake(), table)),
                                check_results=checks)


def table_output(lake: LakeResource, table: str, metadata: dict, output_name: str = "result") -> dg.Output:
    """The last op of a graph-backed asset: its metadata and data version (its checks run in a
    check step of their own: checks.graph_asset_checks)."""
    return dg.Output(None, output_name=output_name, metadata=metadata,
                     data_version=dg.DataVersion(table_version(lake.lake(), table)))
