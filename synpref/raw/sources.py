"""The sources file: which preference data to ingest, and how to read and map it.

Example (paths are relative to the YAML file)::

    sources:
      - name: hh_harmless
        path: data/harmless-base-test.jsonl.gz
        preset: hh_transcript          # `shape:` is the same key under its older name
      - name: llmbar
        path: data/llmbar/*.json
        preset: labelled_outputs
        columns: {prompt: input}
      - name: arena
        path: data/arena.parquet
        preset: chatbot_arena
      - name: mine
        path: data/mine.jsonl
        sql: |                         # a DuckDB SELECT over `source` (one row per record)
          select source_row, prompt as conversation, chosen.content as chosen,
                 rejected.content as rejected
          from source
    decontamination:
      benchmark_prompts: [benchmarks/first_turn_prompts.jsonl]
      field: prompt   # the prompt field of JSON/JSONL records; .txt files give one per line

Decontamination drops pairs whose conversation shares a word 13-gram (the paper's n)
with any benchmark prompt; see sql/silver_decisions.sql.

A sources file is trusted like a script: it may name any file the user running the pipeline
can read (symlinks and ``..`` are followed), and every row records the file it came from.
To run sources files you did not write, set ``SYNPREF_SOURCE_ROOTS`` (folders separated by
``:``): every file must then resolve, symlinks followed, to a path inside one of them.
Devices, FIFOs and sockets are never read.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from synpref.raw.presets import json_path, load_preset, macros_fingerprint, preset_names

FORMATS = ("jsonl", "jsonl.gz", "json", "parquet", "csv", "hf_dataset")

DEFAULT_MAX_FIELD_CHARS = 1_000_000
# A source's name is a file-name field of its parts: no separators, no "--" (it delimits fields).
NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.]|-(?!-)){0,63}")
ENTRY_KEYS = {"name", "path", "shape", "preset", "sql", "params", "format", "columns", "split", "max_field_chars"}
MAX_SQL_CHARS = 100_000
MAX_FILE_BYTES = 1 << 20  # a sources file lists sources; anything bigger is a mistake or an attack
MAX_NODES = 20_000  # after YAML aliases are expanded: bounds an alias bomb ("billion laughs")
ROOTS_ENV = "SYNPREF_SOURCE_ROOTS"


class SourcesError(ValueError):
    """The sources file itself is wrong (unknown shape, missing path, ...)."""


@dataclass(frozen=True)
class Source:
    name: str
    path: str
    preset: str | None = None  # a file under sql/sources/; or `sql`
    sql: str | None = None  # the user's own SELECT over `source`
    format: str | None = None  # inferred from the file name when absent
    columns: dict[str, str] = field(default_factory=dict)  # preset field -> dotted path in the records
    params: dict[str, object] = field(default_factory=dict)
    split: str | None = None  # for a saved DatasetDict
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS
    base_dir: Path = Path(".")

    @property
    def shape(self) -> str:
        """How the source maps: its preset's name, or "sql"."""
        return self.preset or "sql"

    def select(self) -> str:
        return self.sql if self.sql is not None else load_preset(self.preset).sql

    def variables(self) -> dict[str, object]:
        """The variables its SELECT reads: the preset's defaults, `columns:` paths, `params:`."""
        out: dict[str, object] = {"max_field_chars": self.max_field_chars}
        if self.preset is not None:
            out.update(load_preset(self.preset).params)
        out.update({f"path_{k}": json_path(v) for k, v in self.columns.items()})
        out.update(self.params)
        return out

    def files(self) -> list[Path]:
        """The files (or dataset folders) this source names, sorted; error if none, or if one
        is not a regular file or folder, or lies outside SYNPREF_SOURCE_ROOTS when that is set."""
        pattern = self.path if Path(self.path).is_absolute() else str(self.base_dir / self.path)
        matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
        if not matches:
            raise SourcesError(f"source {self.name!r}: no file matches {pattern}")
        for path in matches:
            check_readable(path, f"source {self.name!r}")
        return matches

    def format_of(self, path: Path) -> str:
        if self.format:
            return self.format
        name = path.name.lower()
        if path.is_dir():
            return "hf_dataset"
        for fmt, suffixes in (("jsonl.gz", (".jsonl.gz", ".json.gz")), ("jsonl", (".jsonl", ".ndjson")),
                              ("json", (".json",)), ("parquet", (".parquet",)), ("csv", (".csv", ".csv.gz"))):
            if name.endswith(suffixes):
                return fmt
        raise SourcesError(f"source {self.name!r}: cannot tell the format of {path}; set `format:`")

    def mapping_key(self) -> str:
        """Everything about this source that changes how a file maps to rows."""
        spec = {"name": self.name, "sql": self.select(), "macros": macros_fingerprint(), "format": self.format,
                "variables": self.variables(), "split": self.split}
        return json.dumps(spec, sort_keys=True)


