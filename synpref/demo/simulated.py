"""Simulated human annotators for the demo: labels derived from the generator's known truth.

The demo has no humans, so Stage 1's human step is played by annotators who know
truth.parquet (which response is really better, or that neither is) and make a seeded
share of honest mistakes. Every label they give is marked simulated, and so is every gold
pair built from one: nothing downstream can mistake them for real human judgements.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


from synpref.lake.duck import connect as duck_connect, lit, register_tables
from synpref.lake import Lake

ANNOTATORS = ("simulated-1", "simulated-2", "simulated-3")
ERROR_RATE = 0.05  # each simulated annotator picks the worse response this often
SECONDS_PER_LABEL = 20.0


def truth_file(lake: Lake) -> Path:
    """Where `synpref demo` lands the generator's truth."""
    return lake.home / "landing" / "demo" / "truth.parquet"


def true_choices(lake: Lake, pair_ids: list[str], truth: Path | None = None) -> dict[str, str]:
    """pair_id -> the truth relative to the pair's ORIGINAL label: 'chosen' (the label is
    right), 'rejected' (it is flipped) or 'cannot_decide' (neither response is better)."""
    truth = truth or truth_file(lake)
    if not truth.is_file():
        raise FileNotFoundError(f"no demo truth at {truth}: simulated annotators only work on demo data")
    with duck_connect(lake) as con:
        register_tables(con, lake, temp=True)
        con.execute("create temp table wanted as select unnest($ids::varchar[]) as pair_id", {"ids": pair_ids})
        # the generator's file name is the basename of the ingested source_file
        found = con.execute(f"""
            select s.pair_id, coalesce(t.true_better, 'cannot_decide')
            from wanted join silver_pairs as s using (pair_id)
            join read_parquet({lit(truth)}) as t
              on t.source = s.source and t.source_row = s.source_row
             and regexp_extract(s.source_file, '[^/]+$') = t.file""").fetchall()
    missing = set(pair_ids) - {pid for pid, _ in found}
    if missing:
        raise KeyError(f"{len(missing)} pairs have no demo truth, e.g. {sorted(missing)[:3]}")
    return dict(found)


def simulated_choice(truth: str, pair_id: str, annotator: str, seed: int = 0,
                     error_rate: float = ERROR_RATE) -> str:
    """The annotator's choice: the truth, except for a seeded share of mistakes (picking the
    other response; a pair with no better response stays 'cannot_decide')."""
    if truth == "cannot_decide":
        return truth
    draw = int(hashlib.sha256(f"{seed}:{annotator}:{pair_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    if draw < error_rate:
        return "rejected" if truth == "chosen" else "chosen"
    return truth


def simulate_annotators(lake: Lake, origin: str | None = None, annotators: tuple[str, ...] = ANNOTATORS,
                        seed: int = 0, error_rate: float = ERROR_RATE, truth: Path | None = None) -> int:
    """Every simulated annotator labels every pair of annotation_queue (of `origin`, if given)
    it has not labelled yet, in the label journal as a finished annotation server would (the
    human_labels asset seals them); returns the labels journaled. Labels carry simulated = true and a
    label_id fixed by (annotator, pair), so a rerun never labels a pair twice."""
    from synpref.gold.human_labels import submit_labels

    if not lake.has_table("annotation_queue"):
        return 0
    with duck_connect(lake) as con:
        register_tables(con, lake, temp=True)
        where = "where origin = $origin" if origin else ""
        queued = [pid for (pid,) in con.execute(
            f"select distinct pair_id from annotation_queue {where} order by pair_id",
            {"origin": origin} if origin else {}).fetchall()]
    if not queued:
        return 0
    truths = true_choices(lake, queued, truth)
    labels = [{"label_id": f"simulated:{annotator}:{pid}", "pair_id": pid, "annotator": annotator,
               "choice": simulated_choice(truths[pid], pid, annotator, seed, error_rate),
               "seconds": SECONDS_PER_LABEL, "simulated": True, "guideline_version": "simulated",
               "comment": "simulated from the demo generator's known truth"}
              for pid in queued for annotator in annotators]
    return submit_labels(lake, labels, source="simulated")[0]
