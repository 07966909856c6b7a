"""A corpus of bad inputs: each ends quarantined with its own reason, or as one clear
file-level error naming the file; nothing crashes and the counts reconcile."""

from __future__ import annotations

import gzip
import json

import pytest

from conftest import rows, run_stages, write_sources
from synpref.readers import FileReadError
from synpref.sources import SourcesError

GOOD = {"prompt": "Say hi.", "chosen": "Hi there!", "rejected": "No."}
CONV = [{"role": "user", "content": "Hello?"}]

# (kind, line bytes, shape, expected reason at ingest or in silver)
ROW_CASES = [
    ("bad_json", b'{"prompt": "x", "chosen": ', "prompt_chosen_rejected", "invalid_json"),
    ("not_an_object", b'["a", "b"]', "prompt_chosen_rejected", "not_an_object"),
    ("missing_field", json.dumps({"prompt": "x", "chosen": "y"}).encode(), "prompt_chosen_rejected",
     "missing_field"),
    ("wrong_type", json.dumps({"prompt": "x", "chosen": 42, "rejected": "y"}).encode(),
     "prompt_chosen_rejected", "wrong_type"),
    ("null_content", json.dumps({"prompt": "x", "chosen": None, "rejected": "y"}).encode(),
     "prompt_chosen_rejected", "null_content"),
    ("null_message_content", json.dumps({
        "chosen": [{"role": "user", "content": None}, {"role": "assistant", "content": "a"}],
        "rejected": CONV + [{"role": "assistant", "content": "b"}]}).encode(), "conversational", "null_content"),
    ("non_utf8", b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}', "prompt_chosen_rejected",
     "invalid_utf8"),
    ("field_5mb", json.dumps({"prompt": "x", "chosen": "a" * 5_000_000, "rejected": "b"}).encode(),
     "prompt_chosen_rejected", "field_too_large"),
    ("unknown_role", json.dumps({
        "chosen": [{"role": "robot", "content": "beep"}, {"role": "assistant", "content": "a"}],
        "rejected": CONV + [{"role": "assistant", "content": "b"}]}).encode(), "conversational", "unknown_role"),
    ("not_ending_in_assistant", json.dumps({"chosen": CONV, "rejected": CONV}).encode(), "conversational",
     "bad_conversation"),
    ("label_3", json.dumps({"prompt": "x", "output_1": "a", "output_2": "b", "label": 3}).encode(),
     "labelled_outputs", "invalid_label"),
    ("label_string", json.dumps({"prompt": "x", "output_1": "a", "output_2": "b", "label": "1"}).encode(),
     "labelled_outputs", "invalid_label"),
    ("no_transcript_markers", json.dumps({"chosen": "just text", "rejected": "other text"}).encode(),
     "hh_transcript", "bad_transcript"),
    ("identical_responses", json.dumps({"prompt": "x", "chosen": "same", "rejected": " same "}).encode(),
     "prompt_chosen_rejected", "identical_responses"),
    ("whitespace_only_response", json.dumps({"prompt": "x", "chosen": "  \n\t", "rejected": "b"}).encode(),
     "prompt_chosen_rejected", "empty_response"),
    ("transcripts_disagree", json.dumps({"chosen": "\n\nHuman: hi\n\nAssistant: a",
                                         "rejected": "\n\nHuman: bye\n\nAssistant: b"}).encode(),
     "hh_transcript", "conversation_mismatch"),
]


def _run_one(lake, tmp_path, line: bytes, shape: str):
    (tmp_path / "bad.jsonl").write_bytes(json.dumps(GOOD).encode() + b"\n" + line + b"\n")
    src = write_sources(tmp_path / "s.yaml", [{"name": "bad", "path": "bad.jsonl", "shape": shape}])
    return run_stages(lake, src)


@pytest.mark.parametrize("kind,line,shape,reason", ROW_CASES, ids=[c[0] for c in ROW_CASES])
def test_each_bad_row_is_quarantined_with_its_reason(lake, tmp_path, kind, line, shape, reason):
    ingest, silver = _run_one(lake, tmp_path, line, shape)
    quarantine = rows(lake, "ingest_quarantine") + rows(lake, "silver_quarantine")
    bad = [q for q in quarantine if q["source_row"] == 2]
    assert [q["reason"] for q in bad] == [reason]
    assert bad[0]["detail"]
    # counts reconcile across both stages: the good first line is never lost
    assert ingest.read == 2 == ingest.raw + ingest.quarantined
    assert silver.raw_rows == ingest.raw == silver.silver_rows + silver.quarantined


def test_raw_text_of_a_bad_line_is_kept(lake, tmp_path):
    _run_one(lake, tmp_path, b'{"prompt": oops}', "prompt_chosen_rejected")
    (q,) = rows(lake, "ingest_quarantine")
    assert q["raw_text"] == '{"prompt": oops}' and q["reason"] == "invalid_json"


def test_duplicate_rows_keep_the_first_and_quarantine_the_rest(lake, tmp_path):
    line = json.dumps(GOOD).encode()
    spaced = json.dumps({**GOOD, "chosen": "Hi   there! "}).encode()
    (tmp_path / "d.jsonl").write_bytes(b"\n".join([line, line, spaced]) + b"\n")
    src = write_sources(tmp_path / "s.yaml", [{"name": "d", "path": "d.jsonl", "shape": "prompt_chosen_rejected"}])
    _, silver = run_stages(lake, src)
    (kept,) = rows(lake, "silver_pairs")
    dups = rows(lake, "silver_quarantine")
    assert kept["source_row"] == 1 and kept["chosen"] == "Hi there!"
    assert [d["source_row"] for d in dups] == [2, 3]
    assert {d["reason"] for d in dups} == {"duplicate"}
    assert {d["pair_id"] for d in dups} == {kept["pair_id"]}
    assert {d["duplicate_of"] for d in dups} == {kept["raw_id"]}
    assert dups[1]["chosen"] == "Hi   there! "  # content kept as ingested


