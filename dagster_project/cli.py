"""The `synpref` command: demo, materialize, sql, check, queue, train, score, export, models, tables, ui, annotate,
sources."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from dagster_project.annotate_cli import annotate
from dagster_project.sources_cli import sources
from dagster_project.cli_options import group_lake_option, lake_option, use_lake
from synpref.filtered.filtering import RULES
from synpref.lake import Lake
from synpref.lake.user_query import DEFAULT_MEMORY, DEFAULT_TIMEOUT_S



@click.group()
@group_lake_option
@click.option("-v", "--verbose", is_flag=True, help="Stream every log line (Dagster events, vLLM, DeepSpeed) "
                                                    "to the console instead of <lake>/logs/.")
@click.pass_context
def main(ctx: click.Context, lake_dir: str | None, verbose: bool) -> None:
    """SynPref: curate preference pairs for reward models in a Parquet + DuckDB lake.

    --lake goes before or after the command: `synpref --lake L tables` = `synpref tables --lake L`."""
    ctx.obj = {"verbose": verbose}


DEMO_RM = {"epochs": 1, "max_length": 128}  # a short reward-model run keeps the demo quick on a CPU


@main.command()
@click.option("--pairs", default=1000, show_default=True, help="How many demo records to generate.")
@click.option("--seed", default=0, show_default=True)
@click.option("--rounds", default=2, show_default=True, help="Stage 1 rounds.")
@click.option("--seed-gold", default=48, show_default=True, help="Pairs labelled before round 1 (the seed gold set).")
@click.option("--to-humans", default=16, show_default=True, help="Retrieved pairs sent to humans per round.")
@click.option("-v", "--verbose", is_flag=True, help="Stream every log line instead of writing them to <lake>/logs/.")
@lake_option
def demo(pairs: int, seed: int, rounds: int, seed_gold: int, to_humans: int, verbose: bool, lake_dir: str) -> None:
    """Generate seeded demo data and run the whole method on it: the lake, Stage 1 rounds with
    SIMULATED human annotators, Stage 2 over every shard, and the curated export.

    The console shows one line per stage; the Dagster events, vLLM and DeepSpeed output go to
    <lake>/logs/demo-<time>.log (named at the end), or to the console with -v."""
    from dagster_project import pipeline
    from dagster_project.summaries import print_quarantine, print_retention, print_tables
    from synpref.demo import generate_demo
    from synpref.demo.simulated import simulate_annotators
    from synpref.raw.sources import relocate

    lake = use_lake(lake_dir)
    landing = lake.home / "landing" / "demo"  # files to ingest are read from a local disk
    with _stage_console(lake, "demo", verbose) as console:
        step = console.run
        summary = step(f"{pairs:,} seeded demo records", lambda: generate_demo(landing, pairs=pairs, seed=seed))
        relocate(summary.sources_file, lake.default_sources_file)
        step("the lake (ingest, silver, attributes, embeddings)",
             lambda: pipeline.run(lake, "ingest_and_clean"), ("ingest_and_clean",))
        step("the seed set queued for humans", lambda: pipeline.queue_seed(lake, seed_gold) is not None,
             ("queue_for_humans",))
        console.echo(f"    {simulate_annotators(lake, origin='seed'):,} SIMULATED human labels on the seed set "
                     f"(from the generator's known truth; marked simulated in human_labels and gold_pairs)")
        for number in range(1, rounds + 1):
            key = step(f"Stage 1 round {number}: the round RM, error-driven retrieval, queues, SIMULATED human "
                       f"labels", lambda: pipeline.start_round(lake, to_humans=to_humans, simulated_humans=True,
                                                               model_overrides=DEMO_RM, echo=console.echo),
                       ("stage1_round",))
            step(f"Stage 1 round {number}: gold rebuilt, the LLM judges, the round's figures",
                 lambda: pipeline.finish_round(lake, key), ("stage1_round_finish",))
        step("Stage 2: the gold RM, every shard scored, judged and filtered, the curated export",
             # the shards one after another in one process: at the demo's size a process per step
             # (imports, an engine start) costs more than two cores win running them side by side
             lambda: pipeline.run_stage2(lake, model_overrides=DEMO_RM, in_process=True).ok,
             ("stage2_models", "stage2", "export"))
    print_tables(lake)
    print_quarantine(lake)
    print_retention(lake)
    failed = sorted(f"{a}:{c}" for (a, c), passed in pipeline.CHECKS.items() if not passed)
    click.echo(f"\ndata-quality checks: {len(pipeline.CHECKS) - len(failed)} of {len(pipeline.CHECKS)} passed "
               f"in the Dagster runs" + (f"; not passed (warnings): {', '.join(failed)}" if failed else ""))
    synpref = shlex.quote(str(Path(sys.executable).with_name("synpref")))
    at = shlex.quote(str(lake.root))  # pasted into a shell: a path with spaces or quotes stays one word
    click.echo(f"""
