"""The lake: one root folder holding every table as Parquet, plus a DuckDB file of views.

Each table is a folder ``<root>/<layer>/<table>/`` of ``*.parquet`` files; a reader
(DuckDB view, Polars, pandas) reads the folder as one table. Files are always written
to a hidden temporary name first and renamed into place, so a killed run never leaves
a half-written file where a reader would see it.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

# table -> layer. Later stages register their tables here as well.
TABLE_LAYERS: dict[str, str] = {
    "raw_pairs": "raw",
    "ingest_quarantine": "raw",
    "silver_decisions": "silver",
    "silver_pairs": "silver",
    "silver_quarantine": "silver",
    "pair_attributes": "silver",
    "judge_queue": "silver",
    "judge_votes": "silver",
    "silver_labels": "silver",
    "annotation_queue": "gold",
    "human_labels": "gold",
    "gold_pairs": "gold",
    "rm_predictions": "models",
    "rm_eval": "models",
    "stage1_retrievals": "gold",
    "stage1_rounds": "gold",
    "pool_scores": "filtered",
    "filtered_pairs": "filtered",
    "curated_export": "filtered",
}

DEFAULT_ROOT = "lake"
LAKE_ENV = "SYNPREF_LAKE"


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """The lake root: the argument, else $SYNPREF_LAKE, else ./lake (made absolute)."""
    chosen = root or os.environ.get(LAKE_ENV) or DEFAULT_ROOT
    scheme, sep, _ = str(chosen).partition("://")
    if sep and scheme.isidentifier():
        # Path() would take "s3://bucket/lake" for a local folder named "s3:"
        raise ValueError(f"lake root {str(chosen)!r} is a URL; the lake is a folder on a (shared) POSIX "
                         f"filesystem with atomic rename: mount the store (NFS, EFS, CephFS, Lustre, JuiceFS) "
                         f"and give the mount's path")
    return Path(chosen).expanduser().resolve()


@dataclass(frozen=True)
class Lake:
    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike | None = None) -> "Lake":
        return cls(resolve_root(root))

    @property
    def db_path(self) -> Path:
        return self.root / "synpref.duckdb"

    @property
    def tmp_dir(self) -> Path:
        """Scratch space (DuckDB spill files); safe to delete between runs."""
        return self.root / "_tmp"

    @property
    def default_sources_file(self) -> Path:
        return self.root / "sources.yaml"

    def table_dir(self, table: str) -> Path:
        try:
            layer = TABLE_LAYERS[table]
        except KeyError:
            raise KeyError(f"unknown lake table {table!r}; known: {sorted(TABLE_LAYERS)}") from None
        return self.root / layer / table

    def table_files(self, table: str) -> list[Path]:
        folder = self.table_dir(table)
        return sorted(folder.glob("*.parquet")) if folder.is_dir() else []

    def has_table(self, table: str) -> bool:
        return bool(self.table_files(table))

    def table_glob(self, table: str) -> str:
        return str(self.table_dir(table) / "*.parquet")

    def manifest_path(self, name: str) -> Path:
        return self.root / "_manifests" / f"{name}.json"

    def read_manifest(self, name: str) -> dict | None:
        path = self.manifest_path(name)
        if not path.exists():
            return None
        with path.open() as f:
            return json.load(f)

    def write_manifest(self, name: str, content: dict) -> None:
        path = self.manifest_path(name)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(content, indent=2, sort_keys=True))


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it into place only on success.

    The temporary name is hidden and does not end in ``.parquet``, so table globs never
    pick up a file that is still being written.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def fsync_dir(folder: Path) -> None:
    """Make a rename or a new file in `folder` durable (its directory entry on disk)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_part(lake: Lake, table: str, rows, durable: bool = False) -> Path:
    """Write an Arrow table as one new Parquet part of `table` (temporary name, then rename).

    durable: fsync the file before the rename and the folder after it, so the part survives
    a power loss, not only a killed process (for rows that exist nowhere else)."""
    import pyarrow.parquet as pq

    part = lake.table_dir(table) / f"part-{uuid.uuid4().hex[:12]}.parquet"
    with atomic_path(part) as tmp:
        pq.write_table(rows, tmp, compression="zstd")
        if durable:
            with tmp.open("rb+") as f:
                os.fsync(f.fileno())
    if durable:
        fsync_dir(part.parent)
    return part


def replace_all(pairs: list[tuple[Path, Path]]) -> None:
    """Move finished temporary files into place one after another (each rename is atomic)."""
    for tmp, final in pairs:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
