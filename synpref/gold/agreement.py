"""Inter-annotator agreement over the human votes: pairwise agreement, Cohen's kappa for each
two annotators who judged the same pairs (scikit-learn), Fleiss' kappa over every pair judged
by two or more.

Computed over decided votes (chosen / rejected, relative to the original label): "cannot
decide" is no vote, as in gold_pairs. Fleiss' kappa takes a varying number of raters per item
(per-item agreement averaged, category shares over all votes), which is Fleiss (1971) when
every item has the same number.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

CATEGORIES = ("chosen", "rejected")


@dataclass(frozen=True)
class AnnotatorPair:
    a: str
    b: str
    shared: int  # pairs both decided
    agreement: float  # share of those they decided the same way
    kappa: float | None  # Cohen's; None where undefined (both always gave one and the same answer)


@dataclass
class Agreement:
    items: int = 0  # pairs with two or more decided votes
    votes: int = 0  # decided votes on those pairs
    pairwise: float | None = None  # share of agreeing annotator pairs, averaged over items
    fleiss_kappa: float | None = None
    cohen: list[AnnotatorPair] = field(default_factory=list)

    @property
    def cohen_mean(self) -> float | None:
        kappas = [p.kappa for p in self.cohen if p.kappa is not None]
        return round(float(np.mean(kappas)), 4) if kappas else None


def count_table(votes: list[tuple[str, str, str]], categories=CATEGORIES) -> np.ndarray:
    """Items x categories: how many annotators put each pair in each category.
    votes: (pair_id, annotator, category); only items with two or more votes are kept."""
    index = {c: j for j, c in enumerate(categories)}
    per_item: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(categories), dtype=np.int64))
    for pair_id, _, category in votes:
        if category in index:
            per_item[pair_id][index[category]] += 1
    rows = [r for r in per_item.values() if r.sum() >= 2]
    return np.array(rows, dtype=np.int64).reshape(-1, len(categories))


def _item_agreement(counts: np.ndarray) -> np.ndarray:
    n = counts.sum(axis=1)
    return (np.square(counts).sum(axis=1) - n) / (n * (n - 1))


def pairwise_agreement(counts: np.ndarray) -> float | None:
    """Mean over items of the share of annotator pairs that agree."""
    if not len(counts):
        return None
    return float(_item_agreement(counts).mean())


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Fleiss' kappa of an items x categories count table (>= 2 raters per item); None when
    chance agreement is 1 (every vote in one category) or there are no items."""
    if not len(counts):
        return None
    observed = _item_agreement(counts).mean()
    shares = counts.sum(axis=0) / counts.sum()
    expected = float(np.square(shares).sum())
    if math.isclose(expected, 1.0):
        return None
    return float((observed - expected) / (1.0 - expected))


def cohen_pairs(votes: list[tuple[str, str, str]], min_shared: int = 2) -> list[AnnotatorPair]:
    """Cohen's kappa for every two annotators with at least min_shared pairs in common."""
    from sklearn.metrics import cohen_kappa_score

    by_annotator: dict[str, dict[str, str]] = defaultdict(dict)
    for pair_id, annotator, category in votes:
        by_annotator[annotator][pair_id] = category
    out = []
    for a, b in itertools.combinations(sorted(by_annotator), 2):
        shared = sorted(by_annotator[a].keys() & by_annotator[b].keys())
        if len(shared) < min_shared:
            continue
        ya = [by_annotator[a][p] for p in shared]
        yb = [by_annotator[b][p] for p in shared]
        agree = sum(x == y for x, y in zip(ya, yb)) / len(shared)
        kappa = None
        if len(set(ya) | set(yb)) > 1:  # one label between them: kappa is undefined
            kappa = float(cohen_kappa_score(ya, yb, labels=list(CATEGORIES)))
            kappa = None if math.isnan(kappa) else round(kappa, 4)
        out.append(AnnotatorPair(a, b, len(shared), round(agree, 4), kappa))
    return out


def agreement(votes: list[tuple[str, str, str]], min_shared: int = 2) -> Agreement:
    """Every agreement figure from (pair_id, annotator, chosen|rejected) votes."""
    decided = [v for v in votes if v[2] in CATEGORIES]
    counts = count_table(decided)
    pairwise, kappa = pairwise_agreement(counts), fleiss_kappa(counts)
    return Agreement(items=len(counts), votes=int(counts.sum()),
                     pairwise=None if pairwise is None else round(pairwise, 4),
                     fleiss_kappa=None if kappa is None else round(kappa, 4),
                     cohen=cohen_pairs(decided, min_shared))