Open the Dagster UI on this lake (runs, asset metadata and plots, lineage):
    {synpref} ui --lake {at}
    then browse http://127.0.0.1:3000
Query the curated pairs with SQL (read-only):
    {synpref} sql --lake {at} "select status, reason, count(*) as pairs, round(avg(p_gold), 3) as p_gold from filtered_pairs group by all order by pairs desc"
    {synpref} sql --lake {at} "select round, gold_accuracy, gold_pairs_after, to_humans, to_judges from stage1_rounds order by round_number"
    {synpref} sql --lake {at} "select stage, reason, source_file, source_row, detail from quarantine limit 10"
{_duckdb_hint(lake)}
The curated pairs: {lake.root / "filtered" / "curated_export"}; as a dataset TRL's RewardTrainer takes as it is:
    {synpref} export --for trl --tokenizer minilm --lake {at}    (or --tokenizer MODEL_DIR)
Human labels in this demo are SIMULATED; to label for real in the browser:
    {synpref} annotate add-annotator $USER --lake {at}
    {synpref} annotate serve --lake {at}""")
    console.say_log()


def _stage_console(lake: Lake, name: str, verbose: bool = False):
    """The console of a command that runs stages: quiet, with the logs in <lake>/logs/, unless -v."""
    from dagster_project.console import StageConsole

    return StageConsole(lake, name, verbose or (click.get_current_context().find_root().obj or {}).get("verbose"))


def _duckdb_hint(lake: Lake) -> str:
    if lake.remote:  # the views read s3:// through the fsspec filesystem that synpref registers
        return (f"Other DuckDB clients need the store's httpfs secret to read {lake.db_path}'s views, or the "
                f"Parquet under {lake.root} directly.")
    # the views read paths relative to the lake root: a client started there finds them, wherever the lake moved
    return (f"Or any DuckDB client, started in the lake's folder: cd {shlex.quote(str(lake.root))} && "
            f"duckdb synpref.duckdb")


@main.command("round")
@click.option("--to-humans", default=16, show_default=True, help="Retrieved pairs sent to humans.")
@click.option("--seed-gold", default=48, show_default=True, help="Pairs queued for humans when there is no gold yet.")
@click.option("--finish", "finish_key", default=None, help="Finish this round (after humans labelled its pairs).")
@click.option("--simulate-humans", is_flag=True, help="Demo lakes only: label with annotators simulated from the "
                                                      "generator's truth.")
@lake_option
def round_command(to_humans: int, seed_gold: int, finish_key: str | None, simulate_humans: bool,
                  lake_dir: str) -> None:
    """Start the next Stage 1 round (or finish one): the round RM, retrieval, the queues."""
    from dagster_project import pipeline
    from synpref.gold import stage1
    from synpref.demo.simulated import simulate_annotators

    lake = use_lake(lake_dir)
    synpref = Path(sys.executable).with_name("synpref")
    finish = "Stage 1 {}: gold rebuilt, the LLM judges, the round's figures"
    with _stage_console(lake, "round") as console:
        if finish_key:
            console.run(finish.format(finish_key), lambda: pipeline.finish_round(lake, finish_key),
                        ("stage1_round_finish",))
            console.say_log()
            return
        console.run("gold: journaled labels sealed, gold_pairs rebuilt", lambda: pipeline.run(lake, "gold"), ("gold",))
        if not stage1.gold_count(lake):
            queued = {}
            console.run("the seed set queued for humans",
                        lambda: (queued.setdefault("n", pipeline.queue_seed(lake, seed_gold))) is not None,
                        ("queue_for_humans",))
            if not simulate_humans:
                console.echo(f"no gold pairs yet: {queued['n']:,} seed pairs queued for humans. Label them "
                             f"(`{synpref} annotate serve --lake {lake.root}`), then run `synpref round` again.")
                console.say_log()
                return
            console.echo(f"    {simulate_annotators(lake, origin=stage1.SEED_ORIGIN):,} SIMULATED labels on the "
                         f"seed set")
            console.run("gold: the seed labels sealed, gold_pairs rebuilt", lambda: pipeline.run(lake, "gold"),
                        ("gold",))
        key = console.run("Stage 1, the next round: the round RM, error-driven retrieval, queues", lambda: (
            pipeline.start_round(lake, to_humans=to_humans, simulated_humans=simulate_humans, echo=console.echo)),
            ("stage1_round",))
        if simulate_humans:
            console.run(finish.format(key), lambda: pipeline.finish_round(lake, key), ("stage1_round_finish",))
        else:
            console.echo(f"{key} started: label its pairs (`{synpref} annotate serve --lake {lake.root}`), then "
                         f"`{synpref} round --finish {key} --lake {lake.root}`")
    console.say_log()


@main.command()
@click.option("--max-concurrent", default=None, type=int, help="Shards processed at once (default: one per core).")
@click.option("--run-config", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Run config YAML of the sharded run, e.g. the Celery or Kubernetes executor (README).")
@click.option("--rule", default=None, type=click.Choice(sorted(RULES)),
              help="The filter's rule (default paper: the gold RM and the best RM or the judges agree).")
@click.option("--in-process", is_flag=True, help="Every shard in this one process, one after another (a small "
                                                "lake on a few cores: no process start or engine load per step).")
@lake_option
def stage2(max_concurrent: int | None, run_config: Path | None, rule: str | None, in_process: bool,
           lake_dir: str) -> None:
    """Stage 2 over every shard: the gold RM and fold models, the out-of-fold scores, the judges, the
    filter, the export."""
    from dagster_project import pipeline
    from dagster_project.summaries import print_retention

    if (max_concurrent or in_process) and run_config:
        raise click.UsageError("--max-concurrent and --in-process choose the local executor; set it in "
                               "--run-config instead")
    if max_concurrent and in_process:
        raise click.UsageError("--max-concurrent is the multiprocess executor's, not --in-process's")
    lake = use_lake(lake_dir)
    with _stage_console(lake, "stage2") as console:
        console.run("Stage 2: the gold RM, every shard scored, judged and filtered, the curated export",
                    lambda: pipeline.run_stage2(lake, max_concurrent=max_concurrent, run_config=run_config,
                                                rule=rule, in_process=in_process).ok,
                    ("stage2_models", "stage2", "export"))
    print_retention(lake)
    console.say_log()


@main.command()
@click.option("--select", default="*", show_default=True,
              help="Dagster asset selection, e.g. 'silver_pairs' or '+silver_pairs'.")
@click.option("--sources", "sources_file", default=None, help="Sources YAML (default <lake>/sources.yaml).")
@lake_option
def materialize(select: str, sources_file: str | None, lake_dir: str) -> None:
    """Run the Dagster assets (in-process) on the lake."""
    from dagster_project.run import materialize_assets
    from dagster_project.summaries import print_tables

    lake = use_lake(lake_dir)
    ok = materialize_assets(lake, select=select, sources_file=sources_file)
    print_tables(lake)
    sys.exit(0 if ok else 1)


@main.command("job")
@click.argument("name", required=False)
@click.option("--partition", default=None, help="The partition to run (a Stage 1 round: round-2).")
@lake_option
def job(name: str | None, partition: str | None, lake_dir: str) -> None:
    """Run one of the project's named jobs (a stage) on the lake; without NAME, list them."""
    from dagster_project import pipeline
    from dagster_project.jobs import JOBS
    from dagster_project.summaries import print_tables

    if name is None:
        click.echo(f"{'job':<20} what it runs")
        for job_name, (assets, description) in JOBS.items():
            click.echo(f"{job_name:<20} {description}\n{'':<20} assets: {', '.join(assets)}")
        return
    if name not in JOBS:
        raise click.BadParameter(f"{name!r} is not a job; jobs: {', '.join(JOBS)}", param_hint="NAME")
    from synpref.rm.crossfit import fold_keys
    from synpref.lake.shards import shard_keys

    lake = use_lake(lake_dir)
    # the jobs over the pool's shards or the folds run them all in one run (single-run backfills)
    keys = {"stage2": shard_keys(), "stage2_models": fold_keys()}.get(name)
    with _stage_console(lake, name) as console:
        title = f"{name}{f' {partition}' if partition else ''}: {JOBS[name][1].rstrip('.')}"
        console.run(title, lambda: pipeline.run(lake, name, partition_key=partition,
                                                partition_range=(keys[0], keys[-1]) if keys else None), (name,))
    print_tables(lake)
    console.say_log()


