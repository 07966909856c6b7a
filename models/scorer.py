"""Fast batch scoring of pairs by a reward model: rewards for chosen and rejected, and
p_chosen = sigmoid(r_chosen - r_rejected).

Sequences are grouped by length into dynamic batches under a token budget (rows x longest
row), so little compute goes to padding; `bucketed=False` gives the baseline (fixed-size
batches in the given order, each padded to its longest row) for the benchmark.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.batching import fixed_batches, token_budget_batches
from models.reward_model import (PairEncoder, collate, concat, load_reward_model, read_info, resolve_backbone,
                                 rewards)

DEFAULT_MAX_LENGTH = 4096  # for a third-party model folder without rm_info.json


@dataclass
class ScorerConfig:
    max_tokens: int = 8192  # padded tokens per batch (raise it on a GPU)
    max_batch: int = 64  # rows per batch, whatever their length
    device: str | None = None  # None: cuda if available, else cpu
    threads: int | None = None  # torch threads on the CPU; None leaves torch's choice
    max_length: int | None = None  # None: the length the model was trained with


@dataclass
class ScoreStats:
    sequences: int = 0
    tokens: int = 0  # non-padding tokens
    padded_tokens: int = 0  # tokens computed, padding included
    batches: int = 0

    @property
    def padding_share(self) -> float:
        return 1 - self.tokens / self.padded_tokens if self.padded_tokens else 0.0


def score_encoded(model, encoded, pad_id: int, device, max_tokens: int, max_batch: int,
                  bucketed: bool = True, stats: ScoreStats | None = None) -> np.ndarray:
    """One reward per encoded sequence, in order (model in eval mode)."""
    import torch

    lengths = encoded.lengths
    out = np.empty(len(lengths), dtype=np.float64)
    batches = (token_budget_batches(lengths, max_tokens, max_batch) if bucketed
               else fixed_batches(len(lengths), max(1, max_tokens // max(int(lengths.max(initial=1)), 1))))
    with torch.inference_mode():
        for rows in batches:
            out[rows] = rewards(model, collate(encoded, rows, pad_id, device)).cpu().numpy()
            if stats is not None:
                stats.batches += 1
                stats.sequences += len(rows)
                stats.tokens += int(lengths[rows].sum())
                stats.padded_tokens += int(lengths[rows].max()) * len(rows)
    return out


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * x))  # overflow-free


class Scorer:
    """A trained reward model folder (or any AutoModelForSequenceClassification folder) that
    scores pairs."""

    def __init__(self, model_dir: str | Path, config: ScorerConfig | None = None):
        import torch

        self.config = config or ScorerConfig()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        self.model_dir = Path(resolve_backbone(str(model_dir)))
        info = read_info(self.model_dir)
        device = self.config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.device = torch.device(device)
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.model, self.tokenizer = load_reward_model(str(self.model_dir), dtype=dtype)
        self.model.to(self.device).eval()
        max_length = self.config.max_length or info.get("max_length") or min(
            self.tokenizer.model_max_length, DEFAULT_MAX_LENGTH)
        self.encoder = PairEncoder(self.tokenizer, int(max_length), info.get("input_format"))
        self.stats = ScoreStats()

    def score(self, conversations: list[list[dict]], chosen: list[str], rejected: list[str],
              bucketed: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(reward_chosen, reward_rejected, p_chosen) per pair."""
        if not chosen:
            empty = np.empty(0)
            return empty, empty, empty
        c, r = self.encoder.encode_pairs(conversations, chosen, rejected)
        both = score_encoded(self.model, concat(c, r), self.tokenizer.pad_token_id, self.device,
                             self.config.max_tokens, self.config.max_batch, bucketed, self.stats)
        reward_chosen, reward_rejected = both[:len(chosen)], both[len(chosen):]
        return reward_chosen, reward_rejected, sigmoid(reward_chosen - reward_rejected)


def cpu_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def make_scorer(model_dir: str | Path, config: ScorerConfig | None = None):
    """The scorer for a model folder: an embedding reward model (models/embedding_rm.py, with the
    lake's embedding cache) or a transformers reward model."""
    from models.embedding_rm import EmbeddingScorer, is_embedding_rm, lake_cache_dir

    if is_embedding_rm(model_dir):
        if config and config.threads:
            import torch

            torch.set_num_threads(config.threads)
        return EmbeddingScorer(model_dir, lake_cache_dir(model_dir))
    return Scorer(model_dir, config)
