"""The planted defects: their kinds, their rates in each file, and where they fall in a chunk."""

from __future__ import annotations

import random

from synpref.demo.layout import FILES, FileSpec

CLEAN = ("none", "flipped")  # records that pass every check; the only ones worth duplicating
DUPLICATES = ("duplicate", "whitespace_duplicate")
MALFORMED = ("malformed_json", "missing_field", "unknown_role", "invalid_label")  # quarantined at ingest
DEFECTS = ("none", "flipped", *DUPLICATES, "empty_response", "identical_responses", "contaminated",
           *MALFORMED)

# Share of ALL records carrying each defect; file-specific kinds are concentrated in the
# files whose format can express them (see file_rates).
SHARED_RATES = {
    "flipped": 0.10,
    "duplicate": 0.02,
    "whitespace_duplicate": 0.01,
    "empty_response": 0.01,
    "identical_responses": 0.005,
    "contaminated": 0.01,
}
MALFORMED_RATE = 0.015  # over the JSONL files only
INVALID_LABEL_RATE = 0.005  # in the labelled JSON array only


def file_rates(spec: FileSpec) -> dict[str, float]:
    """Per-record defect rates within one file, so that overall rates match the targets."""
    rates = dict(SHARED_RATES)
    jsonl_share = sum(f.share for f in FILES if f.malformed_kinds)
    for kind in spec.malformed_kinds:
        rates[kind] = MALFORMED_RATE / jsonl_share / len(spec.malformed_kinds)
    if spec.shape == "labelled_outputs":
        rates["invalid_label"] = INVALID_LABEL_RATE / spec.share
    return rates


def chunk_plan(rates: dict[str, float], start: int, end: int, rng: random.Random) -> list[str]:
    """Defect of each record in [start, end): exact cumulative counts, shuffled positions."""
    plan: list[str] = []
    for kind, rate in rates.items():
        plan += [kind] * (round(rate * end) - round(rate * start))
    plan += ["none"] * (end - start - len(plan))
    rng.shuffle(plan)
    # A duplicate repeats an earlier clean record of its chunk, so the chunk opens with one
    # (a chunk of a few records may hold none: then its first record is made clean).
    first_clean = next((i for i, kind in enumerate(plan) if kind in CLEAN), None)
    if first_clean is None:
        plan[0] = "none"
    else:
        plan[0], plan[first_clean] = plan[first_clean], plan[0]
    return plan
