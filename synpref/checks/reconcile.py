"""Reconciliation across stages: every record is accounted for, once, with a known reason.

- ingest: records read (from each part's manifest) = records that became pairs (the manifests) + records
  quarantined without a pair (ingest_quarantine); raw_pairs holds the pairs the manifests count. A record
  yields one pair or one quarantine row in the four shapes; a preset may make several pairs of one record
  (ranked lists) or one pair of several records (HelpSteer2's consecutive rows)
- silver: raw_pairs = silver_pairs + silver_quarantine; every raw_id is decided exactly once
- quarantine: every row's reason is in the known set of its stage
"""

from __future__ import annotations

from dataclasses import dataclass


from synpref.raw import reasons
from synpref.lake.duck import connect as duck_connect, register_tables
from synpref.lake import Lake


@dataclass
class Reconciliation:
    name: str
    success: bool
    detail: str
    figures: dict[str, int]


def _count(con, sql: str) -> int:
    return int(con.execute(sql).fetchone()[0])


def _rows(con, table: str) -> int:
    return _count(con, f"select count(*) from {table}")


def reconcile_ingest(lake: Lake) -> Reconciliation:
    with duck_connect(lake) as con:
        register_tables(con, lake, temp=True)
        read = paired = pairs = 0
        for part in lake.table_files("raw_pairs"):
            manifest = lake.read_manifest(f"raw/{part.stem}")
            if manifest is None:
                return Reconciliation("ingest", False, f"part {part.name} has no manifest (unfinished ingest?)", {})
            read += manifest["read"]
            pairs += manifest["raw"]
            paired += manifest["raw"] if manifest.get("paired", -1) < 0 else manifest["paired"]
        raw, quarantined = _rows(con, "raw_pairs"), _rows(con, "ingest_quarantine")
        unpaired = _count(con, "select count(*) from (select distinct source_file, source_row from ingest_quarantine "
                               "except select source_file, source_row from raw_pairs)")
    figures = {"rows_read": read, "raw_pairs": raw, "ingest_quarantine": quarantined,
               "records_paired": paired, "records_quarantined": unpaired}
    ok = read == paired + unpaired and raw == pairs
    detail = (f"rows read {read:,} {'=' if read == paired + unpaired else '!='} records paired {paired:,} + "
              f"records quarantined {unpaired:,}; raw pairs {raw:,} {'=' if raw == pairs else '!='} {pairs:,} "
              f"written; quarantine rows {quarantined:,}")
    return Reconciliation("ingest", ok, detail, figures)


def reconcile_silver(lake: Lake) -> Reconciliation:
    with duck_connect(lake) as con:
        register_tables(con, lake, temp=True)
        raw, silver, quarantined = (_rows(con, t) for t in ("raw_pairs", "silver_pairs", "silver_quarantine"))
        undecided = _count(con, "select count(*) from raw_pairs anti join silver_decisions using (raw_id)")
        twice = _count(con, "select count(*) from (select raw_id from (select raw_id from silver_pairs union all "
                            "select raw_id from silver_quarantine) group by raw_id having count(*) > 1)")
        unknown = _count(con, "select count(*) from (select raw_id from silver_pairs union all "
                              "select raw_id from silver_quarantine) anti join raw_pairs using (raw_id)")
    figures = {"raw_pairs": raw, "silver_pairs": silver, "silver_quarantine": quarantined,
               "raw_without_decision": undecided, "raw_in_both": twice, "not_in_raw": unknown}
    ok = raw == silver + quarantined and not undecided and not twice and not unknown
    detail = (f"raw {raw:,} {'=' if raw == silver + quarantined else '!='} silver {silver:,} + quarantined "
              f"{quarantined:,}; {undecided} raw pairs undecided, {twice} in both, {unknown} not from raw")
    return Reconciliation("silver", ok, detail, figures)


def reconcile_reasons(lake: Lake, table: str) -> Reconciliation:
    known = reasons.INGEST_REASONS if table == "ingest_quarantine" else reasons.SILVER_REASONS
    with duck_connect(lake) as con:
        register_tables(con, lake, temp=True)
        counts = dict(con.execute(f"select coalesce(reason, '<null>'), count(*) from {table} group by 1").fetchall())
    unknown = {r: n for r, n in counts.items() if r not in known}
    detail = "every reason is known" if not unknown else f"unknown reasons: {unknown}"
    return Reconciliation(f"{table} reasons", not unknown, detail, counts)
