"""The lake: one root holding every table as Parquet, plus a DuckDB file of views.

Each table is a folder ``<root>/<layer>/<table>/`` of ``*.parquet`` files; a reader
(DuckDB view, Polars, pandas) reads the folder as one table. Files are always written
to a hidden temporary name first and renamed into place, so a killed run never leaves
a half-written file where a reader would see it.

The root is a local (or shared POSIX) folder, or an object-store URL (``s3://bucket/lake``,
any fsspec protocol whose package is installed; credentials and endpoint from the store's
usual environment, e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL). On an
object store a file is written locally and published by one upload (an object appears whole
or not at all: readers see the old one or the new one, never a part), and what must be on a local disk
(the DuckDB file of views, spill files, model weights to load, the annotation journal) lives
in the lake's local home, a cache folder per lake (``$SYNPREF_CACHE``, else ~/.cache/synpref).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Union

from upath import UPath

from synpref.lake import scratch

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
    "rm_eval_pairs": "models",
    "stage1_retrievals": "gold",
    "stage1_rounds": "gold",
    "pool_scores": "filtered",
    "pool_model_scores": "filtered",
    "filtered_pairs": "filtered",
    "curated_export": "filtered",
}

DEFAULT_ROOT = "lake"
LAKE_PREFIX = "<lake>/"  # a recorded path under the lake root (Lake.portable): the lake may have moved since
LAKE_ENV = "SYNPREF_LAKE"
CACHE_ENV = "SYNPREF_CACHE"
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

LakePath = Union[Path, UPath]  # a local Path, or a UPath on an object store


def is_url(text: str | os.PathLike) -> bool:
    return bool(_URL.match(str(text)))


def resolve_root(root: str | os.PathLike | None = None) -> LakePath:
    """The lake root: the argument, else $SYNPREF_LAKE, else ./lake (a local one made absolute)."""
    chosen = str(root or os.environ.get(LAKE_ENV) or DEFAULT_ROOT)
    if isinstance(root, UPath) and not isinstance(root, Path):
        return root
    if not is_url(chosen):
        return Path(chosen).expanduser().resolve()
    import fsspec

    scheme = _URL.match(chosen).group(1).lower()
    if scheme == "file":
        return Path(chosen[len("file://"):]).expanduser().resolve()
    if scheme in ("memory", "http", "https") or scheme not in fsspec.available_protocols():
        # memory:// is one process's; http(s) is read-only: neither can hold a lake
        raise ValueError(f"lake root {chosen!r}: {scheme}:// cannot hold a lake; give a local or shared folder, "
                         f"or an object-store URL (s3://bucket/path, with s3fs installed)")
    try:
        fsspec.get_filesystem_class(scheme)
    except ImportError as e:
        raise ValueError(f"lake root {chosen!r}: the {scheme}:// filesystem is not installed ({e})") from None
    # no listing cache: other processes and machines add parts all the time
    return UPath(chosen.rstrip("/"), use_listings_cache=False)


def is_remote(path: LakePath) -> bool:
    return not isinstance(path, Path)


def cache_base() -> Path:
    """Local disk space for lakes on a store: $SYNPREF_CACHE, else ~/.cache/synpref."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "synpref").expanduser().resolve()