def test_bom_is_accepted(lake, tmp_path):
    (tmp_path / "bom.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    src = write_sources(tmp_path / "s.yaml", [{"name": "b", "path": "bom.jsonl", "shape": "prompt_chosen_rejected"}])
    ingest, _ = run_stages(lake, src)
    assert (ingest.raw, ingest.quarantined) == (1, 0)


def test_empty_file_is_recorded_not_lost(lake, tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    (tmp_path / "good.jsonl").write_text(json.dumps(GOOD) + "\n")
    src = write_sources(tmp_path / "s.yaml", [{"name": "e", "path": "*.jsonl", "shape": "prompt_chosen_rejected"}])
    ingest, _ = run_stages(lake, src)
    (q,) = rows(lake, "ingest_quarantine")
    assert q["reason"] == "empty_file" and q["source_file"].endswith("empty.jsonl")
    assert ingest.raw == 1


def test_truncated_gzip_keeps_the_rows_before_the_cut(lake, tmp_path):
    payload = "".join(json.dumps({**GOOD, "prompt": f"p{i}"}) + "\n" for i in range(2000))
    data = gzip.compress(payload.encode())
    (tmp_path / "t.jsonl.gz").write_bytes(data[: len(data) * 2 // 3])
    src = write_sources(tmp_path / "s.yaml", [{"name": "t", "path": "t.jsonl.gz", "shape": "prompt_chosen_rejected"}])
    ingest, _ = run_stages(lake, src)
    reasons = [q["reason"] for q in rows(lake, "ingest_quarantine")]
    assert reasons[-1] == "truncated_file"
    assert 0 < ingest.raw < 2000
    assert ingest.read == ingest.raw + ingest.quarantined


@pytest.mark.parametrize("name,content,fmt", [
    ("notgzip.jsonl.gz", b"this is not gzip at all\n", None),
    ("object.json", b'{"not": "an array"}', None),
    ("broken.json", b'[{"prompt": "x"', None),
    ("corrupt.parquet", b"PAR1 garbage", None),
    ("folder_not_dataset", None, "hf_dataset"),
])
def test_unreadable_file_fails_with_its_name(lake, tmp_path, name, content, fmt):
    target = tmp_path / name
    if content is None:
        target.mkdir()
        (target / "x.txt").write_text("not a dataset")
    else:
        target.write_bytes(content)
    source = {"name": "u", "path": name, "shape": "prompt_chosen_rejected"}
    if fmt:
        source["format"] = fmt
    src = write_sources(tmp_path / "s.yaml", [source])
    with pytest.raises(FileReadError, match=str(target)):
        run_stages(lake, src)


def test_glob_matching_nothing_names_the_pattern(lake, tmp_path):
    src = write_sources(tmp_path / "s.yaml", [{"name": "g", "path": "nothing/*.jsonl",
                                              "shape": "prompt_chosen_rejected"}])
    with pytest.raises(SourcesError, match="nothing/\\*.jsonl"):
        run_stages(lake, src)


def test_whole_corpus_in_one_file_reconciles(lake, tmp_path):
    lines = [json.dumps(GOOD).encode()] + [line for _, line, shape, _ in ROW_CASES if shape == "prompt_chosen_rejected"]
    (tmp_path / "all.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    src = write_sources(tmp_path / "s.yaml", [{"name": "all", "path": "all.jsonl", "shape": "prompt_chosen_rejected"}])
    ingest, silver = run_stages(lake, src)
    assert ingest.read == len(lines) == ingest.raw + ingest.quarantined
    assert silver.raw_rows == ingest.raw == silver.silver_rows + silver.quarantined
    assert silver.silver_rows == 1
    expected = {r for _, _, shape, r in ROW_CASES if shape == "prompt_chosen_rejected"}
    assert set(ingest.reasons()) | set(silver.reasons) == expected


@pytest.mark.parametrize("root,reason", [
    ("memory://lake", "memory:// cannot hold a lake"),  # one process's memory: other steps would not see it
    ("https://example.org/lake", "https:// cannot hold a lake"),  # read-only
    ("nosuch://bucket/lake", "nosuch:// cannot hold a lake"),
    ("gs://bucket/lake", "the gs:// filesystem is not installed"),  # gcsfs is not a dependency
])
def test_a_lake_root_url_no_store_can_hold_is_refused_with_the_reason(root, reason, tmp_path, monkeypatch):
    """Path() would take such a URL for a local folder named "nosuch:"; the lake refuses it, and
    the CLI says why instead of writing the lake somewhere unexpected."""
    from click.testing import CliRunner

    from dagster_project.cli import main
    from synpref.lake import Lake

    with pytest.raises(ValueError, match=reason):
        Lake.at(root)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["sql", "--lake", root, "select 1"])
    assert result.exit_code == 2 and reason in result.output
    assert list(tmp_path.iterdir()) == []  # nothing written under the current folder


def test_lake_roots_a_file_url_is_the_folder_and_s3_the_store(tmp_path):
    from pathlib import Path

    from synpref.lake import Lake

    assert Lake.at(f"file://{tmp_path}/lake").root == Path(tmp_path / "lake")
    store = Lake.at("s3://bucket/some/lake/")
    assert store.remote and str(store.root) == "s3://bucket/some/lake"
    assert not store.home.is_relative_to(tmp_path) and "bucket_some_lake" in store.home.name
