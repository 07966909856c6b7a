"""`synpref sources`: check a sources file's mapping on a sample, and list the presets."""

from __future__ import annotations

import json
import sys

import click


@click.group()
def sources() -> None:
    """Declare preference data: check a sources file on a sample, list the presets."""


@sources.command("check")
@click.argument("sources_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--sample", default=1_000, show_default=True, help="Map this many records from the start of each file.")
@click.option("--show", default=3, show_default=True, help="Print this many mapped pairs per file.")
@click.option("--source", "only", default=None, help="Only this source.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON instead of tables.")
def check(sources_file: str, sample: int, show: int, only: str | None, as_json: bool) -> None:
    """Map the first records of each source's files with its preset or SQL, without writing the lake:
    the first pairs, and the quarantine reasons on the sample with an example of each.
    Exits 1 when a source's SQL or a file fails as a whole."""
    from synpref.raw.check import check_sources
    from synpref.raw.sources import SourcesError, load_sources

    try:
        results = check_sources(load_sources(sources_file), sample=sample, show=show, only=only)
    except SourcesError as e:
        raise click.UsageError(str(e)) from e
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in results], default=str, indent=1))
    else:
        _print(results)
    sys.exit(1 if any(r.error for r in results) else 0)


def _print(results) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for r in results:
        console.rule(f"[bold]{r.source}[/] ({r.preset}) {r.file}")
        if r.error:
            console.print(f"[red]failed:[/] {r.error}")
            continue
        console.print(f"{r.records:,} records sampled: {r.pairs:,} pairs, {r.quarantined:,} quarantine rows")
        for i, pair in enumerate(r.first_pairs, 1):
            table = Table(title=f"pair {i} (source_row {pair['source_row']})", show_header=False, expand=True)
            table.add_column(style="bold", width=12)
            table.add_column(overflow="fold")
            for m in pair["conversation"] or []:
                table.add_row(m["role"], _clip(m["content"]))
            table.add_row("[green]chosen[/]", _clip(pair["chosen"]))
            table.add_row("[red]rejected[/]", _clip(pair["rejected"]))
            if pair["rejected_conversation"]:
                table.add_row("rejected conv.", f"{len(pair['rejected_conversation'])} turns, differs")
            if pair["meta"]:
                table.add_row("meta", _clip(json.dumps(pair["meta"], ensure_ascii=False)))
            console.print(table)
        if r.reasons:
            table = Table(title="quarantined on the sample")
            for col in ("reason", "rows", "first row", "detail"):
                table.add_column(col, overflow="fold")
            for reason, n in r.reasons.items():
                row, detail = r.examples.get(reason, (None, ""))
                table.add_row(reason, f"{n:,}", str(row), _clip(detail or "", 200))
            console.print(table)


def _clip(text: str | None, limit: int = 400) -> str:
    from rich.markup import escape

    text = "" if text is None else text
    return escape(text if len(text) <= limit else text[:limit] + f"... ({len(text):,} chars)")


@sources.command("presets")
def presets() -> None:
    """List the presets a source can name with `preset:`, and their params."""
    from synpref.raw.presets import load_preset, preset_names

    for name in preset_names():
        preset = load_preset(name)
        params = ", ".join(f"{k}={v}" for k, v in preset.params.items())
        click.echo(f"{name}: {preset.summary}\n    params: {params or 'none'}")
