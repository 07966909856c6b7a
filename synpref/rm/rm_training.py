"""Train a reward model on pairs from the lake: the plain function behind the reward_model asset.

Training pairs come from a read-only SELECT over the lake's tables (or a Parquet file) with
columns pair_id, conversation, chosen, rejected (+ optional source). The evaluation set that
picks the best checkpoint is `gold_pairs` when the lake has it (those pairs are then kept out
of training), else a seeded held-out fraction of the training pairs; `spec.json` records which.

Both sets are frozen into the version folder as Parquet, then models/train_rm.py is launched
as a subprocess (one process, the DeepSpeed launcher or torchrun). Same data and settings as
an existing version: a complete one is reused, an unfinished one resumed from its latest
checkpoint; anything else trains the next version.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb

from models.launch import LaunchConfig, run_streamed, training_command, training_env
from models.train_config import MINILM, TrainConfig
from synpref.lake import scratch
from synpref.rm import rm_models
from synpref.lake.duck import check_read_only, lit, stage_connection
from synpref.lake import LAKE_PREFIX, Lake, LakePath, is_url, publish, relative_to_root

PAIR_COLUMNS = ("pair_id", "conversation", "chosen", "rejected")
EVAL_SETS = ("auto", "gold", "holdout")
GOLD = "gold_pairs"
EMBEDDING = "embedding"  # the backbone of models/embedding_rm.py
EMBEDDING_HEAD = ("head", "head_l2")  # TrainConfig fields that only the embedding backbone reads

# run(command, env): starts the training subprocess and returns when it has finished
Runner = Callable[[list[str], dict[str, str]], None]


@dataclass
class TrainingSummary:
    name: str
    version: str
    version_dir: LakePath
    status: str  # trained | resumed | unchanged
    eval_set: str  # gold | holdout
    train_pairs: int
    eval_pairs: int
    skipped_pairs: dict[str, int] = field(default_factory=dict)  # reason -> pairs not trained on
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def best(self) -> LakePath:
        return self.version_dir / "best"


def _source_sql(pairs: str | Path) -> str:
    """The training pairs as a SELECT: a Parquet file's rows, or a read-only query over the lake."""
    text = str(pairs).strip()
    if is_url(text) and text.lower().endswith(".parquet"):  # a file on the lake's store
        return f"select * from read_parquet({lit(text)})"
    if isinstance(pairs, Path) or text.lower().endswith(".parquet") or (
            "\n" not in text and len(text) < 1024 and Path(text).is_file()):
        if not Path(text).is_file():
            raise FileNotFoundError(f"no training pairs file {text} (give a Parquet file or a SELECT)")
        return f"select * from read_parquet({lit(text)})"
    check_read_only(text, what="a training set's query")
    if len(duckdb.extract_statements(text)) != 1:
        raise ValueError("give the training pairs as one SELECT statement")
    return text.rstrip(";")


def _digest(con: duckdb.DuckDBPyConnection, view: str) -> dict:
    """Rows and an order-free digest of the pairs and their orientation (which text is chosen)."""
    rows, digest = con.execute(
        f"select count(*), coalesce(sum(('0x' || left(md5(pair_id || md5(chosen)), 12))::ubigint), 0)::varchar "
        f"from {view}").fetchone()
    return {"rows": int(rows), "digest": digest}


