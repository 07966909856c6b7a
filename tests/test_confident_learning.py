"""cleanlab on out-of-fold preference scores: both orientations, so the thresholds are symmetric."""

from __future__ import annotations

import numpy as np

from synpref.filtered.confident_learning import label_issues


def test_it_flags_the_pairs_the_scores_put_against_their_label():
    rng = np.random.default_rng(0)
    truth_right = rng.random(400) > 0.25  # a quarter of the labels are wrong
    # an imperfect model: p above 0.5 on right labels more often than on wrong ones
    p = np.clip(np.where(truth_right, rng.normal(0.62, 0.12, 400), rng.normal(0.40, 0.12, 400)), 0.01, 0.99)
    issue, quality = label_issues(p)
    assert issue.dtype == bool and len(issue) == len(quality) == 400
    assert np.allclose(quality, p)  # self-confidence in the given label
    assert (p[issue] < 0.5).all()  # nothing the model supports is flagged
    precision = (~truth_right[issue]).mean()
    assert precision > 0.6 and issue.sum() > 40  # far better than the 0.25 of flagging at random


def test_small_inputs_fall_back_to_the_scores_side():
    issue, quality = label_issues([0.9, 0.2, 0.6])
    assert issue.tolist() == [False, True, False] and quality.tolist() == [0.9, 0.2, 0.6]


def test_it_works_in_a_spawned_process():
    """Dagster's multiprocess executor starts steps by spawn; cleanlab's own worker pool broke there."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    p = np.random.default_rng(1).uniform(0.05, 0.95, 300)
    # an executor, not a Pool: its workers exit when told, where a Pool's are terminated by a SIGTERM
    # that a process started with SIGTERM ignored (some CI shells) never acts on
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        issue, quality = pool.submit(label_issues, p).result(timeout=120)
    assert issue.tolist() == label_issues(p)[0].tolist() and issue.any()
