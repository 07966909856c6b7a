"""The silver stage written the plain pandas way: the baseline for benchmarks/silver_stage.py.

Same rules as sql/silver_*.sql (normalisation, pair_id, reasons and their precedence,
13-gram decontamination, first occurrence kept), holding the whole table in memory as a
pandas user typically would.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

import pandas as pd

_SPACE = re.compile(r"[\t\n\f\r ]+")  # RE2's \s, as in sql/macros.sql
_WORD = re.compile(r"[0-9a-z]+")  # RE2's [[:alnum:]] after lower()
N = 13


def norm_text(s: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFC", s)).strip(" ")


def conversation_key(conv) -> str:
    return "\x1e".join(m["role"] + "\x1f" + norm_text(m["content"]) for m in conv)


def ngrams(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i:i + N]) for i in range(len(words) - N + 1)}


def build_silver_pandas(raw_dir: Path, prompts: list[str], out_dir: Path) -> dict[str, int]:
    raw = pd.read_parquet(raw_dir)
    bench = set().union(*(ngrams(p) for p in prompts)) if prompts else set()

    chosen_key = raw["chosen"].map(norm_text)
    rejected_key = raw["rejected"].map(norm_text)
    conv_key = raw["conversation"].map(conversation_key)
    raw["pair_id"] = [hashlib.md5(f"{c}\x1d{a}\x1d{b}".encode()).hexdigest()
                      for c, a, b in zip(conv_key, chosen_key, rejected_key)]
    mismatch = [rc is not None and conversation_key(rc) != ck
                for rc, ck in zip(raw["rejected_conversation"], conv_key)]
    contaminated = [bool(bench) and not ngrams(" ".join(m["content"] for m in conv)).isdisjoint(bench)
                    for conv in raw["conversation"]]

    reason = pd.Series(None, index=raw.index, dtype=object)
    reason[contaminated] = "contaminated"
    reason[chosen_key == rejected_key] = "identical_responses"
    reason[mismatch] = "conversation_mismatch"
    reason[(chosen_key == "") | (rejected_key == "")] = "empty_response"  # highest precedence last

    clean = raw[reason.isna()].sort_values(["source_file", "source_row"])
    dup = clean["pair_id"].duplicated(keep="first")
    reason[dup[dup].index] = "duplicate"
    raw["reason"] = reason

    out_dir.mkdir(parents=True, exist_ok=True)
    raw[["raw_id", "pair_id", "reason"]].to_parquet(out_dir / "silver_decisions.parquet")
    keep = raw["reason"].isna()
    raw.loc[keep, ["pair_id", "source", "conversation", "chosen", "rejected", "raw_id", "source_file",
                   "source_row"]].to_parquet(out_dir / "silver_pairs.parquet")
    raw.loc[~keep].drop(columns=["rejected_conversation"]).to_parquet(out_dir / "silver_quarantine.parquet")
    counts = raw["reason"].fillna("kept").value_counts().to_dict()
    return {k: int(v) for k, v in sorted(counts.items())}