def prepare_sets(con: duckdb.DuckDBPyConnection, lake: Lake, pairs: str | Path, eval_set: str,
                 holdout_fraction: float, seed: int) -> tuple[str, dict[str, int]]:
    """Temp views `train_set` and `eval_set` on con (a stage connection over the lake's tables);
    returns (eval set kind, skipped pairs by reason)."""
    if eval_set not in EVAL_SETS:
        raise ValueError(f"eval_set must be one of {EVAL_SETS}, not {eval_set!r}")
    try:
        con.execute(f"create temp view candidates as {_source_sql(pairs)}")
        columns = {c[0] for c in con.execute("describe candidates").fetchall()}
    except duckdb.Error as e:
        raise ValueError(f"cannot read the training pairs: {e}") from e
    missing = [c for c in PAIR_COLUMNS if c not in columns]
    if missing:
        raise ValueError(f"the training pairs lack columns {missing} (need {list(PAIR_COLUMNS)}, optional source)")
    source = "source" if "source" in columns else "null::varchar as source"
    con.execute(f"""create temp view usable as
        select pair_id, conversation, chosen, rejected, {source} from candidates
        where pair_id is not null and conversation is not null and trim(coalesce(chosen, '')) <> ''
          and trim(coalesce(rejected, '')) <> ''""")
    skipped = {}
    (invalid,) = con.execute("select (select count(*) from candidates) - (select count(*) from usable)").fetchone()
    if invalid:
        skipped["missing_or_empty_field"] = int(invalid)
    gold_rows = con.execute(f"select count(*) from {GOLD}").fetchone()[0] if lake.has_table(GOLD) else 0
    if eval_set == "gold" or (eval_set == "auto" and gold_rows):
        if not gold_rows:
            raise ValueError("eval_set 'gold' asked for, but the lake has no gold_pairs")
        gold_source = "source" if "source" in {c[0] for c in con.execute(f"describe {GOLD}").fetchall()} \
            else "null::varchar as source"
        con.execute(f"create temp view eval_set as select pair_id, conversation, chosen, rejected, {gold_source} "
                    f"from {GOLD}")
        con.execute("create temp view train_set as select * from usable anti join eval_set using (pair_id)")
        (in_gold,) = con.execute("select count(*) from usable semi join eval_set using (pair_id)").fetchone()
        if in_gold:
            skipped["in_gold_pairs"] = int(in_gold)
        return "gold", skipped
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"holdout_fraction must be between 0 and 1, not {holdout_fraction}")
    held = f"('0x' || left(md5(pair_id || ':{int(seed)}'), 8))::ubigint % 100000 < {round(holdout_fraction * 100000)}"
    con.execute(f"create temp view eval_set as select * from usable where {held}")
    con.execute(f"create temp view train_set as select * from usable where not ({held})")
    return "holdout", skipped


