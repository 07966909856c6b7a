"""`synpref sources check`: each source's SELECT on the first records of its files, nothing written.

The loop a user runs while writing a source's SQL: the first pairs it maps, and the quarantine
reasons on a sample (with an example row of each), in seconds, before a whole ingest.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from synpref.lake.duck import lit
from synpref.raw.ingest import map_file, mapped_counts
from synpref.raw.mapping import MappingError
from synpref.raw.readers import FileReadError
from synpref.raw.sources import Source, SourcesConfig, SourcesError


@dataclass
class FileCheck:
    source: str
    preset: str  # the preset's name, or "sql"
    file: str
    records: int = 0  # records sampled (the file's first ones)
    pairs: int = 0
    quarantined: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    examples: dict[str, tuple[int, str]] = field(default_factory=dict)  # reason -> (source_row, detail)
    first_pairs: list[dict] = field(default_factory=list)
    error: str | None = None  # the SELECT or the file failed as a whole


def check_sources(config: SourcesConfig, sample: int = 1_000, show: int = 3,
                  only: str | None = None) -> list[FileCheck]:
    """Map the first `sample` records of every file of every source (or of source `only`)."""
    sources = [s for s in config.sources if only is None or s.name == only]
    if not sources:
        raise SourcesError(f"no source named {only!r}; the sources are {', '.join(s.name for s in config.sources)}")
    out = []
    scratch = Path(tempfile.mkdtemp(prefix="synpref-check-"))
    try:
        for source in sources:
            for path in source.files():
                out.append(_check_file(source, path, sample, show, scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def _check_file(source: Source, path: Path, sample: int, show: int, scratch: Path) -> FileCheck:
    check = FileCheck(source.name, source.shape, str(path))
    with duckdb.connect() as con:
        con.execute("set memory_limit = '512MB'")
        con.execute(f"set temp_directory = {lit(scratch)}")
        con.execute("set preserve_insertion_order = true")  # the file's first records, in order
        try:
            check.records = map_file(con, source, path, limit=sample, confined_to=[scratch])
        except (MappingError, FileReadError, duckdb.Error) as e:
            check.error = str(e)
            return check
        counts = mapped_counts(con)
        check.pairs, check.quarantined, check.reasons = counts.pairs, counts.quarantined, counts.reasons
        for reason, row, detail in con.execute("""
                select reason, min(source_row), arg_min(detail, source_row)
                from (select reason, source_row, detail from mapped_out where reason is not null
                      union all select reason, source_row, detail from line_errors)
                group by reason order by reason""").fetchall():
            check.examples[reason] = (row, detail)
        rel = con.execute(f"""
            select source_row, conversation, chosen, rejected, rejected_conversation, meta
            from mapped_out where reason is null order by source_row limit {int(show)}""")
        names = [d[0] for d in rel.description]
        for values in rel.fetchall():
            pair = dict(zip(names, values))
            pair["meta"] = json.loads(pair["meta"]) if pair["meta"] else None
            check.first_pairs.append(pair)
    return check
