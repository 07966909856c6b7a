"""The check wiring: a Great Expectations suite per lake table, and reconciliation across stages.

Each table with a suite gets two checks from one validation: ``expectations`` (its critical
expectations; blocking, so a failure stops the assets downstream) and
``expectations_warnings`` (the softer ones; reported, never blocking). Reconciliation checks
(``reconciles``, ``reasons_known``) go with the tables they reconcile.

The checks run in the asset's own step: an asset declares ``check_specs=table_check_specs(t)``
and returns ``table_check_results(...)`` with its materialisation (milliseconds of Dagster
overhead, where a check step of its own under the multiprocess executor started a process).
Graph-backed assets, whose last op cannot return check results, get one check step each
(``graph_asset_checks``).
"""


from typing import Callable, Iterator

import dagster as dg

import expectations as suites
from dagster_project.resources import LakeResource, QualityResource
from synpref.checks.quality import TableValidation, validate_table
from synpref.checks.reconcile import Reconciliation, reconcile_ingest, reconcile_reasons, reconcile_silver

SUITE, WARNINGS, RECONCILES, REASONS = "expectations", "expectations_warnings", "reconciles", "reasons_known"

# table -> (check name, description, reconciliation) beyond its suite
RECONCILIATIONS: dict[str, tuple[str, str, Callable]] = {
    "raw_pairs": (RECONCILES, "rows read = records paired + records quarantined", lambda lake: reconcile_ingest(lake)),
    "silver_pairs": (RECONCILES, "raw_pairs = silver_pairs + silver_quarantine, each raw pair decided once",
                     lambda lake: reconcile_silver(lake)),
    "ingest_quarantine": (REASONS, "every quarantine row has a reason from the known set",
                          lambda lake: reconcile_reasons(lake, "ingest_quarantine")),
    "silver_quarantine": (REASONS, "every quarantine row has a reason from the known set",
                          lambda lake: reconcile_reasons(lake, "silver_quarantine")),
}


def table_check_specs(table: str) -> list[dg.AssetCheckSpec]:
    specs = []
    if table in suites.tables_with_suites():
        specs += [dg.AssetCheckSpec(SUITE, asset=table, blocking=True,
                                    description=f"Critical expectations of expectations/{table}.json"),
                  dg.AssetCheckSpec(WARNINGS, asset=table,
                                    description=f"Warning-level expectations of expectations/{table}.json")]
    if table in RECONCILIATIONS:
        name, description, _ = RECONCILIATIONS[table]
        specs.append(dg.AssetCheckSpec(name, asset=table, blocking=True, description=description))
    return specs


def _outcomes_md(outcomes) -> dg.MetadataValue:
    lines = ["| expectation | severity | ok | unexpected | rows | sample failing ids |", "|---|---|---|---:|---:|---|"]
    for o in outcomes:
        lines.append(f"| {o.expectation} | {o.severity} | {'yes' if o.success else '**no**'} | "
                     f"{o.unexpected_count:,} | {o.element_count:,} | {', '.join(o.sample_ids[:5])} |")
    return dg.MetadataValue.md("\n".join(lines))


def _suite_results(table: str, v: TableValidation) -> Iterator[dg.AssetCheckResult]:
    for check, blocking in ((SUITE, True), (WARNINGS, False)):
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


def _reconciliation(table: str, name: str, r: Reconciliation) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(asset_key=table, check_name=name, passed=r.success, description=r.detail,
                               metadata={**r.figures, "detail": r.detail})


def table_check_results(lake: LakeResource, quality: QualityResource, table: str,
                        log: Callable[[str], None] = lambda msg: None) -> list[dg.AssetCheckResult]:
    """Every check of `table` (as table_check_specs declares them), run now."""
    the_lake = lake.lake()
    results = []
    if table in suites.tables_with_suites():
        v = validate_table(the_lake, table, batch_rows=quality.batch_rows, suites_dir=quality.folder(),
                           build_docs=quality.build_docs, log=log)
        results += list(_suite_results(table, v))
    if table in RECONCILIATIONS:
        name, _, reconcile = RECONCILIATIONS[table]
        results.append(_reconciliation(table, name, reconcile(the_lake)))
    return results


def graph_asset_checks(name: str, tables: tuple[str, ...]) -> dg.AssetChecksDefinition:
    """One check step (`<name>_checks`) for a graph-backed asset's tables, with all their checks
    (a step is a process under the multiprocess executor: one per graph, not one per table)."""
    @dg.multi_asset_check(name=f"{name}_checks", specs=[spec for t in tables for spec in table_check_specs(t)])
    def _check(context: dg.AssetCheckExecutionContext, lake: LakeResource, quality: QualityResource):
        for table in tables:
            yield from table_check_results(lake, quality, table, log=context.log.info)

    return _check
