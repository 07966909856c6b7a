"""The check wiring: a Great Expectations suite per lake table, and reconciliation across stages.

Each table with a suite gets two checks from one validation: ``expectations`` (its critical
expectations; blocking, so a failure stops the assets downstream) and
``expectations_warnings`` (the softer ones; reported, never blocking).
"""

import dagster as dg

import expectations as suites
from dagster_project.resources import LakeResource, QualityResource
from synpref.quality import TableValidation, validate_table
from synpref.reconcile import Reconciliation, reconcile_ingest, reconcile_reasons, reconcile_silver


def _outcomes_md(outcomes) -> dg.MetadataValue:
    lines = ["| expectation | severity | ok | unexpected | rows | sample failing ids |", "|---|---|---|---:|---:|---|"]
    for o in outcomes:
        lines.append(f"| {o.expectation} | {o.severity} | {'yes' if o.success else '**no**'} | "
                     f"{o.unexpected_count:,} | {o.element_count:,} | {', '.join(o.sample_ids[:5])} |")
    return dg.MetadataValue.md("\n".join(lines))


def _suite_results(table: str, v: TableValidation):
    for check, blocking in (("expectations", True), ("expectations_warnings", False)):
        mine = [o for o in v.outcomes if o.blocking == blocking]
        failed = [o for o in mine if not o.success]
        metadata = {
            "failed_expectations": ", ".join(o.expectation for o in failed) or "none",
            "unexpected_rows": sum(o.unexpected_count for o in failed),
            "sample_failing_ids": ", ".join(i for o in failed for i in o.sample_ids[:5]) or "none",
            "results": _outcomes_md(mine),
            "rows": v.rows, "batches": v.batches, "seconds": v.seconds,
        }
        if v.docs:
            metadata["data_docs"] = dg.MetadataValue.path(str(v.docs))
        yield dg.AssetCheckResult(
            asset_key=table, check_name=check, passed=not failed, metadata=metadata,
            severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
            description=f"{len(failed)} of {len(mine)} expectations failed" if failed else None)


def suite_checks(table: str) -> dg.AssetChecksDefinition:
    @dg.multi_asset_check(
        name=f"{table}_expectations",
        specs=[
            dg.AssetCheckSpec("expectations", asset=table, blocking=True,
                              description=f"Critical expectations of expectations/{table}.json"),
            dg.AssetCheckSpec("expectations_warnings", asset=table,
                              description=f"Warning-level expectations of expectations/{table}.json"),
        ],
    )
    def _check(context: dg.AssetCheckExecutionContext, lake: LakeResource, quality: QualityResource):
        v = validate_table(lake.lake(), table, batch_rows=quality.batch_rows, suites_dir=quality.folder(),
                           build_docs=quality.build_docs, log=context.log.info)
        yield from _suite_results(table, v)

    return _check


def _result(table: str, name: str, r: Reconciliation) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(asset_key=table, check_name=name, passed=r.success, description=r.detail,
                               metadata={**r.figures, "detail": r.detail})


@dg.asset_check(asset="raw_pairs", name="reconciles", blocking=True,
                description="rows read = raw_pairs + ingest_quarantine")
def raw_pairs_reconciles(lake: LakeResource) -> dg.AssetCheckResult:
    return _result("raw_pairs", "reconciles", reconcile_ingest(lake.lake()))


@dg.asset_check(asset="silver_pairs", name="reconciles", blocking=True,
                description="raw_pairs = silver_pairs + silver_quarantine, each raw pair decided once")
def silver_pairs_reconciles(lake: LakeResource) -> dg.AssetCheckResult:
    return _result("silver_pairs", "reconciles", reconcile_silver(lake.lake()))


def reasons_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=table, name="reasons_known", blocking=True,
                    description="every quarantine row has a reason from the known set")
    def _check(lake: LakeResource) -> dg.AssetCheckResult:
        return _result(table, "reasons_known", reconcile_reasons(lake.lake(), table))

    return _check


def all_checks() -> list[dg.AssetChecksDefinition]:
    return [
        *(suite_checks(t) for t in suites.tables_with_suites()),
        raw_pairs_reconciles,
        silver_pairs_reconciles,
        reasons_check("ingest_quarantine"),
        reasons_check("silver_quarantine"),
    ]