@dataclass(frozen=True)
class Decontamination:
    benchmark_prompts: tuple[Path, ...] = ()
    field: str = "prompt"

    def prompts(self) -> list[str]:
        """First-turn prompts of the benchmarks: JSONL/JSON records (``field``) or text lines."""
        prompts: list[str] = []
        for path in self.benchmark_prompts:
            with path.open(encoding="utf-8-sig") as f:
                if path.suffix == ".txt":
                    prompts.extend(line.strip() for line in f if line.strip())
                elif path.suffix == ".json":
                    prompts.extend(_dig(rec, self.field) for rec in json.load(f))
                else:
                    prompts.extend(_dig(json.loads(line), self.field) for line in f if line.strip())
        return [p for p in prompts if isinstance(p, str) and p.strip()]

    def fingerprint(self) -> str:
        h = hashlib.md5(self.field.encode())
        for path in self.benchmark_prompts:
            h.update(path.read_bytes())
        return h.hexdigest()


@dataclass(frozen=True)
class SourcesConfig:
    sources: tuple[Source, ...]
    decontamination: Decontamination
    path: Path


def _dig(record, dotted: str):
    for part in dotted.split("."):
        record = record[part]
    return record


def allowed_roots() -> list[Path] | None:
    """The folders sources must resolve into (SYNPREF_SOURCE_ROOTS), or None: no confinement."""
    value = os.environ.get(ROOTS_ENV, "").strip()
    if not value:
        return None
    return [Path(p).expanduser().resolve() for p in value.split(os.pathsep) if p.strip()]


def check_readable(path: Path, what: str) -> None:
    """A regular file or folder, inside SYNPREF_SOURCE_ROOTS when that is set."""
    try:
        mode = path.stat().st_mode
    except OSError as e:  # a dangling symlink, no permission
        raise SourcesError(f"{what}: cannot read {path}: {e.strerror}") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise SourcesError(f"{what}: {path} is not a regular file or folder")
    roots = allowed_roots()
    real = path.resolve()
    if roots is not None and not any(real.is_relative_to(r) for r in roots):
        raise SourcesError(f"{what}: {path} resolves to {real}, outside the allowed roots "
                           f"{ROOTS_ENV}={os.pathsep.join(map(str, roots))}")


def _count_nodes(doc, limit: int) -> int:
    """Nodes of the loaded document, aliases counted at every use; stops past `limit`."""
    count, stack = 0, [doc]
    while stack and count <= limit:
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def _string(value, what: str, where: str, max_len: int = 4_096) -> str:
    if not isinstance(value, str) or not value:
        raise SourcesError(f"{where}: {what} must be a non-empty string, not {type(value).__name__}")
    if len(value) > max_len:
        raise SourcesError(f"{where}: {what} is {len(value):,} chars long (at most {max_len:,})")
    return value


