"""Data versions: a short fingerprint of what a table holds now, for Dagster's staleness.

An asset reports the version of the table it wrote; a rerun that reuses its work (or rewrites
the same rows) reports the same version, so nothing downstream is marked stale. A table of up
to CONTENT_BYTES is fingerprinted by its rows (an order-free sum of row hashes: a rebuild that
writes the same rows in another order or file keeps its version); a larger one, cheaply, by
its files: per Parquet file its size and a hash of its footer (schema, row counts and column
statistics of every row group), file names left out.
"""

from __future__ import annotations

import hashlib

from synpref.lake import Lake, LakePath, is_remote

FOOTER_BYTES = 64 * 1024
CONTENT_BYTES = 256 * 1024 * 1024
EMPTY = "empty"


def _file_key(path: LakePath) -> str:
    if is_remote(path):  # a store's listing: size and ETag (no download)
        info = path.fs.info(path.path)
        return f"{info.get('size')}:{info.get('ETag') or info.get('etag') or info.get('mtime') or path.name}"
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - FOOTER_BYTES))
        return f"{size}:{hashlib.md5(f.read()).hexdigest()}"


def _size(path: LakePath) -> int:
    return path.fs.info(path.path)["size"] if is_remote(path) else path.stat().st_size


def table_version(lake: Lake, table: str) -> str:
    """The fingerprint of what `table` holds now ("empty" without any file)."""
    files = lake.table_files(table)
    if not files:
        return EMPTY
    if sum(_size(f) for f in files) <= CONTENT_BYTES:
        from synpref.lake.duck import connect, lit

        with connect(lake) as con:
            (rows, digest), = con.execute(
                f"select count(*), coalesce(sum(hash(t)), 0)::varchar from read_parquet("
                f"[{', '.join(lit(f) for f in files)}], union_by_name = true) as t").fetchall()
        return f"rows-{rows}-{hashlib.sha256(digest.encode()).hexdigest()[:12]}"
    keys = sorted(_file_key(f) for f in files)
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]


def combined(*parts: object) -> str:
    """One version from several (tables, model versions, settings)."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:16]