@main.command()
@click.argument("query")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--max-rows", default=100, show_default=True, help="Rows shown in table format.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0), default=DEFAULT_TIMEOUT_S, show_default=True,
              help="Seconds before the query is stopped (0: no limit). Ctrl-C stops it at once.")
@click.option("--memory-limit", default=DEFAULT_MEMORY, show_default=True,
              help="DuckDB's memory limit for the query; past it, DuckDB spills to disk or fails.")
@lake_option
def sql(query: str, fmt: str, max_rows: int, timeout_s: float, memory_limit: str, lake_dir: str) -> None:
    """Run a read-only SQL query over the lake's tables: SELECT or EXPLAIN SELECT, reading only
    the lake's tables (not other files), within a time and memory limit."""
    from synpref.lake.duck import WriteRefused
    from synpref.lake.user_query import QueryError, QueryLimits, run_user_query

    def emit(rel) -> None:
        if fmt == "table":
            rel.show(max_rows=max_rows, max_width=10_000)
            return
        frame = rel.pl()
        click.echo(frame.write_csv() if fmt == "csv" else frame.write_json(), nl=False)
        if fmt == "json":
            click.echo()

    try:
        run_user_query(Lake.at(lake_dir), query, emit, QueryLimits(timeout_s, memory_limit))
    except (QueryError, WriteRefused) as e:
        raise click.ClickException(str(e)) from None


