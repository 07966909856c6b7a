"""Great Expectations suites, one per lake table: ``<table>.json`` (GE's own suite format)
and ``<table>.sql``, the columns the suite validates (the table's own plus derived ones).

An expectation's ``severity`` decides its Dagster check: ``critical`` failures block the
assets downstream, ``warning`` ones are reported and let the run go on.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path


def suites_dir() -> Path:
    return Path(str(resources.files(__name__)))


def tables_with_suites(folder: Path | None = None) -> list[str]:
    folder = folder or suites_dir()
    return sorted(p.stem for p in folder.glob("*.json") if (folder / f"{p.stem}.sql").exists())


def load_suite(table: str, folder: Path | None = None) -> dict:
    with ((folder or suites_dir()) / f"{table}.json").open() as f:
        return json.load(f)


def load_projection(table: str, folder: Path | None = None) -> str:
    return ((folder or suites_dir()) / f"{table}.sql").read_text()
