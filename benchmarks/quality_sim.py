"""What RM accuracy would Stage 2 need? The filter's own SQL on simulated RM scores.

Each simulated RM scores a pair with the logit z = d + noise on its true orientation (Phi(d) is the
RM's accuracy), and p_chosen of the pool's label = sigmoid(z) where the label is right, sigmoid(-z)
where it was flipped. The two RMs' noises correlate by rho (the gold RM starts from the best RM, so
theirs correlated strongly before the gold RM was made independent). The pairs then go through a
rule's SQL file exactly as synpref.filtered.filtering feeds it (no judges, no human-verified pairs; cleanlab on
p_best for confident learning), and the same figures as the benchmark's are read off, AUROC of the
rule's noise score included. It shows the trend with RM strength; the measured points sit on it.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
from scipy.stats import norm

import sql as sql_files

ACCURACIES = (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
CORRELATIONS = (0.0, 0.5, 0.9, 1.0)


def simulate(accuracy: float, rho: float, flip_rate: float, pairs: int = 20_000, flip_margin: float = 0.2,
             seed: int = 0, rule: str = "paper") -> dict:
    from sklearn.metrics import roc_auc_score

    from synpref.filtered.confident_learning import label_issues
    from synpref.filtered.filtering import EVIDENCE, RULES

    rng = np.random.default_rng(seed)
    flipped = np.arange(pairs) < round(pairs * flip_rate)
    d = norm.ppf(accuracy)
    shared, own = rng.standard_normal(pairs), rng.standard_normal((2, pairs))
    z = d + np.sqrt(rho) * shared + np.sqrt(1 - rho) * own  # the two RMs' logits on the true label
    p = 1 / (1 + np.exp(-np.where(flipped, -z, z)))  # ... on the pool's label
    issue, quality = label_issues(p[0]) if rule == "confident_learning" else (np.zeros(pairs, bool), p[0])
    with duckdb.connect() as con:
        ids = pa.array([f"p{i}" for i in range(pairs)])
        con.register("sim", pa.table({"pair_id": ids, "p_best": p[0], "p_gold": p[1], "flip": flipped}))
        con.register("issues", pa.table({"pair_id": ids, "label_issue": issue, "label_quality": quality}))
        con.execute("create temp view pool as select pair_id, 'sim' as source from sim")
        con.execute("create temp view scores as select pair_id, 0 as fold, p_best, 0.0 as p_best_spread, p_gold "
                    "from sim")
        con.execute("create temp view label_issues as select * from issues")
        con.execute("create temp view judge_verdicts as "
                    "select null::varchar as pair_id, null::varchar as verdict where false")
        con.execute("create temp view human_verdicts as "
                    "select null::varchar as pair_id, null::boolean as flipped where false")
        con.execute(f"create temp view evidence as {sql_files.load(EVIDENCE)}")
        con.execute("set variable recycle_flipped = true")
        con.execute(f"set variable flip_margin = {float(flip_margin)}")
        kept, kept_flips, caught = con.execute(f"""
            create temp table decided as select f.status, f.noise_score, s.flip
            from ({sql_files.load(RULES[rule])}) as f join sim as s using (pair_id);
            select count(*) filter (where status = 'kept'), count(*) filter (where status = 'kept' and flip),
                   count(*) filter (where status <> 'kept' and flip) from decided""").fetchone()
        flip, score = con.execute("select list(flip), list(noise_score) from decided").fetchone()
    injected = int(flipped.sum())
    return {"accuracy": accuracy, "rho": rho, "rule": rule, "kept_flip_rate": kept_flips / kept,
            "retention": kept / pairs, "recall": caught / injected, "precision": caught / (pairs - kept),
            "auroc": float(roc_auc_score(flip, score))}


def sweep(flip_rate: float, rule: str = "paper") -> list[dict]:
    return [simulate(a, rho, flip_rate, rule=rule) for rho in CORRELATIONS for a in ACCURACIES]


def logit_correlation(p_best: np.ndarray, p_gold: np.ndarray) -> float:
    """The measured correlation of the two RMs' logits on the pool (where the simulation's rho sits)."""
    eps = 1e-6
    lb, lg = (np.log(np.clip(p, eps, 1 - eps) / np.clip(1 - p, eps, 1 - eps)) for p in (p_best, p_gold))
    return float(np.corrcoef(lb, lg)[0, 1])
