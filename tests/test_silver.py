"""The SQL silver stage: stable pair_id, dedup, decontamination, reconciliation, reruns (a run SIGKILLed
mid-way: tests/test_kill_resume.py)."""

from __future__ import annotations

import json

from conftest import rows, run_stages, write_jsonl, write_sources
from synpref.silver.pool import build_silver
from synpref.raw.sources import load_sources

BENCH = "please explain in simple words how the immune system recognises a virus it has never seen before today"


def _pairs(n: int, prefix: str = "q") -> list[dict]:
    return [{"prompt": f"{prefix} number {i}", "chosen": f"good answer {i}", "rejected": f"bad answer {i}"}
            for i in range(n)]


def test_pair_id_is_stable_and_ignores_whitespace_not_content(lake, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"prompt": "Hi  there", "chosen": "Yes.\n", "rejected": "No"},
                                       {"prompt": "Hi there", "chosen": "Yes.", "rejected": "No"},
                                       {"prompt": "hi there", "chosen": "Yes.", "rejected": "No"}])
    src = write_sources(tmp_path / "s.yaml", [{"name": "a", "path": "a.jsonl", "shape": "prompt_chosen_rejected"}])
    run_stages(lake, src)
    decisions = rows(lake, "silver_decisions", order="raw_id")
    ids = {d["raw_id"]: d["pair_id"] for d in decisions}
    raw = {r["source_row"]: r["raw_id"] for r in rows(lake, "raw_pairs")}
    assert ids[raw[1]] == ids[raw[2]] != ids[raw[3]]  # whitespace is normalised, case is not
    assert all(len(p) == 32 for p in ids.values())
    # a second lake built from the same file gives the same ids
    other = type(lake).at(tmp_path / "other")
    run_stages(other, src)
    assert {d["pair_id"] for d in rows(other, "silver_decisions", order="raw_id")} == set(ids.values())


def test_contaminated_pairs_share_a_13_gram_with_a_benchmark_prompt(lake, tmp_path):
    (tmp_path / "bench.jsonl").write_text(json.dumps({"question": BENCH}) + "\n")
    words = BENCH.split()
    write_jsonl(tmp_path / "a.jsonl", [
        {"prompt": "My teacher asked: " + " ".join(words[2:15]).upper() + "?", "chosen": "a", "rejected": "b"},
        {"prompt": " ".join(words[:12]), "chosen": "a", "rejected": "b"},  # only 12 words in common
        {"prompt": "something else entirely", "chosen": "a", "rejected": "b"},
    ])
    src = write_sources(tmp_path / "s.yaml", [{"name": "a", "path": "a.jsonl", "shape": "prompt_chosen_rejected"}],
                        benchmark_prompts=["bench.jsonl"], field="question")
    _, silver = run_stages(lake, src)
    assert silver.reasons == {"contaminated": 1}
    (q,) = rows(lake, "silver_quarantine")
    assert q["source_row"] == 1 and q["reason"] == "contaminated"


def test_every_raw_row_is_in_exactly_one_of_silver_or_quarantine(lake, tmp_path):
    records = _pairs(50) + _pairs(10) + [{"prompt": "x", "chosen": "", "rejected": "y"}]
    write_jsonl(tmp_path / "a.jsonl", records)
    src = write_sources(tmp_path / "s.yaml", [{"name": "a", "path": "a.jsonl", "shape": "prompt_chosen_rejected"}])
    _, silver = run_stages(lake, src)
    raw_ids = {r["raw_id"] for r in rows(lake, "raw_pairs")}
    kept = {r["raw_id"] for r in rows(lake, "silver_pairs")}
    out = {r["raw_id"] for r in rows(lake, "silver_quarantine")}
    assert kept.isdisjoint(out) and kept | out == raw_ids
    assert (silver.silver_rows, silver.reasons) == (50, {"duplicate": 10, "empty_response": 1})
    assert len({r["pair_id"] for r in rows(lake, "silver_pairs")}) == 50


def test_rerun_reuses_finished_work_and_rebuilds_after_a_change(lake, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", _pairs(20))
    src = write_sources(tmp_path / "s.yaml", [{"name": "a", "path": "*.jsonl", "shape": "prompt_chosen_rejected"}])
    first_ingest, first = run_stages(lake, src)
    again_ingest, again = run_stages(lake, src)
    assert not first.reused and again.reused
    assert [f.reused for f in again_ingest.files] == [True]
    write_jsonl(tmp_path / "b.jsonl", _pairs(5, prefix="new"))
    third_ingest, third = run_stages(lake, src)
    assert sorted(f.reused for f in third_ingest.files) == [False, True]
    assert not third.reused and third.silver_rows == 25


def test_many_buckets_give_exactly_the_one_bucket_result(tmp_path):
    from synpref.lake import Lake

    records = _pairs(300) + _pairs(120) + [{"prompt": "x", "chosen": " ", "rejected": "y"}] * 3
    write_jsonl(tmp_path / "a.jsonl", records)
    src = write_sources(tmp_path / "s.yaml", [{"name": "a", "path": "a.jsonl", "shape": "prompt_chosen_rejected"}])
    results = {}
    for rows_per_bucket in (1_000_000, 37):
        lake = Lake.at(tmp_path / f"lake{rows_per_bucket}")
        config = load_sources(src)
        from synpref.raw.ingest import ingest_sources

        ingest_sources(lake, config)
        summary = build_silver(lake, config.decontamination, rows_per_bucket=rows_per_bucket)
        decisions = sorted((d["raw_id"], d["pair_id"], d["reason"], d["duplicate_of"])
                           for d in rows(lake, "silver_decisions", order="raw_id"))
        results[rows_per_bucket] = (summary.buckets, summary.silver_rows, summary.reasons, decisions)
    one, many = results[1_000_000], results[37]
    assert one[0] == 1 and many[0] == 12
    assert one[1:] == many[1:]
    assert one[1] == 300 and one[2] == {"duplicate": 120, "empty_response": 3}