def cache_home(root: LakePath) -> Path:
    """A remote lake's local home: <cache_base()>/lakes/<root as a name>."""
    base = cache_base()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", str(root)).strip("_")[:80]
    return base / "lakes" / f"{slug}-{hashlib.md5(str(root).encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class Lake:
    root: LakePath

    @classmethod
    def at(cls, root: str | os.PathLike | None = None) -> "Lake":
        return cls(resolve_root(root))

    @property
    def remote(self) -> bool:
        """Whether the root is an object-store URL (not a folder of this machine's filesystem)."""
        return is_remote(self.root)

    @property
    def home(self) -> Path:
        """What must be on a local disk: the root itself for a local lake, else its cache folder."""
        return cache_home(self.root) if self.remote else self.root

    @property
    def db_path(self) -> Path:
        return self.home / "synpref.duckdb"

    @property
    def tmp_dir(self) -> Path:
        """Scratch space (DuckDB spill files, staged tables); safe to delete between runs."""
        return self.home / "_tmp"

    @property
    def default_sources_file(self) -> Path:
        return self.home / "sources.yaml"

    def table_dir(self, table: str) -> LakePath:
        try:
            layer = TABLE_LAYERS[table]
        except KeyError:
            raise KeyError(f"unknown lake table {table!r}; known: {sorted(TABLE_LAYERS)}") from None
        return self.root / layer / table

    def table_files(self, table: str) -> list[LakePath]:
        folder = self.table_dir(table)
        return sorted(folder.glob("*.parquet"), key=str) if folder.is_dir() else []

    def has_table(self, table: str) -> bool:
        return bool(self.table_files(table))

    def table_glob(self, table: str) -> str:
        return str(self.table_dir(table) / "*.parquet")

    def relative_glob(self, table: str) -> str:
        """The table's files relative to the lake root, e.g. ``raw/raw_pairs/*.parquet``: what the
        views of a local lake's database hold, so the lake works wherever it is moved or copied."""
        return f"{relative_to_root(self, self.table_dir(table))}/*.parquet"

    def relative(self, path: str | os.PathLike) -> str | None:
        """`path` relative to the lake root (posix, e.g. ``landing/demo/chat.jsonl``) when it is an
        absolute path under the root (as written, or with symlinks resolved), else None."""
        text = str(path)
        if self.remote:
            prefix = str(self.root).rstrip("/") + "/"
            return text[len(prefix):] if text.startswith(prefix) else None
        if is_url(text) or not os.path.isabs(text):
            return None  # a relative path is the working directory's, not the lake's
        for candidate in (Path(os.path.normpath(text)), Path(text).resolve()):
            if candidate != self.root and candidate.is_relative_to(self.root):
                return candidate.relative_to(self.root).as_posix()
        return None

    def portable(self, path: str | os.PathLike) -> str:
        """A path as the lake records it (in a model's spec, a manifest): ``<lake>/`` + its
        relative path when it lies under the root, else unchanged; `located` reads it back."""
        rel = self.relative(path)
        return str(path) if rel is None else LAKE_PREFIX + rel

    def located(self, recorded: str | os.PathLike) -> str:
        """The path a value recorded by `portable` names in this lake, wherever it is now."""
        text = str(recorded)
        return str(self.root / text[len(LAKE_PREFIX):]) if text.startswith(LAKE_PREFIX) else text

    def manifest_path(self, name: str) -> LakePath:
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

    def local_copy(self, path: LakePath) -> Path:
        """A local path with `path`'s content (a file or a folder): itself on a local lake,
        else a copy in the lake's home, downloaded again only when the store's listing of it
        (names, sizes, ETags) changed. Processes of one machine share it: one downloads."""
        if not is_remote(path):
            return path
        from filelock import FileLock

        local = self.home / "mirror" / relative_to_root(self, path)
        marker = local.parent / f".{local.name}.listing"
        listing = listing_stamp(path)
        if marker.exists() and marker.read_text() == listing:
            return local
        local.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(local.parent / f".{local.name}.lock")):
            if marker.exists() and marker.read_text() == listing:  # another process fetched it
                return local
            marker.unlink(missing_ok=True)
            staging = local.parent / f".{local.name}.tmp-{scratch.tag()}"
            try:
                if path.is_dir():
                    path.fs.get(path.path.rstrip("/") + "/", str(staging) + "/", recursive=True)
                else:
                    path.fs.get_file(path.path, str(staging))
                shutil.rmtree(local, ignore_errors=True)
                os.replace(staging, local)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            marker.write_text(listing)
        return local


# What a lake keeps on the local disk of the machine that made it, never in a store.
HOME_ONLY = {"synpref.duckdb", "_tmp", "quality", "annotation", "dagster_home", "_dagster", "landing", "export",
             "sources.yaml", "mirror", "training"}
MODEL_SCRATCH = {"checkpoints", "hf", "tiny-llm"}  # resume points; best/'s link target; the demo LLM


def copy_lake(source: Lake, target: Lake, progress=lambda done, total: None) -> int:
    """Upload a local lake's tables, manifests, models and vectors to a lake on a store (what
    each machine keeps in its home stays); returns the files uploaded. A model's best/ (a link
    locally) goes up as a folder, and every metrics.json (which marks a model complete) last."""
    if source.remote or not target.remote:
        raise ValueError("copy_lake copies a local lake to one on an object store")
    files = []
    for folder, dirs, names in os.walk(source.root, followlinks=True):
        rel = Path(folder).relative_to(source.root)
        home_only = bool(rel.parts) and rel.parts[0] in HOME_ONLY
        if home_only or (rel.parts[:1] == ("models",) and MODEL_SCRATCH & set(rel.parts)):
            dirs.clear()
            continue
        files += [rel / name for name in names if rel.parts or name not in HOME_ONLY]
    fs = target.root.fs
    for i, rel in enumerate(sorted(files, key=lambda f: (f.name == "metrics.json", str(f))), 1):
        fs.put_file(str(source.root / rel), f"{target.root.path}/{rel.as_posix()}")
        progress(i, len(files))
    return len(files)