def _read_doc(path: Path) -> dict:
    if not path.exists():
        raise SourcesError(f"sources file not found: {path}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise SourcesError(f"{path} is {path.stat().st_size:,} bytes; a sources file is at most {MAX_FILE_BYTES:,}")
    try:
        with path.open(encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise SourcesError(f"{path} is not valid YAML: {e}") from None
    if _count_nodes(doc, MAX_NODES) > MAX_NODES:
        raise SourcesError(f"{path} expands to over {MAX_NODES:,} values (YAML aliases?); refused")
    if not isinstance(doc, dict):
        raise SourcesError(f"{path}: expected a mapping with `sources:`, found a {type(doc).__name__}")
    return doc


def load_sources(path: str | Path) -> SourcesConfig:
    path = Path(path).resolve()
    doc = _read_doc(path)
    base = path.parent
    entries = doc.get("sources") or []
    if not entries:
        raise SourcesError(f"{path}: no `sources:` listed")
    if not isinstance(entries, list):
        raise SourcesError(f"{path}: `sources:` must be a list, not a {type(entries).__name__}")
    sources = []
    seen = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SourcesError(f"{path}: source #{i + 1} must be a mapping, not a {type(entry).__name__}")
        missing = [k for k in ("name", "path") if k not in entry]
        if missing:
            raise SourcesError(f"{path}: source #{i + 1} lacks {', '.join(missing)}")
        unknown_keys = sorted(str(k) for k in set(entry) - ENTRY_KEYS)
        if unknown_keys:
            raise SourcesError(f"{path}: source #{i + 1} has unknown keys {unknown_keys}; known: {sorted(ENTRY_KEYS)}")
        where = f"{path}: source #{i + 1}"
        name = _string(entry["name"], "`name`", where, 64)
        if not NAME.fullmatch(name):
            raise SourcesError(f"{where}: name {name!r} must be letters, digits, '_', '.', single '-' "
                               f"(it names files in the lake), starting with a letter or digit")
        _string(entry["path"], "`path`", where)
        preset, sql = _mapping(entry, f"{path}: source {name!r}", base)
        fmt = entry.get("format")
        if fmt is not None and (not isinstance(fmt, str) or fmt not in FORMATS):
            raise SourcesError(f"{path}: source {entry['name']!r} has unknown format {fmt!r}; "
                               f"known: {', '.join(FORMATS)}")
        raw_columns = entry.get("columns") or {}
        if not isinstance(raw_columns, dict):
            raise SourcesError(f"{where}: `columns` must map fields to paths, not a {type(raw_columns).__name__}")
        columns = {_string(k, "a `columns` key", where, 64): _string(v, f"`columns.{k}`", where, 256)
                   for k, v in raw_columns.items()}
        if columns and preset is None:
            raise SourcesError(f"{path}: source {name!r}: `columns` renames a preset's fields; with `sql:` "
                               f"name the fields in the SELECT itself")
        allowed = load_preset(preset).fields() if preset else []
        unknown = set(columns) - set(allowed)
        if unknown:
            raise SourcesError(f"{path}: source {entry['name']!r} maps unknown fields {sorted(unknown)} "
                               f"for preset {preset}; allowed: {', '.join(allowed)}")
        params = _params(entry.get("params"), preset, f"{path}: source {name!r}")
        if entry["name"] in seen:
            raise SourcesError(f"{path}: source name {entry['name']!r} is used twice")
        seen.add(entry["name"])
        split = entry.get("split")
        if split is not None:
            _string(split, "`split`", where, 256)
        max_chars = entry.get("max_field_chars", DEFAULT_MAX_FIELD_CHARS)
        if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
            raise SourcesError(f"{where}: `max_field_chars` must be a positive integer, not {max_chars!r}"[:300])
        sources.append(Source(name=name, path=entry["path"], preset=preset, sql=sql, format=fmt, columns=columns,
                              params=params, split=split, max_field_chars=max_chars, base_dir=base))
    deco = doc.get("decontamination") or {}
    if not isinstance(deco, dict):
        raise SourcesError(f"{path}: `decontamination` must be a mapping, not a {type(deco).__name__}")
    prompt_files = deco.get("benchmark_prompts") or []
    if isinstance(prompt_files, str):
        prompt_files = [prompt_files]
    if not isinstance(prompt_files, list):
        raise SourcesError(f"{path}: `benchmark_prompts` must be a path or a list of paths")
    resolved = []
    for p in prompt_files:
        _string(p, "a `benchmark_prompts` entry", f"{path}: decontamination")
        matches = sorted(glob.glob(str(base / p) if not Path(p).is_absolute() else p))
        if not matches:
            raise SourcesError(f"{path}: benchmark prompt file not found: {p}")
        for m in matches:
            check_readable(Path(m), f"{path}: benchmark prompts")
        resolved.extend(Path(m) for m in matches)
    decontamination = Decontamination(
        benchmark_prompts=tuple(resolved),
        field=_string(deco.get("field", "prompt"), "`field`", f"{path}: decontamination", 256))
    return SourcesConfig(sources=tuple(sources), decontamination=decontamination, path=path)


def _mapping(entry: dict, where: str, base: Path) -> tuple[str | None, str | None]:
    """(preset, sql): exactly one of `preset:` (or its older name `shape:`) and `sql:`."""
    given = [k for k in ("preset", "shape", "sql") if k in entry]
    if len(given) != 1:
        raise SourcesError(f"{where}: give one of `preset:` (or `shape:`) and `sql:`, "
                           + (f"not {' and '.join(given)}" if given else "neither is given"))
    key = given[0]
    if key == "sql":
        text = _string(entry["sql"], "`sql`", where, MAX_SQL_CHARS)
        if text.strip().endswith(".sql") and "\n" not in text.strip():  # a file of SQL beside the sources file
            file = Path(text.strip()) if Path(text.strip()).is_absolute() else base / text.strip()
            check_readable(file, where)
            text = file.read_text(encoding="utf-8")
        return None, text
    preset = _string(entry[key], f"`{key}`", where, 64)
    if preset not in preset_names():
        raise SourcesError(f"{where} has unknown {key} {preset!r}; known: {', '.join(preset_names())}")
    return preset, None


def _params(raw, preset: str | None, where: str) -> dict[str, object]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SourcesError(f"{where}: `params` must map names to values, not a {type(raw).__name__}")
    allowed = [p for p in load_preset(preset).params if not p.startswith("path_")] if preset else None
    out = {}
    for k, v in raw.items():
        if not isinstance(k, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", k):
            raise SourcesError(f"{where}: param name {k!r} must be a plain identifier")
        if allowed is not None and k not in allowed:
            raise SourcesError(f"{where}: preset {preset} has no param {k!r}; its params: "
                               f"{', '.join(allowed) or 'none'}")
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise SourcesError(f"{where}: param {k} must be a string or a number, not {type(v).__name__}")
        out[k] = v
    return out


def relocate(sources_file: str | Path, dest: str | Path) -> Path:
    """Write a copy of a sources YAML at ``dest`` whose relative paths still name the same files
    (relative for files beside or below ``dest``, e.g. the demo's sources.yaml in the lake naming
    landing/demo/..., so a lake moves with its data; absolute for files elsewhere)."""
    sources_file, dest = Path(sources_file).resolve(), Path(dest).resolve()
    with sources_file.open() as f:
        doc = yaml.safe_load(f)

    def moved(p: str) -> str:
        if Path(p).is_absolute():
            return p
        target = os.path.normpath(sources_file.parent / p)
        # relative only where the copy and the files move together (beside or below it)
        return os.path.relpath(target, dest.parent) if Path(target).is_relative_to(dest.parent) else target

    for entry in doc.get("sources") or []:
        entry["path"] = moved(str(entry["path"]))
        sql = entry.get("sql")
        if isinstance(sql, str) and sql.strip().endswith(".sql") and "\n" not in sql.strip():  # a file of SQL
            entry["sql"] = moved(sql.strip())
    deco = doc.get("decontamination") or {}
    prompts = deco.get("benchmark_prompts")
    if prompts:
        deco["benchmark_prompts"] = [moved(p) for p in ([prompts] if isinstance(prompts, str) else prompts)]
    origin = os.path.relpath(sources_file, dest.parent) if sources_file.is_relative_to(dest.parent) else sources_file
    dest.write_text(f"# Copied from {origin}; paths are relative to this file.\n"
                    + yaml.safe_dump(doc, sort_keys=False))
    return dest
