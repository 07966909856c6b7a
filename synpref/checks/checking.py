"""`synpref check`: run every suite and reconciliation on the lake, outside Dagster."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import expectations as suites
from synpref.lake import Lake
from synpref.checks.quality import build_docs, table_exists, validate_table
from synpref.checks.reconcile import reconcile_ingest, reconcile_reasons, reconcile_silver


@dataclass
class CheckRow:
    table: str
    check: str
    blocking: bool
    success: bool
    detail: str
    mostly: float | None = None  # the share of rows that must pass (None: every row)
    unexpected: int = 0

    @property
    def kind(self) -> str:
        return "blocking" if self.blocking else "warning"

    @property
    def result(self) -> str:
        """ok, FAILED, or `within` for a pass with unexpected rows inside its `mostly` allowance."""
        if not self.success:
            return "FAILED"
        return "within" if self.unexpected else "ok"


def run_checks(lake: Lake, tables: list[str] | None = None, batch_rows: int = 100_000,
               suites_dir: Path | None = None, log=lambda msg: None) -> list[CheckRow]:
    known = suites.tables_with_suites(suites_dir)
    unknown = sorted(set(tables or []) - set(known))
    if unknown:
        raise ValueError(f"no suite for {', '.join(unknown)}; suites: {', '.join(known)}")
    wanted = [t for t in (tables or known) if table_exists(lake, t)]
    rows: list[CheckRow] = []
    for table in wanted:
        v = validate_table(lake, table, batch_rows=batch_rows, suites_dir=suites_dir, build_docs=False, log=log)
        for o in v.outcomes:
            detail = f"{o.unexpected_count:,} of {o.element_count:,} unexpected"
            if o.sample_ids:
                detail += f"; e.g. {', '.join(o.sample_ids[:3])}"
            if o.mostly is not None and o.element_count:
                detail += (f" ({o.unexpected_count / o.element_count:.1%}; up to "
                           f"{round((1 - o.mostly) * 100, 3):g}% allowed)")
            rows.append(CheckRow(table, o.expectation, o.blocking, o.success, detail, o.mostly, o.unexpected_count))
    reconciliations = {
        "raw_pairs": lambda: reconcile_ingest(lake),
        "silver_pairs": lambda: reconcile_silver(lake),
        "ingest_quarantine": lambda: reconcile_reasons(lake, "ingest_quarantine"),
        "silver_quarantine": lambda: reconcile_reasons(lake, "silver_quarantine"),
    }
    for table, run in reconciliations.items():
        needs = {"silver_pairs": ("raw_pairs", "silver_pairs", "silver_quarantine", "silver_decisions")}.get(
            table, (table,))
        if table in wanted and all(lake.has_table(t) for t in needs):
            r = run()
            rows.append(CheckRow(table, f"reconcile: {r.name}", True, r.success, r.detail))
    if wanted:
        build_docs(lake)
    return rows
