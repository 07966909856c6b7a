"""Great Expectations suites, one per lake table: ``<table>.json`` (GE's own suite format)
and ``<table>.sql``, the columns the suite validates (the table's own plus derived ones).

An expectation's ``severity`` decides its Dagster check: ``critical`` failures block the
assets downstream, ``warning`` ones are reported and let the run go on.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path


# tables of one form share its suite: name -> the table whose suite (and projection) it uses
SAME_FORM = {"rm_eval_pairs": "rm_predictions", "pool_model_scores": "rm_predictions"}


def suites_dir() -> Path:
    return Path(str(resources.files(__name__)))


def tables_with_suites(folder: Path | None = None) -> list[str]:
    folder = folder or suites_dir()
    own = {p.stem for p in folder.glob("*.json") if (folder / f"{p.stem}.sql").exists()}
    return sorted(own | {t for t, form in SAME_FORM.items() if form in own})


def load_suite(table: str, folder: Path | None = None) -> dict:
    with ((folder or suites_dir()) / f"{SAME_FORM.get(table, table)}.json").open() as f:
        return {**json.load(f), "name": table}


def load_projection(table: str, folder: Path | None = None) -> str:
    form = SAME_FORM.get(table)
    if form and not ((folder or suites_dir()) / f"{table}.sql").exists():
        # the form's projection reads the form's table (its last line: from <form>): read this one
        text = ((folder or suites_dir()) / f"{form}.sql").read_text()
        head, sep, tail = text.rpartition(f"from {form}")
        return head + f"from {table}" + tail if sep else text
    return ((folder or suites_dir()) / f"{table}.sql").read_text()
