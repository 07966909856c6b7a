"""Batching by length: less padding in training (length-grouped micro-batches) and in scoring
(dynamic batches under a token budget). Pure functions of lengths and seeds, testable alone."""

from __future__ import annotations

import numpy as np


def length_grouped_micro_batches(lengths: np.ndarray, micro_batch: int, seed: int, epoch: int,
                                 mega_batch_factor: int = 50, grouped: bool = True) -> list[np.ndarray]:
    """One epoch's micro-batches of pair indices, in training order.

    A seeded permutation of the pairs is cut into windows of `mega_batch_factor` micro-batches;
    each window is sorted by length and cut into micro-batches, so a micro-batch holds pairs
    of similar length (as transformers' LengthGroupedSampler does); then the micro-batches are
    shuffled, so that the order of lengths is random too. Pairs left over after the last full
    micro-batch are not used this epoch (a different seeded few each epoch).
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    usable = len(order) - len(order) % micro_batch
    if not grouped:
        return [order[i:i + micro_batch] for i in range(0, usable, micro_batch)]
    window = micro_batch * mega_batch_factor
    sorted_order = np.concatenate([
        chunk[np.argsort(-lengths[chunk], kind="stable")]
        for chunk in (order[i:i + window] for i in range(0, len(order), window))]) if len(order) else order
    # the sorted windows may leave a partial micro-batch at each window's end: cut the whole
    # sequence instead, so only the epoch's tail is dropped
    batches = [sorted_order[i:i + micro_batch] for i in range(0, usable, micro_batch)]
    return [batches[i] for i in rng.permutation(len(batches))]


def rank_micro_batches(batches: list[np.ndarray], step: int, rank: int, world_size: int,
                       accumulation: int) -> list[np.ndarray]:
    """The micro-batches process `rank` trains on in optimizer step `step` of an epoch."""
    start = step * world_size * accumulation + rank * accumulation
    return batches[start:start + accumulation]


def token_budget_batches(lengths: np.ndarray, max_tokens: int, max_batch: int) -> list[np.ndarray]:
    """Indices grouped into batches whose padded size (rows x longest row) stays within max_tokens.

    Sequences are sorted longest first, so each batch pads little and the largest batch comes
    first (an out-of-memory error shows at once, not at the end). A sequence longer than
    max_tokens still gets a batch of its own.
    """
    order = np.argsort(-np.asarray(lengths), kind="stable")
    batches, start = [], 0
    while start < len(order):
        longest = int(lengths[order[start]])
        size = max(1, min(max_batch, max_tokens // max(longest, 1)))
        batches.append(order[start:start + size])
        start += size
    return batches


def fixed_batches(n: int, batch_size: int) -> list[np.ndarray]:
    """Batches of batch_size in the given order (the baseline: padding to each batch's longest)."""
    return [np.arange(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
