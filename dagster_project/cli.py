"""The `synpref` command: demo, materialize, sql, check, queue, tables, ui, annotate."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from dagster_project.annotate_cli import annotate
from dagster_project.cli_options import lake_option
from synpref.lake import LAKE_ENV, Lake



def _use_lake(lake_dir: str) -> Lake:
    """Point this process (and any process Dagster starts) at one lake and its Dagster home."""
    lake = Lake.at(lake_dir)
    lake.root.mkdir(parents=True, exist_ok=True)
    os.environ[LAKE_ENV] = str(lake.root)
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(lake.root / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():  # local SQLite storage under DAGSTER_HOME, Dagster's default
        config.write_text("# Dagster instance settings for this lake; empty means local SQLite storage.\n")
    return lake


@click.group()
def main() -> None:
    """SynPref: curate preference pairs for reward models in a Parquet + DuckDB lake."""


@main.command()
@click.option("--pairs", default=1000, show_default=True, help="How many demo records to generate.")
@click.option("--seed", default=0, show_default=True)
@click.option("--judge-pairs", default=64, show_default=True, help="Silver pairs queued for the LLM judges.")
@click.option("--human-pairs", default=50, show_default=True, help="Silver pairs queued for human annotators.")
@lake_option
def demo(pairs: int, seed: int, judge_pairs: int, human_pairs: int, lake_dir: str) -> None:
    """Generate seeded demo data into the lake and materialise every asset on it."""
    from dagster_project.run import materialize_assets, print_quarantine, print_tables
    from synpref.demo import generate_demo
    from synpref.sources import relocate
    from tqdm import tqdm

    lake = _use_lake(lake_dir)
    landing = lake.root / "landing" / "demo"
    with tqdm(total=pairs, desc="generating demo pairs", unit="pair") as bar:
        summary = generate_demo(landing, pairs=pairs, seed=seed,
                                progress=lambda done, total: bar.update(done - bar.n))
    sources_file = relocate(summary.sources_file, lake.default_sources_file)
    click.echo(f"demo data: {summary.records:,} records in {landing} (sources: {sources_file})")
    # Until Stage 1 retrieval queues pairs for the judges, the demo queues a seeded sample.
    sample = {"sql": f"select pair_id from silver_pairs order by hash(pair_id || '{seed}') limit {judge_pairs}",
              "origin": "demo-sample"}
    # ... and the humans' queue: candidates from all of silver, objective and low-controversy first.
    for_humans = {"sql": "select pair_id from silver_pairs", "origin": "demo-sample", "size": human_pairs}
    # Stage 2 (group filtered) needs trained reward models: not part of the demo yet.
    ok = materialize_assets(lake, select="not group:filtered", sources_file=str(sources_file),
                            ops={"judge_queue": {"config": sample}, "annotation_queue": {"config": for_humans}})
    print_tables(lake)
    print_quarantine(lake)
    if not ok:
        sys.exit(1)
    synpref = Path(sys.executable).with_name("synpref")
    click.echo(f"""
Open the Dagster UI on this lake (runs, asset metadata, lineage):
    {synpref} ui --lake {lake.root}
    then browse http://127.0.0.1:3000
Query the curated pairs with SQL (read-only):
    {synpref} sql --lake {lake.root} "select source, count(*) as pairs from silver_pairs group by source"
    {synpref} sql --lake {lake.root} "select stage, reason, source_file, source_row, detail from quarantine limit 10"
    {synpref} sql --lake {lake.root} "select verdict, count(*), avg(confidence) from silver_labels group by verdict"