def _fingerprint(spec: dict, lake: Lake | None = None) -> str:
    """What identifies a version's data and settings. The embedding head's settings count only
    for the embedding backbone, also in specs recorded with them for another backbone. With the
    lake, a backbone recorded as an absolute path under its root (specs written before backbones
    were recorded as ``<lake>/...``) counts as the relative one."""
    spec = {k: v for k, v in spec.items() if k != "fingerprint"}
    if "embedding_rm" not in spec.get("config", {}):
        spec["config"] = {k: v for k, v in spec.get("config", {}).items() if k not in EMBEDDING_HEAD}
    if lake is not None:
        if isinstance(spec.get("backbone"), str):
            spec["backbone"] = _recorded(lake, spec["backbone"])
        if isinstance(spec["config"].get("backbone"), str):
            spec["config"] = {**spec["config"], "backbone": _recorded(lake, spec["config"]["backbone"])}
    return hashlib.md5(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _recorded(lake: Lake, backbone: str) -> str:
    """A backbone as a spec records it: ``<lake>/...`` for a folder under the lake root (a model
    of the lake, e.g. the best round RM the gold RM starts from), so that a lake moved or copied
    elsewhere finds its models trained already; anything else (minilm, a folder elsewhere) as is."""
    if lake.remote or backbone in (EMBEDDING, MINILM) or backbone.startswith(LAKE_PREFIX):
        return backbone
    if not os.path.isabs(backbone) and not Path(backbone).is_dir():
        return backbone
    inside = lake.relative(os.path.abspath(backbone))
    return backbone if inside is None else LAKE_PREFIX + inside


def _find_version(lake: Lake, name: str, fingerprint: str) -> LakePath | None:
    for version_dir in reversed(rm_models.versions(lake, name)):
        spec = rm_models.read_json(version_dir / "spec.json") or {}
        if spec and _fingerprint(spec, lake) == fingerprint:
            return version_dir
    return None


def train_reward_model(lake: Lake, name: str, pairs: str | Path, config: TrainConfig, *, eval_set: str = "auto",
                       holdout_fraction: float = 0.1, launch: LaunchConfig = LaunchConfig(),
                       run: Runner | None = None, log: Callable[[str], None] = print) -> TrainingSummary:
    """Train (or resume, or reuse) the reward model `name` on `pairs`; see the module docstring."""
    start = time.perf_counter()
    rm_models.check_name(name)
    if lake.remote and launch.hostfile:
        raise ValueError("training across nodes (a hostfile) reads and writes the version folder on every node: "
                         "give the lake on a shared filesystem, not an object store")
    with stage_connection(lake) as con:  # bounded memory, spills under the lake
        kind, skipped = prepare_sets(con, lake, pairs, eval_set, holdout_fraction, config.seed)
        train_digest, eval_digest = _digest(con, "train_set"), _digest(con, "eval_set")
        if not train_digest["rows"]:
            raise ValueError("no training pairs left" + (f" ({skipped})" if skipped else ""))
        if not eval_digest["rows"]:
            raise ValueError(f"the {kind} evaluation set is empty")
        spec = {"name": name, "eval_set": kind, "holdout_fraction": holdout_fraction if kind == "holdout" else None,
                "train": train_digest, "eval": eval_digest, "skipped": skipped,
                "backbone": _backbone(config, lake), "config": _fingerprinted(config, lake),
                "launcher": {"processes": launch.processes}}  # the world size decides the data order
        fingerprint = _fingerprint(spec, lake)
        spec["fingerprint"] = fingerprint
        version_dir = _find_version(lake, name, fingerprint)
        if version_dir is not None and rm_models.is_complete(version_dir):
            log(f"{name} {version_dir.name}: already trained on these pairs with these settings")
            return _summary(version_dir, "unchanged", skipped, start)
        status = "resumed" if version_dir is not None else "trained"
        if version_dir is None:
            version_dir = _new_version(con, lake, name, spec, config)
    work = _working_copy(lake, version_dir)
    if config.backbone == EMBEDDING:  # trains in seconds: in this process, no DeepSpeed launch
        from models.embedding_rm import train_version

        log(f"{name} {version_dir.name}: {status} (embedding RM) on {train_digest['rows']:,} pairs, eval set {kind} "
            f"({eval_digest['rows']:,} pairs)")
        train_version(work, _embedding_config(config), log=log)
        if work != version_dir:
            _upload_version(work, version_dir, log)
        return _summary(version_dir, status, skipped, start)
    launch_args = ["--train", str(work / "data" / "train.parquet"), "--eval", str(work / "data" / "eval.parquet"),
                   "--out", str(work), "--config", str(work / "train_config.json")]
    log(f"{name} {version_dir.name}: {status} on {train_digest['rows']:,} pairs, eval set {kind} "
        f"({eval_digest['rows']:,} pairs), {launch.launcher} x {launch.processes}")
    (run or (lambda command, env: run_streamed(command, env, log)))(
        training_command(launch, launch_args), training_env(launch))
    if work != version_dir and rm_models.is_complete(work):
        _upload_version(work, version_dir, log)
    if not rm_models.is_complete(version_dir):
        raise RuntimeError(f"training of {name} {version_dir.name} ended without a complete model "
                           f"(see {version_dir / 'train_log.jsonl'})")
    return _summary(version_dir, status, skipped, start)


def _embedding_config(config: TrainConfig):
    from models.embedding_rm import EmbeddingRMConfig

    return EmbeddingRMConfig(head=config.head, l2=config.head_l2, seed=config.seed)


def _fingerprinted(config: TrainConfig, lake: Lake) -> dict:
    """The settings that decide the model: the embedding RM's own (all of them, defaults included)
    for that backbone; otherwise the config without the embedding head's fields, so models trained
    before those fields existed keep their fingerprints (a backbone under the lake: ``<lake>/...``)."""
    if config.backbone == EMBEDDING:
        from dataclasses import asdict

        return {"embedding_rm": asdict(_embedding_config(config))}
    return {k: _recorded(lake, v) if k == "backbone" else v for k, v in config.to_dict().items()
            if k not in EMBEDDING_HEAD}


def _backbone(config: TrainConfig, lake: Lake) -> str:
    from models.reward_model import resolve_backbone

    if config.backbone == EMBEDDING:
        return EMBEDDING
    return _recorded(lake, resolve_backbone(lake.located(config.backbone)))


def _working_copy(lake: Lake, version_dir: LakePath) -> Path:
    """Where the trainer writes: the version folder itself on a local lake; on an object store
    a local copy in the lake's home (downloaded if another machine started the version), so
    checkpoints are written to a disk and an interrupted run resumes there."""
    if not lake.remote:
        return version_dir
    work = lake.home / "training" / relative_to_root(lake, version_dir)
    spec = (version_dir / "spec.json").read_text()
    if not (work / "spec.json").exists() or (work / "spec.json").read_text() != spec:  # none, or another lake's
        staging = work.with_name(f".{work.name}.tmp-{scratch.tag()}")
        version_dir.fs.get(version_dir.path + "/", str(staging) + "/", recursive=True)
        shutil.rmtree(work, ignore_errors=True)
        staging.rename(work)
    return work


def _upload_version(work: Path, version_dir: LakePath, log: Callable[[str], None]) -> None:
    """Put a finished local version in the store: metrics.json (which marks a version complete)
    last, so a reader never takes a half-uploaded version for a model. best/ (locally a link
    into hf/) goes up as a folder; the checkpoints stay local (resume points of a finished run)."""
    best = (work / "best").resolve()
    files = [(f, f.relative_to(work).as_posix()) for f in sorted(work.rglob("*"))
             if f.is_file() and f.relative_to(work).parts[0] not in ("checkpoints", "hf", "best")]
    files += [(f, f"best/{f.relative_to(best).as_posix()}") for f in sorted(best.rglob("*")) if f.is_file()]
    for f, name in sorted(files, key=lambda pair: pair[1] == "metrics.json"):
        version_dir.fs.put_file(str(f), f"{version_dir.path}/{name}")
    log(f"{version_dir.name}: {len(files)} files uploaded to {version_dir}")


def _new_version(con: duckdb.DuckDBPyConnection, lake: Lake, name: str, spec: dict, config: TrainConfig) -> LakePath:
    """Freeze the two sets into a new version folder (made under a temporary name, then
    renamed into place; on an object store uploaded file by file, spec.json last)."""
    home = rm_models.model_home(lake, name)
    home.mkdir(parents=True, exist_ok=True)
    staging = (lake.tmp_dir if lake.remote else home) / f".tmp-{scratch.tag()}"
    try:
        (staging / "data").mkdir(parents=True)
        for view, file in (("train_set", "train.parquet"), ("eval_set", "eval.parquet")):
            con.execute(f"copy (select * from {view} order by pair_id) to {lit(staging / 'data' / file)} "
                        f"(format parquet, compression zstd)")
        (staging / "spec.json").write_text(json.dumps(spec, indent=2, sort_keys=True))
        # the trainer reads a backbone under the lake as <lake>/... relative to the lake above --out
        recorded = {**config.to_dict(), "backbone": _recorded(lake, config.backbone)}
        (staging / "train_config.json").write_text(json.dumps(recorded, indent=2))
        final = home / rm_models.next_version(lake, name)
        publish(staging, final, last="spec.json")  # _find_version takes spec.json as the mark
        return final
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _summary(version_dir: Path, status: str, skipped: dict, start: float) -> TrainingSummary:
    spec = rm_models.read_json(version_dir / "spec.json") or {}
    return TrainingSummary(spec["name"], version_dir.name, version_dir, status, spec["eval_set"],
                           spec["train"]["rows"], spec["eval"]["rows"], skipped,
                           rm_models.read_json(version_dir / "metrics.json") or {},
                           round(time.perf_counter() - start, 3))
