"""Real data from ../shared/data, read in place (skipped where it is absent)."""

from __future__ import annotations

import json

import pytest

from conftest import SHARED_DATA, rows, run_stages, write_sources

pytestmark = [pytest.mark.real_data,
              pytest.mark.skipif(not SHARED_DATA.exists(), reason="../shared/data is not here")]


def test_hh_rlhf_harmless_every_row_accounted_for(lake, tmp_path):
    src = write_sources(tmp_path / "s.yaml", [{
        "name": "hh", "path": str(SHARED_DATA / "hh-rlhf" / "harmless-base-test.jsonl.gz"),
        "shape": "hh_transcript"}])
    ingest, silver = run_stages(lake, src)
    assert ingest.read == 2312
    assert ingest.raw + ingest.quarantined == 2312
    assert silver.silver_rows + silver.quarantined == ingest.raw
    # the transcripts whose final assistant turn is empty are quarantined as such
    empty = [q for q in rows(lake, "silver_quarantine") if q["reason"] == "empty_response"]
    assert len(empty) == 4
    assert all(q["chosen"].strip() == "" or q["rejected"].strip() == "" for q in empty)


def test_llmbar_885_rows_with_chosen_the_labelled_better_output(lake, tmp_path):
    src = write_sources(tmp_path / "s.yaml", [{
        "name": "llmbar", "path": str(SHARED_DATA / "llmbar" / "*.json"), "shape": "labelled_outputs",
        "columns": {"prompt": "input"}}])
    ingest, _ = run_stages(lake, src)
    assert (ingest.read, ingest.raw, ingest.quarantined) == (885, 885, 0)
    raw = {(r["source_file"], r["source_row"]): r for r in rows(lake, "raw_pairs")}
    for path in sorted((SHARED_DATA / "llmbar").glob("*.json")):
        for i, rec in enumerate(json.loads(path.read_text()), start=1):
            pair = raw[(str(path), i)]
            assert pair["chosen"] == rec[f"output_{rec['label']}"]
            assert pair["rejected"] == rec[f"output_{3 - rec['label']}"]
            assert pair["conversation"] == [{"role": "user", "content": rec["input"]}]