@main.command()
@click.argument("tables", nargs=-1)
@click.option("--batch-rows", default=100_000, show_default=True, help="Rows validated at a time.")
@lake_option
def check(tables: tuple[str, ...], batch_rows: int, lake_dir: str) -> None:
    """Run the data-quality suites (and reconciliations) on TABLES, or on every table.

    Exits non-zero when a blocking check fails; warnings are printed and do not fail. `mostly` is
    the share of rows an expectation needs to pass (`all`: every row); the result `within` is a pass
    with unexpected rows inside that allowance.
    """
    from synpref.checks.checking import run_checks
    from synpref.checks.quality import docs_index

    lake = Lake.at(lake_dir)
    try:
        rows = run_checks(lake, list(tables) or None, batch_rows=batch_rows)
    except (ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    if not rows:
        raise click.ClickException(f"no tables to check under {lake.root}")
    click.echo(f"{'table':<18} {'check':<58} {'kind':<9} {'mostly':>6} {'result':<7} detail")
    for r in rows:
        mostly = f"{r.mostly:g}" if r.mostly is not None else "all"
        click.echo(f"{r.table:<18} {r.check:<58} {r.kind:<9} {mostly:>6} {r.result:<7} {r.detail}")
    blocking = sum(1 for r in rows if r.blocking and not r.success)
    warnings = sum(1 for r in rows if not r.blocking and not r.success)
    within = sum(1 for r in rows if r.result == "within")
    click.echo(f"\n{len(rows)} checks: {blocking} blocking failed, {warnings} warnings failed, {within} passed with "
               f"unexpected rows inside their `mostly` allowance (result `within`). Data Docs: {docs_index(lake)}")
    sys.exit(1 if blocking else 0)


@main.command("queue")
@click.argument("query")
@click.option("--origin", default="cli", show_default=True, help="Recorded with each newly queued pair.")
@lake_option
def queue(query: str, origin: str, lake_dir: str) -> None:
    """Queue the pair_ids a read-only SELECT returns for the LLM judges (judge_queue)."""
    from dagster_project import pipeline

    lake = use_lake(lake_dir)
    result = pipeline.execute(lake, "queue_for_judges", log_level="WARNING",
                              ops={"judge_queue": {"config": {"sql": query, "origin": origin}}})
    if not result.success:  # refused writes, unknown pairs, parse / binder errors: say what was wrong
        raise click.ClickException("\n".join(pipeline.failures(result)) or "the queue_for_judges run failed")
    (m,) = [m.metadata for m in result.asset_materializations_for_node("judge_queue")]
    click.echo(f"queued {m['queued_now'].value:,} pairs (judge_queue holds {m['dagster/row_count'].value:,}); "
               f"judge them with `synpref job judging`")


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
    """Train a reward model under DeepSpeed, then evaluate it into rm_eval (the train_reward_model job).

    Same pairs and settings as an earlier run: a finished model is reused, a killed run resumes."""
    from dagster_project import pipeline
    from dagster_project.resources import TrainerResource
    from synpref.lake.duck import connect as duck_connect, lit

    lake = use_lake(lake_dir)
    _settings(settings)  # refuse unknown or mistyped settings here, before any run
    texts = dict(item.partition("=")[::2] for item in settings)
    if Path(pairs.strip()).is_file():  # a Parquet file of pairs, named from here
        pairs = str(Path(pairs.strip()).resolve())
    result = pipeline.execute(
        lake, "train_reward_model", log_level="WARNING",
        resources={"trainer": TrainerResource(config_file=config_file, launcher=launcher, processes=processes)},
        ops={"reward_model": {"config": {"model_name": name, "pairs_sql": pairs, "eval_set": eval_set,
                                         "holdout_fraction": holdout_fraction,
                                         "settings": {k.strip(): v.strip() for k, v in texts.items()}}},
             "evaluate_reward_models": {"config": {"model_name": name}}})
    if not result.success:
        raise click.ClickException("\n".join(pipeline.failures(result)) or "the train_reward_model run failed")
    (trained,) = [m.metadata for m in result.asset_materializations_for_node("reward_model")]
    version = trained["model_version"].value
    if trained["status"].value == "unchanged":
        click.echo(f"{name} {version} was already trained on these pairs with these settings: reused")
    click.echo(f"\n{name} {version} ({trained['status'].value}): {lake.root / trained['path'].value}")
    with duck_connect(lake) as con:
        rows = con.execute(f"select breakdown, group_value, pairs, accuracy, mean_margin from read_parquet("
                           f"{lit(lake.table_glob('rm_eval'))}) where model = $m and model_version = $v and "
                           f"breakdown not in ('checkpoint', 'confidence_bin') order by breakdown <> 'overall', "
                           f"breakdown, group_value", {"m": name, "v": version}).fetchall()
    click.echo(f"{'breakdown':<15} {'group':<24} {'pairs':>7} {'accuracy':>9} {'margin':>8}")
    for breakdown, group, n, accuracy, margin in rows:
        click.echo(f"{breakdown:<15} {(group or '')[:24]:<24} {n:>7,} {accuracy:>9.4f} {margin:>8.3f}")


@main.command()
@click.option("--model", "model", required=True, help="A reward model of the lake (its name) or a model folder.")
@click.option("--pairs", required=True, help="A lake table (silver_pairs, gold_pairs...) or a Parquet/JSONL/JSON "
                                             "file of pairs.")
@click.option("--version", default=None, help="The lake model's version (default its latest complete one).")
@click.option("--out", default=None, help="Output Parquet for a pairs file: its columns and the scores "
                                           "(default ./<file>.rm_predictions.parquet).")
@click.option("--by", default=None, metavar="COLUMN", help="A pairs file: accuracy also per value of this column "
                                                           "of the file (e.g. category).")
@click.option("--shards", default=None, help="Shards of a lake table to score, e.g. 0,3 (default all).")
@click.option("--max-tokens", default=8192, show_default=True, help="Padded tokens per batch.")
@click.option("--max-batch", default=64, show_default=True, help="Rows per batch at most.")
@lake_option
def score(model: str, pairs: str, version: str | None, out: str | None, by: str | None, shards: str | None,
          max_tokens: int, max_batch: int, lake_dir: str) -> None:
    """Score pairs with a reward model: a lake table into rm_predictions, shard by shard
    (resumable), or a pairs file into a Parquet file of its columns and the scores, printing the
    accuracy (share of pairs with p_chosen > 0.5; a tie, 0.5, is wrong) overall and --by a column."""
    from tqdm import tqdm

    from synpref.lake.duck import refresh_views
    from synpref.lake import TABLE_LAYERS
    from synpref.rm.pairs_file import accuracy_rows
    from synpref.rm.rm_predictions import score_shard
    from synpref.lake.shards import N_SHARDS

    lake = Lake.at(lake_dir)
    ref, cached_scorer = _scoring_model(lake, model, version, max_tokens, max_batch)
    try:
        if pairs in TABLE_LAYERS:
            if by:
                raise click.UsageError("--by is for a pairs file (a lake model's accuracy by source, task category "
                                       "and objectivity is in rm_eval)")
            wanted = [int(s) for s in shards.split(",")] if shards else list(range(N_SHARDS))
            done = skipped = 0
            for shard in tqdm(wanted, desc=f"scoring {pairs}", unit="shard"):
                summary = score_shard(lake, ref, shard, cached_scorer, pairs)
                done += summary.rows
                skipped += summary.rows if summary.skipped else 0
            refresh_views(lake)
            click.echo(f"{done:,} pairs of {pairs} in rm_predictions ({skipped:,} were scored already)")
        else:
            target = Path(out or f"{Path(pairs).name.split('.')[0]}.rm_predictions.parquet")
            rows = _score_pairs_file(Path(pairs), ref, cached_scorer, target, by)
            click.echo(f"{rows:,} pairs scored into {target}")
            _print_accuracy(accuracy_rows(target, by), by)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        raise click.ClickException(str(e)) from e


@main.command()
@click.option("--for", "trainer", type=click.Choice(["trl"]), default="trl", show_default=True,
              help="The trainer the dataset is for: TRL's RewardTrainer.")
@click.option("--tokenizer", required=True,
              help="The reward model's backbone (a local model folder, or 'minilm'): with a chat template the "
                   "pairs stay messages, without one they come tokenized.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="The datasets folder to write (replaced whole)  [default: <lake>/export/trl_dataset]")
@click.option("--max-length", type=click.IntRange(min=8), default=None,
              help="Tokens per sequence at most, for a tokenizer without a chat template  "
                   "[default: its model_max_length, at most 512]")
@lake_option
def export(trainer: str, tokenizer: str, out: Path | None, max_length: int | None, lake_dir: str) -> None:
    """Write the curated export as a `datasets` folder a trainer takes as it is (datasets.load_from_disk)."""
    from synpref.filtered.trl_export import export_for_trl

    try:
        info = export_for_trl(Lake.at(lake_dir), tokenizer, out, max_length)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"{info.rows:,} curated pairs for TRL ({info.form}) in {info.path}")

def _scoring_model(lake: Lake, model: str, version: str | None, max_tokens: int, max_batch: int):
    """The model to score with (a lake model's name, or a model folder), and its scorer, loaded once
    when first asked for."""
    import functools

    from models.scorer import ScorerConfig, make_scorer
    from synpref.rm import rm_models

    try:
        ref = rm_models.external(model) if Path(model).is_dir() else rm_models.resolve(lake, model, version)
    except (LookupError, ValueError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"model {ref.name} {ref.version} ({ref.path})")
    return ref, functools.cache(lambda: make_scorer(ref.path, ScorerConfig(max_tokens=max_tokens,
                                                                          max_batch=max_batch)))


def _score_pairs_file(pairs: Path, ref, cached_scorer, target: Path, by: str | None) -> int:
    from tqdm import tqdm

    from synpref.rm.pairs_file import check_breakdown, score_file

    if by:
        check_breakdown(pairs, by)  # before the scoring, not after it
    with tqdm(desc=f"scoring {pairs}", unit="pair") as bar:
        return score_file(pairs, ref, cached_scorer, target, log=lambda _: bar.update(
            cached_scorer().stats.sequences // 2 - bar.n))


def _print_accuracy(records: list[dict], by: str | None) -> None:
    """Accuracy overall and per value of the --by column, from rm_eval's figures on the pairs."""
    (overall,) = [r for r in records if r["breakdown"] == "overall"]
    click.echo(f"accuracy (p_chosen > 0.5) {overall['accuracy']:.4f} on {overall['pairs']:,} pairs")
    groups = [r for r in records if by and r["breakdown"] == by]
    if groups:
        width = max(len(by), *(len(r["group_value"]) for r in groups))
        click.echo(f"{by:<{width}} {'pairs':>7} {'accuracy':>9}")
        for r in groups:
            click.echo(f"{r['group_value']:<{width}} {r['pairs']:>7,} {r['accuracy']:>9.4f}")


@main.command("eval")
@click.option("--model", "model", required=True, help="A reward model of the lake (its name) or a model folder.")
@click.option("--pairs", required=True, help="A Parquet/JSONL/JSON file of labelled pairs (an outside benchmark).")
@click.option("--version", default=None, help="The lake model's version (default its latest complete one).")
@click.option("--by", default=None, metavar="COLUMN", help="Accuracy also per value of this column of the file.")
@click.option("--eval-set", "eval_set", default=None, help="The set's name in rm_eval (default the file's name "
                                                           "less its suffixes).")
@click.option("--out", default=None, help="Keep the per-pair scores (the file's columns and the scores) here.")
@click.option("--max-tokens", default=8192, show_default=True, help="Padded tokens per batch.")
@click.option("--max-batch", default=64, show_default=True, help="Rows per batch at most.")
@lake_option
def eval_command(model: str, pairs: str, version: str | None, by: str | None, eval_set: str | None,
                 out: str | None, max_tokens: int, max_batch: int, lake_dir: str) -> None:
    """Evaluate a reward model on a pairs file into the lake's rm_eval, as the eval set named after
    the file, beside gold: accuracy (p_chosen > 0.5; a tie, 0.5, is wrong), mean margin and
    calibration, overall and --by a column. Evaluating the version on the set again replaces its rows."""
    import tempfile

    from synpref.lake.duck import refresh_views
    from synpref.rm.pairs_file import accuracy_rows, eval_set_name, write_outside_eval

    lake = Lake.at(lake_dir)
    if not lake.root.exists():
        raise click.ClickException(f"no lake at {lake.root}")
    path = Path(pairs)
    try:
        name = eval_set_name(path, eval_set)
        ref, cached_scorer = _scoring_model(lake, model, version, max_tokens, max_batch)
        with tempfile.TemporaryDirectory(prefix="synpref-eval-") as tmp:
            target = Path(out) if out else Path(tmp) / "scores.parquet"
            _score_pairs_file(path, ref, cached_scorer, target, by)
            records = accuracy_rows(target, by)
        written = write_outside_eval(lake, ref, name, path.name, records)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        raise click.ClickException(str(e)) from e
    refresh_views(lake)
    click.echo(f"{ref.name} {ref.version} on {name}: {len(records)} rows of rm_eval ({written})")
    _print_accuracy(records, by)


@main.command("models")
@lake_option
def list_models(lake_dir: str) -> None:
    """List the reward models trained in this lake."""
    from synpref.rm import rm_models

    rows = rm_models.list_models(Lake.at(lake_dir))
    if not rows:
        click.echo("no reward models yet (synpref train)")
        return
    click.echo(f"{'model':<24} {'version':<8} status")
    for name, version, complete in rows:
        click.echo(f"{name:<24} {version:<8} {'complete' if complete else 'unfinished'}")


@main.command()
@lake_option
def tables(lake_dir: str) -> None:
    """List the lake's tables with their row counts (and bring its DuckDB views up to date)."""
    from dagster_project.summaries import print_tables
    from synpref.lake.duck import try_refresh_views

    lake = Lake.at(lake_dir)
    try_refresh_views(lake)
    print_tables(lake)


@main.command()
@click.option("--to", "target", required=True, help="The lake on the object store, e.g. s3://bucket/lake.")
@lake_option
def push(target: str, lake_dir: str) -> None:
    """Copy a local lake to an object store (tables, manifests, models, vectors), to run it from there."""
    from tqdm import tqdm

    from synpref.lake import copy_lake

    try:
        source, dest = Lake.at(lake_dir), Lake.at(target)
        if source.remote or not dest.remote:
            raise ValueError("push copies a local lake (--lake) to one on an object store (--to s3://...)")
    except ValueError as e:
        raise click.UsageError(str(e)) from e
    with tqdm(desc="uploading", unit="file") as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        count = copy_lake(source, dest, progress)
    click.echo(f"{count:,} files of {source.root} now at {dest.root}: run with --lake {dest.root}")


@main.command()
@click.option("--port", default=3000, show_default=True)
@lake_option
def ui(port: int, lake_dir: str) -> None:
    """Serve the Dagster UI for this lake on 127.0.0.1 (dagster dev)."""
    use_lake(lake_dir)
    os.execv(sys.executable, [sys.executable, "-m", "dagster_project.dagster_cli", "dev",
                              "-m", "dagster_project.definitions", "-h", "127.0.0.1", "-p", str(port)])


main.add_command(annotate)
main.add_command(sources)

if __name__ == "__main__":
    main()