def relative_to_root(lake: Lake, path: LakePath) -> str:
    root, text = str(lake.root).rstrip("/"), str(path)
    if not text.startswith(root + "/"):
        raise ValueError(f"{text} is not under the lake root {root}")
    return text[len(root) + 1:]


def listing_stamp(path: LakePath) -> str:
    """A digest of what is at a store path: every file's name, size and ETag."""
    found = path.fs.find(path.path, detail=True)
    lines = sorted(f"{k}|{v.get('size')}|{v.get('ETag') or v.get('LastModified')}" for k, v in found.items())
    return hashlib.md5("\n".join(lines).encode()).hexdigest()


def file_stamp(path: LakePath) -> str:
    """What changes when the file is rewritten: size and modification time (ETag on a store)."""
    if not is_remote(path):
        st = path.stat()
        return f"{path.name}|{st.st_size}|{st.st_mtime_ns}"
    info = path.fs.info(path.path)
    return f"{path.name}|{info.get('size')}|{info.get('ETag') or info.get('LastModified') or info.get('mtime')}"


def read_parquet(path: LakePath, columns: list[str] | None = None):
    """One Parquet file (or a table folder) as an Arrow table, local or on a store."""
    import pyarrow.parquet as pq

    if is_remote(path):
        return pq.read_table(path.path, columns=columns, filesystem=path.fs)
    return pq.read_table(path, columns=columns)


def parquet_rows(path: LakePath) -> int:
    """A Parquet file's row count from its footer."""
    import pyarrow.parquet as pq

    if is_remote(path):
        return pq.read_metadata(path.path, filesystem=path.fs).num_rows
    return pq.read_metadata(path).num_rows


def remove(path: LakePath, recursive: bool = False) -> None:
    """Delete a file (or, recursive, a folder); nothing there is fine."""
    if is_remote(path):
        if path.exists():
            path.fs.rm(path.path, recursive=recursive)
    elif recursive:
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def publish(local: Path, final: LakePath, last: str | None = None) -> None:
    """Put a finished local file (or folder) at `final`: a rename on a local lake, an upload
    on a store. A folder goes up file by file, those named `last` at the end, so a reader
    that takes that file as the mark of a whole folder never sees half of one."""
    if not is_remote(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(local, final)
    elif local.is_dir():
        files = [f for f in local.rglob("*") if f.is_file()]
        for f in sorted(files, key=lambda f: (f.name == last, str(f))):
            final.fs.put_file(str(f), f"{final.path}/{f.relative_to(local).as_posix()}")
    else:
        final.fs.put_file(str(local), final.path)


@contextlib.contextmanager
def atomic_path(final: LakePath) -> Iterator[Path]:
    """Yield a local temporary path; move it into place as `final` only on success.

    Locally the temporary file sits beside `final` under a hidden name that does not end in
    ``.parquet``, so table globs never pick up a file still being written; on a store it is
    written in a local scratch folder and uploaded in one piece."""
    if is_remote(final):
        staging = cache_base() / "scratch" / f"part-{scratch.tag()}"
        staging.mkdir(parents=True)
        try:
            tmp = staging / f".{final.name}.tmp"
            yield tmp
            publish(tmp, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{scratch.tag()}"
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


_swept: set[str] = set()


def sweep_scratch(lake: Lake, once: bool = False) -> list[Path]:
    """Remove what killed runs left on this machine: hidden part files, staging folders,
    DuckDB spill folders (synpref/lake/scratch.py). once: at most once per process and lake."""
    if once and str(lake.root) in _swept:
        return []
    _swept.add(str(lake.root))
    return scratch.sweep(lake.home, *([cache_base() / "scratch"] if lake.remote else []))


def fsync_dir(folder: LakePath) -> None:
    """Make a rename or a new file in `folder` durable (its directory entry on disk); a
    store's upload is durable once it returns."""
    if is_remote(folder):
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_part(lake: Lake, table: str, rows, durable: bool = False) -> LakePath:
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

