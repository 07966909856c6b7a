"""Trained reward models under the lake root: named, versioned folders.

    <lake>/models/rm/<name>/v001/       one training run (a version)
        spec.json                       what decides the model: data digests, eval set, config
        data/train.parquet, eval.parquet  the pairs it was trained and selected on
        checkpoints/                    DeepSpeed checkpoints (the resume points)
        best/                           the checkpoint with the best eval accuracy (a transformers folder)
        train_log.jsonl, metrics.json   the run's log and summary (status "complete" at the end)

A name is a role ("baseline", "round-1", "gold", "current-best"); training it again on the
same data and settings resumes or reuses its version, on anything else makes the next one.
Tables that hold model outputs carry (model, model_version).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from synpref.lake import Lake

NAME_PATTERN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._]|-(?!-))*")  # no "--": it separates file-name fields
VERSION_PATTERN = re.compile(r"v\d{3,}")


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name or ""):
        raise ValueError(f"bad reward-model name {name!r}: letters, digits, '.', '_' and single '-' only")
    return name


def models_root(lake: Lake) -> Path:
    return lake.root / "models" / "rm"


def model_home(lake: Lake, name: str) -> Path:
    return models_root(lake) / check_name(name)


def versions(lake: Lake, name: str) -> list[Path]:
    home = model_home(lake, name)
    found = [p for p in home.iterdir() if p.is_dir() and VERSION_PATTERN.fullmatch(p.name)] if home.is_dir() else []
    return sorted(found, key=lambda p: int(p.name[1:]))


def next_version(lake: Lake, name: str) -> str:
    existing = versions(lake, name)
    return f"v{int(existing[-1].name[1:]) + 1 if existing else 1:03d}"


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def is_complete(version_dir: Path) -> bool:
    metrics = read_json(version_dir / "metrics.json")
    return bool(metrics and metrics.get("status") == "complete" and (version_dir / "best").exists())


@dataclass(frozen=True)
class ModelRef:
    """A model whose outputs the lake records: its name, version and transformers folder."""

    name: str
    version: str
    path: Path  # the folder AutoModelForSequenceClassification.from_pretrained loads
    version_dir: Path | None = None  # None for a model folder from outside the lake

    @property
    def spec(self) -> dict:
        return (read_json(self.version_dir / "spec.json") or {}) if self.version_dir else {}

    @property
    def metrics(self) -> dict:
        return (read_json(self.version_dir / "metrics.json") or {}) if self.version_dir else {}


def resolve(lake: Lake, name: str, version: str | None = None) -> ModelRef:
    """The named model's given version, else its latest complete one."""
    candidates = [v for v in versions(lake, name) if version in (None, v.name)]
    complete = [v for v in candidates if is_complete(v)]
    if not complete:
        detail = f"version {version} " if version else ""
        raise LookupError(f"no complete reward model {name!r} {detail}under {models_root(lake)}: train it first "
                          f"(`synpref train --name {name}` or the reward_model asset)")
    chosen = complete[-1]
    # weights load from a local folder: a store's complete version is downloaded once
    return ModelRef(name, chosen.name, lake.local_copy(chosen / "best"), chosen)


def external(path: str | Path, name: str | None = None) -> ModelRef:
    """A model folder from outside the lake (transformers, or an embedding RM); its version is a
    digest of its config and weights' sizes."""
    path = Path(path).resolve()
    marker = next((path / f for f in ("config.json", "embedding_rm.json") if (path / f).exists()), None)
    if marker is None:
        raise FileNotFoundError(f"{path} is not a reward model folder (no config.json, no embedding_rm.json)")
    digest = hashlib.md5()
    for f in sorted(path.iterdir()):
        if f.is_file():
            digest.update(f"{f.name}:{f.stat().st_size}".encode())
    digest.update(marker.read_bytes())
    return ModelRef(check_name(name or re.sub(r"[^A-Za-z0-9._-]+|-{2,}", "-", path.name).strip("-.") or "model"),
                    f"ext-{digest.hexdigest()[:10]}", path)


def list_models(lake: Lake) -> list[tuple[str, str, bool]]:
    """(name, version, complete) of every trained model."""
    root = models_root(lake)
    names = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return [(n, v.name, is_complete(v)) for n in names for v in versions(lake, n)]


def mirror_embedding_cache(lake: Lake) -> None:
    """On an object-store lake, the store's embedding cache (models/embedding_cache) copied beside
    the mirrored models, where the embedding RM's scorer looks for it (models/embedding_rm.py
    lake_cache_dir): once per machine, and again when the store's copy changed. Vectors a machine
    adds stay in its own copy."""
    if lake.remote:
        cache = lake.root / "models" / "embedding_cache"
        if cache.exists():
            lake.local_copy(cache)
