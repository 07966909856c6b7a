"""What the CLI prints about a lake: its tables, its quarantine, Stage 2's retention.

Kept apart from the Dagster definitions, which take a second or two to import: `synpref
tables` needs none of them.
"""

from __future__ import annotations

import click

from synpref.lake import Lake
from synpref.lake.duck import connect as duck_connect, quarantine_counts, table_counts


def print_tables(lake: Lake) -> None:
    rows = table_counts(lake)
    if not rows:
        click.echo(f"no tables yet under {lake.root}")
        return
    click.echo(f"\nlake {lake.root}")
    click.echo(f"{'table':<20} {'layer':<8} {'rows':>12} {'files':>6}")
    for table, layer, count, files in rows:
        click.echo(f"{table:<20} {layer:<8} {count:>12,} {files:>6}")


def print_quarantine(lake: Lake) -> None:
    rows = quarantine_counts(lake)
    if rows:
        click.echo(f"\n{'quarantine stage':<17} {'reason':<22} {'rows':>8}")
        for stage, reason, count in rows:
            click.echo(f"{stage:<17} {reason:<22} {count:>8,}")


def print_retention(lake: Lake) -> None:
    """Stage 2's outcome: retention by source and the reasons behind the decisions."""
    from synpref.filtered.export import RETENTION_SQL
    from synpref.filtered.stage2 import vote_independence
    from synpref.lake.duck import register_tables

    if not lake.has_table("filtered_pairs"):
        return
    with duck_connect(lake) as con:
        register_tables(con, lake, temp=True)
        by_source = con.execute(RETENTION_SQL.format(key="f.source", join="")).fetchall()
        reasons = con.execute("select status, reason, count(*) from filtered_pairs group by all "
                              "order by 3 desc").fetchall()
        rules = con.execute("select string_agg(distinct rule, ', ') from filtered_pairs").fetchone()[0]
        members, folds = con.execute("select any_value(members), count(distinct fold) from pool_scores").fetchone()
    votes = vote_independence(lake)
    click.echo(f"\nStage 2 rule: {rules}; p_best out of fold from {members * folds} fold models ({folds} folds x "
               f"{members} repeats), none of which saw the pairs it scored; the best and gold RMs' pool logits "
               f"correlate {votes.correlation:.2f} and agree on {votes.agreement:.0%} of pairs")
    total = [sum(r[i] for r in by_source) for i in range(1, 5)]
    click.echo(f"\n{'retention by source':<20} {'pool':>7} {'kept':>7} {'flipped':>8} {'dropped':>8} {'retained':>9}")
    for name, pool, kept, flipped, dropped, _ in [*by_source, ("all", *total, None)]:
        click.echo(f"{name:<20} {pool:>7,} {kept:>7,} {flipped:>8,} {dropped:>8,} {(kept + flipped) / pool:>9.1%}")
    click.echo(f"\n{'status':<8} {'reason':<20} {'pairs':>7}")
    for status, reason, n in reasons:
        click.echo(f"{status:<8} {reason:<20} {n:>7,}")
