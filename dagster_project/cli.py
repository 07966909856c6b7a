"""The `synpref` command: demo, materialize, sql, check, queue, train, score, models, tables, ui, annotate."""

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
    # A short reward-model run keeps the demo quick on a CPU (settings: models/config/reward_model.yaml).
    quick_rm = {"epochs": 1, "max_length": 128}
    # Stage 2 (group filtered) needs the best and the gold RM picked by a Stage 1 round: not in the demo yet.
    ok = materialize_assets(lake, select="not group:filtered", sources_file=str(sources_file),
                            ops={"judge_queue": {"config": sample}, "annotation_queue": {"config": for_humans},
                                 "reward_model": {"config": quick_rm}})
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
    {synpref} sql --lake {lake.root} "select breakdown, group_value, pairs, accuracy from rm_eval where breakdown <> 'checkpoint'"
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


def _settings(pairs: tuple[str, ...]) -> dict:
    """`--set key=value` pairs as typed training settings."""
    from models.train_config import parse_value

    settings = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--set")
        try:
            settings[key.strip()] = parse_value(key.strip(), value)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--set") from e
    return settings


@main.command()
@click.option("--name", default="baseline", show_default=True, help="The model's name (baseline, round-1, gold...).")
@click.option("--pairs", default="select pair_id, conversation, chosen, rejected, source from silver_pairs",
              show_default=True, help="Training pairs: a read-only SELECT over the lake, or a Parquet file.")
@click.option("--eval-set", type=click.Choice(["auto", "gold", "holdout"]), default="auto", show_default=True,
              help="auto: gold_pairs when the lake has them, else a held-out share of the pairs.")
@click.option("--holdout-fraction", default=0.1, show_default=True)
@click.option("--config", "config_file", default=None, help="Training settings YAML "
                                                            "(default models/config/reward_model.yaml).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Override a training setting, e.g. --set learning_rate=1e-5 (repeatable).")
@click.option("--launcher", type=click.Choice(["python", "deepspeed", "torchrun"]), default="python",
              show_default=True)
@click.option("--processes", default=1, show_default=True, help="Data-parallel processes (deepspeed/torchrun).")
@lake_option
def train(name: str, pairs: str, eval_set: str, holdout_fraction: float, config_file: str | None,
          settings: tuple[str, ...], launcher: str, processes: int, lake_dir: str) -> None:
    """Train a reward model under DeepSpeed, then evaluate it into rm_eval.

    Same pairs and settings as an earlier run: a finished model is reused, a killed run resumes."""
    from models.launch import LaunchConfig
    from models.scorer import Scorer
    from models.train_config import load_config
    from synpref import rm_models
    from synpref.duck import refresh_views
    from synpref.rm_eval import evaluate_reward_model
    from synpref.rm_training import train_reward_model

    lake = Lake.at(lake_dir)
    try:
        config = load_config(config_file, **_settings(settings))
        summary = train_reward_model(lake, name, pairs, config, eval_set=eval_set, holdout_fraction=holdout_fraction,
                                     launch=LaunchConfig(launcher=launcher, processes=processes), log=click.echo)
        ref = rm_models.resolve(lake, name, summary.version)
        evaluation = evaluate_reward_model(lake, ref, lambda: Scorer(ref.path), log=click.echo)
    except (ValueError, FileNotFoundError, LookupError, RuntimeError) as e:
        raise click.ClickException(str(e)) from e
    refresh_views(lake)
    click.echo(f"\n{name} {summary.version} ({summary.status}): {summary.best}")
    click.echo(f"{'breakdown':<15} {'group':<24} {'pairs':>7} {'accuracy':>9} {'margin':>8}")
    for r in evaluation.rows.to_pylist():
        if r["breakdown"] not in ("checkpoint", "confidence_bin"):
            click.echo(f"{r['breakdown']:<15} {r['group_value'][:24]:<24} {r['pairs']:>7,} {r['accuracy']:>9.4f} "
                       f"{r['mean_margin']:>8.3f}")


@main.command()
@click.option("--model", "model", required=True, help="A reward model of the lake (its name) or a model folder.")
@click.option("--pairs", required=True, help="A lake table (silver_pairs, gold_pairs...) or a Parquet/JSONL/JSON "
                                             "file of pairs.")
@click.option("--version", default=None, help="The lake model's version (default its latest complete one).")
@click.option("--out", default=None, help="Output Parquet for a pairs file (default ./<file>.rm_predictions.parquet).")
@click.option("--shards", default=None, help="Shards of a lake table to score, e.g. 0,3 (default all).")
@click.option("--max-tokens", default=8192, show_default=True, help="Padded tokens per batch.")
@click.option("--max-batch", default=64, show_default=True, help="Rows per batch at most.")
@lake_option
def score(model: str, pairs: str, version: str | None, out: str | None, shards: str | None, max_tokens: int,
          max_batch: int, lake_dir: str) -> None:
    """Score pairs with a reward model: a lake table into rm_predictions, shard by shard
    (resumable), or a pairs file into a Parquet file."""
    import functools

    from tqdm import tqdm

    from models.scorer import Scorer, ScorerConfig
    from synpref import rm_models
    from synpref.duck import refresh_views
    from synpref.lake import TABLE_LAYERS
    from synpref.rm_predictions import score_file, score_shard
    from synpref.shards import N_SHARDS

    lake = Lake.at(lake_dir)
    try:
        ref = rm_models.external(model) if Path(model).is_dir() else rm_models.resolve(lake, model, version)
    except (LookupError, ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    make_scorer = functools.cache(lambda: Scorer(ref.path, ScorerConfig(max_tokens=max_tokens, max_batch=max_batch)))
    click.echo(f"model {ref.name} {ref.version} ({ref.path})")
    try:
        if pairs in TABLE_LAYERS:
            wanted = [int(s) for s in shards.split(",")] if shards else list(range(N_SHARDS))
            done = skipped = 0
            for shard in tqdm(wanted, desc=f"scoring {pairs}", unit="shard"):
                summary = score_shard(lake, ref, shard, make_scorer, pairs)
                done += summary.rows
                skipped += summary.rows if summary.skipped else 0
            refresh_views(lake)
            click.echo(f"{done:,} pairs of {pairs} in rm_predictions ({skipped:,} were scored already)")
        else:
            target = Path(out or f"{Path(pairs).name.split('.')[0]}.rm_predictions.parquet")
            with tqdm(desc=f"scoring {pairs}", unit="pair") as bar:
                rows = score_file(Path(pairs), ref, make_scorer, target, log=lambda _: bar.update(
                    make_scorer().stats.sequences // 2 - bar.n))
            click.echo(f"{rows:,} pairs scored into {target}")
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        raise click.ClickException(str(e)) from e


@main.command("models")
@lake_option
def list_models(lake_dir: str) -> None:
    """List the reward models trained in this lake."""
    from synpref import rm_models

    rows = rm_models.list_models(Lake.at(lake_dir))
    if not rows:
        click.echo("no reward models yet (synpref train)")
    for name, version, complete in rows:
        click.echo(f"{name:<24} {version:<8} {'complete' if complete else 'unfinished'}")


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