Or open {lake.db_path} with any DuckDB client.
Label the queued pairs in the browser (prints your token, then serves http://127.0.0.1:8765):
    {synpref} annotate add-annotator $USER --lake {lake.root}
    {synpref} annotate serve --lake {lake.root}""")


@main.command()
@click.option("--select", default="*", show_default=True,
              help="Dagster asset selection, e.g. 'silver_pairs' or '+silver_pairs'.")
@click.option("--sources", "sources_file", default=None, help="Sources YAML (default <lake>/sources.yaml).")
@lake_option
def materialize(select: str, sources_file: str | None, lake_dir: str) -> None:
    """Run the Dagster assets (in-process) on the lake."""
    from dagster_project.run import materialize_assets, print_tables

    lake = _use_lake(lake_dir)
    ok = materialize_assets(lake, select=select, sources_file=sources_file)
    print_tables(lake)
    sys.exit(0 if ok else 1)


@main.command()
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--max-rows", default=100, show_default=True, help="Rows shown in table format.")
@lake_option
def sql(query: str, fmt: str, max_rows: int, lake_dir: str) -> None:
    """Run a read-only SQL query over the lake's tables (writes are refused)."""
    from synpref.duck import WriteRefused, query_read_only

    try:
        con, rel = query_read_only(Lake.at(lake_dir), query)
    except WriteRefused as e:
        raise click.ClickException(str(e)) from e
    except Exception as e:  # parse / binder / missing-lake errors: say what DuckDB said
        raise click.ClickException(str(e)) from e
    try:
        if fmt == "table":
            rel.show(max_rows=max_rows, max_width=10_000)
        else:
            frame = rel.pl()
            click.echo(frame.write_csv() if fmt == "csv" else frame.write_json(), nl=False)
            if fmt == "json":
                click.echo()
    finally:
        con.close()


@main.command()
@click.argument("tables", nargs=-1)
@click.option("--batch-rows", default=100_000, show_default=True, help="Rows validated at a time.")
@lake_option
def check(tables: tuple[str, ...], batch_rows: int, lake_dir: str) -> None:
    """Run the data-quality suites (and reconciliations) on TABLES, or on every table.

    Exits non-zero when a blocking check fails; warnings are printed and do not fail.
    """
    from synpref.checking import run_checks
    from synpref.quality import docs_index

    lake = Lake.at(lake_dir)
    try:
        rows = run_checks(lake, list(tables) or None, batch_rows=batch_rows)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    if not rows:
        raise click.ClickException(f"no tables to check under {lake.root}")
    click.echo(f"{'table':<18} {'check':<58} {'kind':<9} {'result':<7} detail")
    for r in rows:
        result = "ok" if r.success else "FAILED"
        click.echo(f"{r.table:<18} {r.check:<58} {'blocking' if r.blocking else 'warning':<9} {result:<7} {r.detail}")
    blocking = [r for r in rows if r.blocking and not r.success]
    warnings = [r for r in rows if not r.blocking and not r.success]
    click.echo(f"\n{len(rows)} checks: {len(blocking)} blocking failed, {len(warnings)} warnings. "
               f"Data Docs: {docs_index(lake)}")
    sys.exit(1 if blocking else 0)


@main.command("queue")
@click.argument("query")
@click.option("--origin", default="cli", show_default=True, help="Recorded with each newly queued pair.")
@lake_option
def queue(query: str, origin: str, lake_dir: str) -> None:
    """Queue the pair_ids a read-only SELECT returns for the LLM judges (judge_queue)."""
    from synpref.duck import refresh_views
    from synpref.judging_stage import enqueue

    lake = Lake.at(lake_dir)
    try:
        new, old = enqueue(lake, query, origin)
    except Exception as e:  # refused writes, unknown pairs, parse / binder errors: say what was wrong
        raise click.ClickException(str(e)) from e
    refresh_views(lake)
    click.echo(f"queued {new:,} pairs ({old:,} were queued already); judge them with "
               f"`synpref materialize --select silver_labels`")


@main.command()
@lake_option
def tables(lake_dir: str) -> None:
    """List the lake's tables with their row counts."""
    from dagster_project.run import print_tables

    print_tables(Lake.at(lake_dir))


@main.command()
@click.option("--port", default=3000, show_default=True)
@lake_option
def ui(port: int, lake_dir: str) -> None:
    """Serve the Dagster UI for this lake on 127.0.0.1 (dagster dev)."""
    _use_lake(lake_dir)
    dagster = Path(sys.executable).with_name("dagster")
    os.execv(str(dagster), [str(dagster), "dev", "-m", "dagster_project.definitions",
                            "-h", "127.0.0.1", "-p", str(port)])


main.add_command(annotate)

if __name__ == "__main__":
    main()
