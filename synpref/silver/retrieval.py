"""Error-driven adaptive retrieval (Skywork-Reward-V2): widen the search where the RM errs.

For each human-labelled pair the current reward model gives p, its probability of
ranking the pair correctly. Pairs it gets wrong or is unsure of (p <= 0.5) fetch the
full K_MAX neighbours from the unlabelled pool; confident ones fetch fewer, down to
none at p = 1. Neighbours are searched by the pair's (prompt, attributes) embedding.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from synpref.lake import Lake
from synpref.silver.vectors import IndexConfig, VECTOR, read_pairs, search, sql_string

K_MAX = 8


def adaptive_k(p: float, k_max: int = K_MAX) -> int:
    """k_max when p <= 0.5, else ceil(k_max * (1 - p)): 4 just above 0.5 (k_max 8), 0 at p = 1."""
    if not 0.0 <= p <= 1.0:  # also rejects NaN
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    if k_max < 0:
        raise ValueError(f"k_max must be >= 0, got {k_max}")
    if p <= 0.5:
        return k_max
    # rounding first keeps float noise (1 - 0.7 = 0.30000000000000004) from adding one
    return math.ceil(round(k_max * (1.0 - p), 9))


@dataclass(frozen=True)
class Neighbour:
    query_pair_id: str  # the labelled pair the neighbour was retrieved for
    pair_id: str
    rank: int  # 1 = nearest
    distance: float  # cosine distance
    k: int  # how many neighbours this query asked for


def retrieve(lake: Lake, queries: list[tuple[str, float]], *, same_task_category: bool = True,
             exclude_pair_ids: set[str] | frozenset[str] = frozenset(), config: IndexConfig,
             k_max: int = K_MAX) -> list[Neighbour]:
    """Neighbours of each labelled pair (pair_id, p), k = adaptive_k(p), in query order.

    The query pair itself and every excluded id (pairs already labelled) are never
    returned. With same_task_category, a query searches only pairs of its own
    task_category; a query whose category is unknown searches the whole pool.
    """
    wanted = [(pair_id, adaptive_k(p, k_max)) for pair_id, p in queries]
    wanted = [(pair_id, k) for pair_id, k in wanted if k > 0]
    if not wanted:
        return []
    stored = _query_rows(lake, [pair_id for pair_id, _ in wanted])
    groups: dict[str | None, list[tuple[str, int]]] = defaultdict(list)
    for pair_id, k in wanted:
        category = stored[pair_id][1] if same_task_category else None
        groups[category].append((pair_id, k))
    found: dict[str, list[Neighbour]] = {}
    for category, members in groups.items():
        where = None if category is None else f"task_category = {sql_string(category)}"
        vectors = np.stack([stored[pair_id][0] for pair_id, _ in members])
        # one more than the largest k: the query pair is usually its own nearest hit
        hits = search(lake, vectors, max(k for _, k in members) + 1, where=where,
                      exclude_ids=exclude_pair_ids, config=config)
        for (pair_id, k), pair_hits in zip(members, hits):
            found[pair_id] = _neighbours(pair_id, k, pair_hits)
    return [n for pair_id, _ in wanted for n in found[pair_id]]


def _query_rows(lake: Lake, pair_ids: list[str]) -> dict[str, tuple[np.ndarray, str | None]]:
    """pair_id -> (vector, task_category) for the queries, read in batches."""
    rows = read_pairs(lake, pair_ids, ("pair_id", VECTOR, "task_category"))
    dim = rows.schema.field(VECTOR).type.list_size
    vectors = np.asarray(rows[VECTOR].combine_chunks().flatten(), dtype=np.float32).reshape(-1, dim)
    stored = dict(zip(rows["pair_id"].to_pylist(), zip(vectors, rows["task_category"].to_pylist())))
    missing = sorted(set(pair_ids) - stored.keys())
    if missing:
        raise KeyError(f"{len(missing)} query pairs are not embedded, e.g. {missing[:5]}")
    return stored


def _neighbours(query_pair_id: str, k: int, hits: list[tuple[str, float]]) -> list[Neighbour]:
    kept = [hit for hit in hits if hit[0] != query_pair_id][:k]
    return [Neighbour(query_pair_id, pair_id, rank, distance, k)
            for rank, (pair_id, distance) in enumerate(kept, start=1)]
