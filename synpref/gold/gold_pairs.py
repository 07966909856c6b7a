"""gold_pairs: the human-verified pairs, built by SQL from human_labels (sql/gold_pairs.sql).

It reads human_labels as stored: the human_labels asset, upstream, seals the annotation
journal first, so every label a server acknowledged counts. The table is rebuilt whole (one
file swapped in atomically); the agreement between annotators goes with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import duckdb

import sql as sql_files
from synpref.lake import schemas
from synpref.gold.agreement import Agreement, agreement
from synpref.lake.duck import lit, stage_connection
from synpref.lake import Lake, atomic_path

TABLE = "gold_pairs"
OUTCOMES = ("gold_agrees", "gold_flipped", "tie", "cannot_decide", "not_in_silver")


@dataclass
class GoldSummary:
    rows: int = 0
    flipped: int = 0
    simulated: int = 0  # gold pairs with a simulated label behind them
    labels: int = 0  # rows of human_labels it was built from
    outcomes: dict[str, int] = field(default_factory=dict)  # labelled pairs by outcome
    agreement: Agreement = field(default_factory=Agreement)
    seconds: float = 0.0


def register_votes(con: duckdb.DuckDBPyConnection, lake: Lake) -> None:
    """Temp views latest_judgements and pair_votes on a connection that has the lake's views."""
    if not lake.has_table("human_labels"):
        con.register("human_labels", schemas.HUMAN_LABELS.empty_table())
    con.execute(f"create or replace temp view latest_judgements as {sql_files.load('latest_judgements')}")
    con.execute(f"create or replace temp view pair_votes as {sql_files.load('pair_votes')}")


def build_gold_pairs(lake: Lake) -> GoldSummary:
    """Rebuild gold_pairs from human_labels; returns counts and agreement figures."""
    start = time.perf_counter()
    if not lake.has_table("silver_pairs"):
        raise ValueError(f"no silver_pairs under {lake.root}: gold pairs are silver pairs humans verified")
    summary = GoldSummary()
    with stage_connection(lake) as con:
        register_votes(con, lake)
        final = lake.table_dir(TABLE) / f"{TABLE}.parquet"
        with atomic_path(final) as tmp:
            con.execute(f"copy ({sql_files.load(TABLE)}) to {lit(tmp)} (format parquet, compression zstd)")
        for stale in lake.table_files(TABLE):  # hand-written or older parts
            if str(stale) != str(final):
                stale.unlink()
        summary.rows, summary.flipped, summary.simulated = con.execute(
            f"select count(*), count(*) filter (where flipped), count(*) filter (where simulated) "
            f"from read_parquet({lit(final)})").fetchone()
        (summary.labels,), = con.execute("select count(*) from human_labels").fetchall()
        found = dict(con.execute("select outcome, count(*) from pair_votes group by 1").fetchall())
        summary.outcomes = {o: found.get(o, 0) for o in OUTCOMES}
        votes = con.execute("select pair_id, annotator, choice from latest_judgements "
                            "where choice in ('chosen', 'rejected')").fetchall()
    summary.agreement = agreement(votes)
    summary.seconds = round(time.perf_counter() - start, 3)
    return summary
