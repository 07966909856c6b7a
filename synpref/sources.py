"""The sources file: which preference data to ingest, and how to read and map it.

Example (paths are relative to the YAML file)::

    sources:
      - name: hh_harmless
        path: data/harmless-base-test.jsonl.gz
        shape: hh_transcript
      - name: llmbar
        path: data/llmbar/*.json
        shape: labelled_outputs
        columns: {prompt: input}
      - name: nested
        path: data/nested.jsonl
        shape: prompt_chosen_rejected
        columns: {prompt: question.text, chosen: chosen.answer, rejected: rejected.answer}
    decontamination:
      benchmark_prompts: [benchmarks/first_turn_prompts.jsonl]
      field: prompt   # the prompt field of JSON/JSONL records; .txt files give one per line

Decontamination drops pairs whose conversation shares a word 13-gram (the paper's n)
with any benchmark prompt; see sql/silver_decisions.sql.
"""

from __future__ import annotations

import glob
import os
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

FORMATS = ("jsonl", "jsonl.gz", "json", "parquet", "hf_dataset")

# shape -> (required canonical fields, optional canonical fields)
SHAPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "prompt_chosen_rejected": (("prompt", "chosen", "rejected"), ("system",)),
    "conversational": (("chosen", "rejected"), ("prompt",)),
    "hh_transcript": (("chosen", "rejected"), ()),
    "labelled_outputs": (("prompt", "output_1", "output_2", "label"), ()),
}

DEFAULT_MAX_FIELD_CHARS = 1_000_000


class SourcesError(ValueError):
    """The sources file itself is wrong (unknown shape, missing path, ...)."""


@dataclass(frozen=True)
class Source:
    name: str
    path: str
    shape: str
    format: str | None = None  # inferred from the file name when absent
    columns: dict[str, str] = field(default_factory=dict)
    split: str | None = None  # for a saved DatasetDict
    max_field_chars: int = DEFAULT_MAX_FIELD_CHARS
    base_dir: Path = Path(".")

    def column(self, canonical: str) -> str:
        """Dotted path of a canonical field in the source records."""
        return self.columns.get(canonical, canonical)

    def files(self) -> list[Path]:
        """The files (or dataset folders) this source names, sorted; error if none."""
        pattern = self.path if Path(self.path).is_absolute() else str(self.base_dir / self.path)
        matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
        if not matches:
            raise SourcesError(f"source {self.name!r}: no file matches {pattern}")
        return matches

    def format_of(self, path: Path) -> str:
        if self.format:
            return self.format
        name = path.name.lower()
        if path.is_dir():
            return "hf_dataset"
        for fmt, suffixes in (("jsonl.gz", (".jsonl.gz", ".json.gz")), ("jsonl", (".jsonl", ".ndjson")),
                              ("json", (".json",)), ("parquet", (".parquet",))):
            if name.endswith(suffixes):
                return fmt
        raise SourcesError(f"source {self.name!r}: cannot tell the format of {path}; set `format:`")

    def mapping_key(self) -> str:
        """Everything about this source that changes how a file maps to rows."""
        spec = {"name": self.name, "shape": self.shape, "format": self.format, "columns": self.columns,
                "split": self.split, "max_field_chars": self.max_field_chars}
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


def load_sources(path: str | Path) -> SourcesConfig:
    path = Path(path).resolve()
    if not path.exists():
        raise SourcesError(f"sources file not found: {path}")
    with path.open() as f:
        doc = yaml.safe_load(f) or {}
    base = path.parent
    entries = doc.get("sources") or []
    if not entries:
        raise SourcesError(f"{path}: no `sources:` listed")
    sources = []
    seen = set()
    for i, entry in enumerate(entries):
        missing = [k for k in ("name", "path", "shape") if k not in entry]
        if missing:
            raise SourcesError(f"{path}: source #{i + 1} lacks {', '.join(missing)}")
        shape = entry["shape"]
        if shape not in SHAPES:
            raise SourcesError(f"{path}: source {entry['name']!r} has unknown shape {shape!r}; "
                               f"known: {', '.join(SHAPES)}")
        fmt = entry.get("format")
        if fmt is not None and fmt not in FORMATS:
            raise SourcesError(f"{path}: source {entry['name']!r} has unknown format {fmt!r}; "
                               f"known: {', '.join(FORMATS)}")
        columns = {str(k): str(v) for k, v in (entry.get("columns") or {}).items()}
        required, optional = SHAPES[shape]
        unknown = set(columns) - set(required) - set(optional)
        if unknown:
            raise SourcesError(f"{path}: source {entry['name']!r} maps unknown fields {sorted(unknown)} "
                               f"for shape {shape}; allowed: {', '.join(required + optional)}")
        if entry["name"] in seen:
            raise SourcesError(f"{path}: source name {entry['name']!r} is used twice")
        seen.add(entry["name"])
        sources.append(Source(
            name=entry["name"], path=str(entry["path"]), shape=shape, format=fmt, columns=columns,
            split=entry.get("split"),
            max_field_chars=int(entry.get("max_field_chars", DEFAULT_MAX_FIELD_CHARS)),
            base_dir=base,
        ))
    deco = doc.get("decontamination") or {}
    prompt_files = deco.get("benchmark_prompts") or []
    if isinstance(prompt_files, str):
        prompt_files = [prompt_files]
    resolved = []
    for p in prompt_files:
        matches = sorted(glob.glob(str(base / p) if not Path(p).is_absolute() else p))
        if not matches:
            raise SourcesError(f"{path}: benchmark prompt file not found: {p}")
        resolved.extend(Path(m) for m in matches)
    decontamination = Decontamination(
        benchmark_prompts=tuple(resolved), field=deco.get("field", "prompt"))
    return SourcesConfig(sources=tuple(sources), decontamination=decontamination, path=path)


def relocate(sources_file: str | Path, dest: str | Path) -> Path:
    """Write a copy of a sources YAML at ``dest`` whose relative paths still name the same files."""
    sources_file, dest = Path(sources_file).resolve(), Path(dest).resolve()
    with sources_file.open() as f:
        doc = yaml.safe_load(f)

    def moved(p: str) -> str:
        if Path(p).is_absolute():
            return p
        return os.path.relpath(sources_file.parent / p, dest.parent)

    for entry in doc.get("sources") or []:
        entry["path"] = moved(str(entry["path"]))
    deco = doc.get("decontamination") or {}
    prompts = deco.get("benchmark_prompts")
    if prompts:
        deco["benchmark_prompts"] = [moved(p) for p in ([prompts] if isinstance(prompts, str) else prompts)]
    dest.write_text(f"# Copied from {sources_file}; paths are relative to this file.\n"
                    + yaml.safe_dump(doc, sort_keys=False))
    return dest
