"""Confident learning (cleanlab) on out-of-fold reward-model scores.

A preference pair's given label is always "chosen is better", so a single class would leave
cleanlab nothing to calibrate against. Each pair is therefore shown in both orientations: as
labelled (class 1, P(class 1) = p) and swapped (class 0, P(class 0) = p). The per-class
thresholds are then symmetric and a pair is flagged when cleanlab flags either orientation.
`label_quality` is cleanlab's self-confidence in the given label (here p itself).
"""

from __future__ import annotations

import numpy as np

MIN_PAIRS = 8  # below this cleanlab has too little to estimate the noise rates from


def label_issues(p_chosen, filter_by: str = "prune_by_noise_rate") -> tuple[np.ndarray, np.ndarray]:
    """(label_issue, label_quality) per pair from out-of-fold p(chosen is better)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    p = np.clip(np.asarray(p_chosen, dtype=np.float64), 1e-6, 1 - 1e-6)
    n = len(p)
    if n < MIN_PAIRS:  # too few to estimate thresholds: flag what the scores put against the label
        return p < 0.5, p
    labels = np.concatenate([np.ones(n, dtype=int), np.zeros(n, dtype=int)])
    pred_probs = np.vstack([np.column_stack([1 - p, p]), np.column_stack([p, 1 - p])])
    # n_jobs=1: cleanlab's worker pool passes its inputs through module globals, which processes
    # started by spawn (Dagster's multiprocess executor) never see (NameError: pred_probs_by_class)
    issues = find_label_issues(labels, pred_probs, filter_by=filter_by, n_jobs=1)
    quality = get_label_quality_scores(labels, pred_probs, method="self_confidence")
    return issues[:n] | issues[n:], quality[:n]
