"""`synpref annotate`: the human annotation commands (serve, add-annotator, queue, export, import, seal)."""

from __future__ import annotations

from pathlib import Path

import click

from dagster_project.cli_options import lake_option, use_lake
from synpref.lake import Lake


@click.group()
def annotate() -> None:
    """Human annotation: the labelling page, annotators, the queue, imports and exports."""


@annotate.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True)
@click.option("--labels-per-pair", default=1, show_default=True,
              help="Annotators per pair before it leaves the queue (2 or more to measure agreement).")
@click.option("--seal-every", default=10.0, show_default=True,
              help="Seconds between moves of journaled labels into human_labels.")
@click.option("--lease", default=600.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Seconds a shown pair is held for its annotator; a label sent later is refused (410).")
@click.option("--guideline", default="annotation-v1", show_default=True,
              help="Guideline document (models/guidelines/); its version is stored with every label.")
@lake_option
def serve(host: str, port: int, labels_per_pair: int, seal_every: float, lease: float, guideline: str,
          lake_dir: str) -> None:
    """Serve the annotation page (one server per lake; stop it with Ctrl+C or SIGTERM)."""
    import uvicorn

    from synpref.gold.annotate.app import ServeSettings, create_app

    lake = Lake.at(lake_dir)
    if not lake.has_table("silver_pairs"):
        raise click.ClickException(f"no silver_pairs under {lake.root}: build the lake first")
    app = create_app(lake, ServeSettings(labels_per_pair=labels_per_pair, seal_every_s=seal_every,
                                         lease_s=lease, guideline_version=guideline), log=click.echo)
    click.echo(f"annotation page: http://{host}:{port}/ (sign in with a token from "
               f"`synpref annotate add-annotator NAME`)")
    uvicorn.run(app, host=host, port=port, workers=1, log_level="warning", timeout_graceful_shutdown=10)


@annotate.command("add-annotator")
@click.argument("name")
@lake_option
def add_annotator(name: str, lake_dir: str) -> None:
    """Make a sign-in token for NAME (a new one replaces the old) and print it; only its hash is kept."""
    from synpref.gold.annotators import add_annotator as add

    try:
        token = add(Lake.at(lake_dir), name)
    except ValueError as e:
        raise click.ClickException(str(e)) from e
    click.echo(token)


@annotate.command("queue")
@click.argument("query", required=False)
@click.option("--pair-id", "pair_ids", multiple=True, help="A pair to queue (repeatable), instead of QUERY.")
@click.option("--origin", default="cli", show_default=True, help="Recorded with each newly queued pair.")
@click.option("--size", type=int, default=None, help="Queue at most this many new pairs (best first).")
@lake_option
def queue(query: str | None, pair_ids: tuple[str, ...], origin: str, size: int | None, lake_dir: str) -> None:
    """Queue pairs for human annotators: the pair_ids a read-only SELECT returns, or --pair-id ones;
    objective and low-controversy pairs first."""
    from dagster_project import pipeline

    if (query is None) == (not pair_ids):
        raise click.UsageError("name the pairs with either a QUERY or --pair-id")
    lake = use_lake(lake_dir)
    result = pipeline.execute(lake, "queue_for_humans", log_level="WARNING", ops={"annotation_queue": {"config": {
        "sql": query, "pair_ids": list(pair_ids) or None, "origin": origin, "size": size}}})
    if not result.success:  # refused writes, unknown pairs, parse / binder errors: say what was wrong
        raise click.ClickException("\n".join(pipeline.failures(result)) or "the queue_for_humans run failed")
    (m,) = [m.metadata for m in result.asset_materializations_for_node("annotation_queue")]
    click.echo(f"queued {m['queued_by_request_now'].value:,} pairs for annotators ({m['already_queued'].value:,} "
               f"were queued already, {m['left_out_by_size'].value:,} left out by --size)")


@annotate.command("export")
@click.option("--what", type=click.Choice(["queue", "labels"]), default="queue", show_default=True,
              help="queue: tasks to label elsewhere; labels: human_labels as stored.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (default: stdout).")
@click.option("--seed", default=0, show_default=True, help="Seeds the order response_1/response_2 are shown in.")
@lake_option
def export(what: str, fmt: str, output: Path | None, seed: int, lake_dir: str) -> None:
    """Export the annotation queue (or the labels) as JSONL or CSV."""
    from synpref.gold.label_io import export_rows, write_rows

    rows = export_rows(Lake.at(lake_dir), what, seed)
    write_rows(rows, output, fmt)
    if output is not None:
        click.echo(f"wrote {len(rows):,} rows to {output}")


@annotate.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "json"]), default=None,
              help="Default: from the file name (.csv, .json, else jsonl).")
@click.option("--mapping", type=click.Choice(["synpref", "argilla", "label_studio"]), default="synpref",
              show_default=True, help="Whose columns the file has (README: Labelling in another tool).")
@click.option("--question", default="preference", show_default=True,
              help="Argilla question / Label Studio control tag holding the preference.")
@click.option("--comment-question", default="comment", show_default=True)
@lake_option
def import_(path: Path, fmt: str | None, mapping: str, question: str, comment_question: str, lake_dir: str) -> None:
    """Import labels made elsewhere (a label stored already is skipped): into the label journal,
    then the `gold` job seals them into human_labels and rebuilds gold_pairs."""
    from synpref.gold.human_labels import LabelError
    from synpref.gold.label_io import Questions, import_labels

    lake = use_lake(lake_dir)
    try:
        journaled, skipped = import_labels(lake, path, mapping, fmt, Questions(question, comment_question))
    except (LabelError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    _gold_job(lake)
    click.echo(f"imported {journaled:,} labels ({skipped:,} were stored already); human_labels and gold_pairs "
               f"rebuilt (the `gold` job)")


def _gold_job(lake: Lake) -> dict:
    """The `gold` job: seal the journal into human_labels, rebuild gold_pairs; human_labels' metadata."""
    from dagster_project import pipeline

    result = pipeline.execute(lake, "gold", log_level="WARNING")
    if not result.success:
        raise click.ClickException("\n".join(pipeline.failures(result)) or "the gold run failed")
    (meta,) = [m.metadata for m in result.asset_materializations_for_node("human_labels")]
    return {k: v.value for k, v in meta.items()}


@annotate.command()
@lake_option
def seal(lake_dir: str) -> None:
    """Move journaled labels (e.g. a killed server's) into human_labels now, and rebuild gold_pairs
    (the `gold` job)."""
    from synpref.gold.human_labels import rejected_lines_path

    lake = use_lake(lake_dir)
    m = _gold_job(lake)
    click.echo(f"sealed {m['sealed_now']:,} labels from {m['journal_segments']} journal segments "
               f"({m['journal_lines_stored_already']:,} stored already, {m['unreadable_journal_lines']} lines set "
               f"aside, {m['journal_lines_naming_unknown_pairs']} of them naming a pair not in silver_pairs)")
    if m["unreadable_journal_lines"]:
        click.echo(f"lines set aside, with their reasons: {rejected_lines_path(lake)}")
