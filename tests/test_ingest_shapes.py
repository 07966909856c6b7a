"""Each shape and format maps to the normalised pair schema."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq

from conftest import rows, run_stages, write_jsonl, write_sources

CONV = [{"role": "user", "content": "What is 2+2?"}]


def test_prompt_chosen_rejected_with_dotted_paths_from_parquet(lake, tmp_path):
    table = pa.table({
        "question": [{"text": "Name a prime.", "lang": "en"}],
        "chosen": [{"answer": "7 is prime."}],
        "rejected": [{"answer": "8 is prime."}],
        "sys": ["Be brief."],
    })
    pq.write_table(table, tmp_path / "p.parquet")
    src = write_sources(tmp_path / "s.yaml", [{
        "name": "nested", "path": "p.parquet", "shape": "prompt_chosen_rejected",
        "columns": {"prompt": "question.text", "chosen": "chosen.answer", "rejected": "rejected.answer",
                    "system": "sys"}}])
    ingest, silver = run_stages(lake, src)
    (row,) = rows(lake, "raw_pairs")
    assert row["conversation"] == [{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "Name a prime."}]
    assert (row["chosen"], row["rejected"]) == ("7 is prime.", "8 is prime.")
    assert row["source"] == "nested" and row["source_row"] == 1
    assert silver.silver_rows == 1


def test_conversational_implicit_and_explicit_prompt_jsonl_gz(lake, tmp_path):
    implicit = {"chosen": CONV + [{"role": "assistant", "content": "4"}],
                "rejected": CONV + [{"role": "assistant", "content": "5"}]}
    explicit = {"prompt": [{"role": "user", "content": "Hi"}],
                "chosen": [{"role": "assistant", "content": "Hello!"}],
                "rejected": [{"role": "assistant", "content": "Go away."}]}
    with gzip.open(tmp_path / "c.jsonl.gz", "wt") as f:
        f.write(json.dumps(implicit) + "\n" + json.dumps(explicit) + "\n")
    src = write_sources(tmp_path / "s.yaml", [{"name": "trl", "path": "c.jsonl.gz", "shape": "conversational"}])
    run_stages(lake, src)
    first, second = rows(lake, "raw_pairs")
    assert first["conversation"] == CONV and (first["chosen"], first["rejected"]) == ("4", "5")
    assert first["rejected_conversation"] is None  # same conversation on both sides
    assert second["conversation"] == [{"role": "user", "content": "Hi"}]
    assert (second["chosen"], second["rejected"]) == ("Hello!", "Go away.")


def test_hh_transcript_splits_turns(lake, tmp_path):
    shared = "\n\nHuman: hi there\n\nAssistant: hello\n\nHuman: tell me a joke"
    write_jsonl(tmp_path / "hh.jsonl", [{"chosen": shared + "\n\nAssistant: Why did the chicken...",
                                         "rejected": shared + "\n\nAssistant: No."}])
    src = write_sources(tmp_path / "s.yaml", [{"name": "hh", "path": "hh.jsonl", "shape": "hh_transcript"}])
    run_stages(lake, src)
    (row,) = rows(lake, "raw_pairs")
    assert row["conversation"] == [{"role": "user", "content": "hi there"},
                                   {"role": "assistant", "content": "hello"},
                                   {"role": "user", "content": "tell me a joke"}]
    assert (row["chosen"], row["rejected"]) == ("Why did the chicken...", "No.")


def test_labelled_outputs_json_array_picks_the_labelled_better_output(lake, tmp_path):
    (tmp_path / "l.json").write_text(json.dumps([
        {"input": "Q1", "output_1": "good", "output_2": "bad", "label": 1},
        {"input": "Q2", "output_1": "bad", "output_2": "good", "label": 2},
    ]))
    src = write_sources(tmp_path / "s.yaml", [{"name": "lb", "path": "l.json", "shape": "labelled_outputs",
                                              "columns": {"prompt": "input"}}])
    run_stages(lake, src)
    got = [(r["conversation"][0]["content"], r["chosen"], r["rejected"]) for r in rows(lake, "raw_pairs")]
    assert got == [("Q1", "good", "bad"), ("Q2", "good", "bad")]


def test_hf_datasets_folder_and_split(lake, tmp_path):
    import datasets

    data = {"prompt": ["P1", "P2"], "chosen": ["yes", "sure"], "rejected": ["no", "nope"]}
    datasets.Dataset.from_dict(data).save_to_disk(str(tmp_path / "ds"))
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(data)}).save_to_disk(str(tmp_path / "dd"))
    src = write_sources(tmp_path / "s.yaml", [
        {"name": "ds", "path": "ds", "shape": "prompt_chosen_rejected"},
        {"name": "dd", "path": "dd", "shape": "prompt_chosen_rejected", "split": "train",
         "format": "hf_dataset"},
    ])
    ingest, silver = run_stages(lake, src)
    assert ingest.raw == 4 and ingest.quarantined == 0
    # the same pairs from two sources are one pair in silver: the first occurrence is kept
    assert silver.silver_rows == 2 and silver.reasons == {"duplicate": 2}
