"""A corpus of bad inputs: each ends quarantined with its own reason, or as one clear
file-level error naming the file; nothing crashes and the counts reconcile."""

from __future__ import annotations

import gzip
import json

import pytest

from conftest import rows, run_stages, write_sources
from synpref.raw.readers import FileReadError
from synpref.raw.sources import SourcesError

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


# --- hostile records among good ones (issue 19): each is quarantined, the good ones land ---

DEEP = "[" * 10_000 + "]" * 10_000
HOSTILE = [  # (line, reason at ingest or None when the record is still a good pair)
    ('{"prompt":"a\\ud800b","chosen":"c","rejected":"d"}', "invalid_unicode"),
    ('{"prompt":"p","chosen":"c","rejected":"d2","extra":' + "7" * 5_000 + "}", None),  # unused: harmless
    ('{"prompt":"p","chosen":' + "7" * 5_000 + ',"rejected":"d"}', "wrong_type"),
    (DEEP, "invalid_json"),
    ('{"prompt":' + DEEP + ',"chosen":"c","rejected":"d"}', "invalid_json"),
]
HOSTILE_CONVERSATIONAL = [
    ('{"chosen":[{"role":["user"],"content":"x"},{"role":"assistant","content":"a"}],'
     '"rejected":[{"role":"user","content":"x"},{"role":"assistant","content":"b"}]}', "wrong_type"),
    ('{"chosen":[{"role":{"r":"user"},"content":"x"},{"role":"assistant","content":"a"}],'
     '"rejected":[{"role":"user","content":"x"},{"role":"assistant","content":"b"}]}', "wrong_type"),
    ('{"chosen":[{"role":"user","content":"x\\udfff"},{"role":"assistant","content":"a"}],'
     '"rejected":[{"role":"user","content":"x"},{"role":"assistant","content":"b"}]}', "invalid_unicode"),
]


def _good(i: int) -> str:
    return json.dumps({"prompt": f"Question {i}?", "chosen": f"Answer {i}.", "rejected": f"No {i}."})


def _good_conversational(i: int) -> str:
    return json.dumps({"chosen": [{"role": "user", "content": f"Hi {i}"}, {"role": "assistant", "content": "Hello!"}],
                       "rejected": [{"role": "user", "content": f"Hi {i}"}, {"role": "assistant", "content": "Go."}]})


def _interleave(cases, good) -> tuple[list[str], dict[int, str | None]]:
    """good, bad, good, bad, ..., good: returns the lines and {row: expected reason}."""
    lines, expected = [good(0)], {}
    for i, (line, reason) in enumerate(cases, start=1):
        lines += [line, good(i)]
        expected[len(lines) - 1] = reason
    return lines, expected


def _check_reconciled(lake, ingest, expected: dict[int, str | None], n_lines: int) -> None:
    quarantined = {q["source_row"]: q for q in rows(lake, "ingest_quarantine")}
    assert {r: q["reason"] for r, q in quarantined.items()} == {r: why for r, why in expected.items() if why}
    assert all(q["detail"] and len(q["detail"]) <= 2_100 for q in quarantined.values())
    assert ingest.read == n_lines == ingest.raw + ingest.quarantined
    landed = {r["source_row"] for r in rows(lake, "raw_pairs")}
    assert landed == set(range(1, n_lines + 1)) - set(quarantined)


def test_hostile_jsonl_records_are_quarantined_and_the_good_ones_land(lake, tmp_path):
    lines, expected = _interleave(HOSTILE, _good)
    (tmp_path / "h.jsonl").write_text("\n".join(lines) + "\n")
    conv, conv_expected = _interleave(HOSTILE_CONVERSATIONAL, _good_conversational)
    (tmp_path / "c.jsonl").write_text("\n".join(conv) + "\n")
    src = write_sources(tmp_path / "s.yaml", [{"name": "h", "path": "h.jsonl", "shape": "prompt_chosen_rejected"}])
    ingest, silver = run_stages(lake, src)
    _check_reconciled(lake, ingest, expected, len(lines))
    assert silver.raw_rows == ingest.raw == silver.silver_rows + silver.quarantined
    lake2 = type(lake).at(tmp_path / "lake2")
    src = write_sources(tmp_path / "s2.yaml", [{"name": "c", "path": "c.jsonl", "shape": "conversational"}])
    ingest, _ = run_stages(lake2, src)
    _check_reconciled(lake2, ingest, conv_expected, len(conv))


def test_a_record_too_deep_inside_a_json_array_costs_only_itself(lake, tmp_path):
    elements, expected = _interleave([(DEEP, "invalid_json"), ('{"a":' + DEEP + "}", "invalid_json"),
                                      ('{"prompt":"x\\ud800","chosen":"c","rejected":"d"}', "invalid_unicode")], _good)
    (tmp_path / "a.json").write_text("[\n" + ",\n".join(elements) + "\n]")
    src = write_sources(tmp_path / "s.yaml", [{"name": "a", "path": "a.json", "shape": "prompt_chosen_rejected"}])
    ingest, _ = run_stages(lake, src)
    _check_reconciled(lake, ingest, expected, len(elements))
    deep = rows(lake, "ingest_quarantine")[0]
    assert deep["raw_text"].startswith("[[[") and "nested deeper" in deep["detail"]


def test_a_json_array_that_breaks_midway_keeps_the_records_before_the_break(lake, tmp_path):
    (tmp_path / "b.json").write_text("[" + ",".join([_good(0), _good(1)]) + ', {"prompt": oops}, ' + _good(3) + "]")
    src = write_sources(tmp_path / "s.yaml", [{"name": "b", "path": "b.json", "shape": "prompt_chosen_rejected"}])
    ingest, _ = run_stages(lake, src)
    (q,) = rows(lake, "ingest_quarantine")
    assert (ingest.raw, q["source_row"], q["reason"]) == (2, 3, "truncated_file")
    assert "records from #3 on cannot be read" in q["detail"] and str(tmp_path / "b.json") in q["detail"]


def test_a_damaged_parquet_row_group_is_one_quarantine_row_and_the_rest_is_read(lake, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = 3_000
    table = pa.table({"prompt": [f"q{i} " + "x" * (i % 50) for i in range(n)],
                      "chosen": [f"c{i}" for i in range(n)], "rejected": [f"r{i}" for i in range(n)]})
    path = tmp_path / "d.parquet"
    pq.write_table(table, path, row_group_size=1_000)
    offset = pq.ParquetFile(path).metadata.row_group(1).column(0).data_page_offset
    data = bytearray(path.read_bytes())
    data[offset + 4: offset + 200] = b"\xab" * 196  # the second group's first page header
    path.write_bytes(bytes(data))
    src = write_sources(tmp_path / "s.yaml", [{"name": "d", "path": "d.parquet", "shape": "prompt_chosen_rejected"}])
    ingest, _ = run_stages(lake, src)
    (q,) = rows(lake, "ingest_quarantine")
    assert (q["reason"], q["source_row"]) == ("corrupt_data", 1_001)
    assert str(path) in q["detail"] and "row group 2 of 3 (rows 1,001-2,000)" in q["detail"]
    assert "1,000 records lost" in q["detail"]
    landed = [r["source_row"] for r in rows(lake, "raw_pairs")]
    assert landed == list(range(1, 1_001)) + list(range(2_001, 3_001))  # rows keep their place in the file
    assert ingest.read == ingest.raw + ingest.quarantined == 2_001


# --- the sources file: names, types, aliases, symlinks ---

def _sources_error(lake, tmp_path, text: str, match: str) -> None:
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(SourcesError, match=match):
        run_stages(lake, tmp_path / "s.yaml")


@pytest.mark.parametrize("name", ["../../../ESCAPED", "a/b", ".hidden", "a--b", "", "x" * 65, "名前"])
def test_a_source_name_that_is_not_a_plain_file_name_is_refused(lake, tmp_path, name):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_text(_good(0) + "\n")
    src = write_sources(tmp_path / "in" / "s.yaml", [{"name": name, "path": "a.jsonl",
                                                      "shape": "prompt_chosen_rejected"}])
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(SourcesError, match="name"):
        run_stages(lake, src)
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written, inside the lake or out


@pytest.mark.parametrize("text,match", [
    ("base: &b {x: 1}\nsources:\n  - {name: *b, path: a.jsonl, shape: prompt_chosen_rejected}\n",
     "`name` must be a non-empty string, not dict"),
    ("sources:\n  - {name: a, path: [a.jsonl], shape: prompt_chosen_rejected}\n", "`path` must be"),
    ("sources:\n  - {name: a, path: a.jsonl, shape: [x]}\n", "`shape` must be"),
    ("sources:\n  - {name: a, path: a.jsonl, shape: prompt_chosen_rejected, colums: {}}\n", "unknown keys"),
    ("sources:\n  - {name: a, path: a.jsonl, shape: prompt_chosen_rejected, max_field_chars: -1}\n",
     "positive integer"),
    ("sources: {name: a}\n", "must be a list"),
    ("- just\n- a list\n", "expected a mapping"),
    ("sources: [\n", "not valid YAML"),
])
def test_a_malformed_sources_file_says_what_is_wrong(lake, tmp_path, text, match):
    (tmp_path / "a.jsonl").write_text(_good(0) + "\n")
    _sources_error(lake, tmp_path, text, match)


def test_a_yaml_alias_bomb_is_refused_before_it_expands(lake, tmp_path):
    levels = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    text = "\n".join(levels) + "\nsources:\n  - {name: a, path: a.jsonl, shape: prompt_chosen_rejected, " \
                               "columns: {prompt: *a8}}\n"
    (tmp_path / "a.jsonl").write_text(_good(0) + "\n")
    _sources_error(lake, tmp_path, text, "expands to over 20,000 values")


def test_a_huge_value_in_a_reasons_detail_is_clipped(lake, tmp_path):
    role = "r" * 1_000_000
    line = json.dumps({"chosen": [{"role": role, "content": "x"}, {"role": "assistant", "content": "a"}],
                       "rejected": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "b"}]})
    (tmp_path / "r.jsonl").write_text(line + "\n")
    src = write_sources(tmp_path / "s.yaml", [{"name": "r", "path": "r.jsonl", "shape": "conversational"}])
    run_stages(lake, src)
    (q,) = rows(lake, "ingest_quarantine")
    assert q["reason"] == "unknown_role"
    assert len(q["detail"]) < 2_100 and q["detail"].endswith("chars in all]")


def test_symlinks_are_followed_unless_roots_confine_the_sources(lake, tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jsonl").write_text("line one of a file outside\n" + _good(1) + "\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "good.jsonl").write_text(_good(0) + "\n")
    (data / "link.jsonl").symlink_to(outside / "secret.jsonl")
    src = write_sources(data / "s.yaml", [{"name": "d", "path": "*.jsonl", "shape": "prompt_chosen_rejected"}])
    # by default the sources file is trusted like a script: the link is read, and named
    ingest, _ = run_stages(lake, src)
    assert ingest.raw == 2 and [f.file for f in ingest.files] == [str(data / "good.jsonl"), str(data / "link.jsonl")]
    # confined: the link resolves outside the roots, and the run stops before reading anything
    monkeypatch.setenv("SYNPREF_SOURCE_ROOTS", str(data))
    lake2 = type(lake).at(tmp_path / "lake2")
    with pytest.raises(SourcesError, match=f"link.jsonl resolves to {outside / 'secret.jsonl'}, outside"):
        run_stages(lake2, src)
    assert not lake2.has_table("raw_pairs")
    (data / "link.jsonl").unlink()
    (data / "sub").mkdir()
    write_sources(data / "sub" / "s.yaml", [{"name": "d", "path": "../../outside/*.jsonl",
                                             "shape": "prompt_chosen_rejected"}])
    with pytest.raises(SourcesError, match="outside the allowed roots"):  # `..` is resolved too
        run_stages(lake2, data / "sub" / "s.yaml")
    monkeypatch.setenv("SYNPREF_SOURCE_ROOTS", f"{data}:{outside}")
    ingest, _ = run_stages(lake2, data / "sub" / "s.yaml")
    assert ingest.raw == 1


def test_a_fifo_is_never_read_and_a_dangling_link_is_named(lake, tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.jsonl")  # reading it would block forever
    src = write_sources(tmp_path / "s.yaml", [{"name": "p", "path": "pipe.jsonl", "shape": "prompt_chosen_rejected"}])
    with pytest.raises(SourcesError, match="not a regular file or folder"):
        run_stages(lake, src)
    (tmp_path / "gone.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    src = write_sources(tmp_path / "s.yaml", [{"name": "g", "path": "gone.jsonl", "shape": "prompt_chosen_rejected"}])
    with pytest.raises(SourcesError, match="cannot read .*gone.jsonl: No such file or directory"):
        run_stages(lake, src)


# --- resume: a changed or vanished source file never leaves stale rows ---

def test_a_rerun_replaces_a_changed_file_and_drops_a_vanished_one(lake, tmp_path):
    (tmp_path / "a.jsonl").write_text("".join(_good(i) + "\n" for i in range(5)))
    (tmp_path / "b.jsonl").write_text("".join(_good(i) + "\n" for i in range(10, 13)))
    src = write_sources(tmp_path / "s.yaml", [{"name": "x", "path": "*.jsonl", "shape": "prompt_chosen_rejected"}])
    first, _ = run_stages(lake, src)
    assert first.raw == 8
    again, _ = run_stages(lake, src)
    assert all(f.reused for f in again.files) and again.raw == 8  # unchanged: nothing redone
    with (tmp_path / "a.jsonl").open("a") as f:
        f.write(_good(5) + "\n")
    (tmp_path / "b.jsonl").unlink()
    changed, silver = run_stages(lake, src)
    assert [(f.file, f.reused, f.raw) for f in changed.files] == [(str(tmp_path / "a.jsonl"), False, 6)]
    # in both tables, a's old part and b's part are gone
    assert sorted(p.rsplit("--", 1)[0] for p in changed.removed_parts) == [
        "ingest_quarantine/x--a.jsonl", "ingest_quarantine/x--b.jsonl", "raw_pairs/x--a.jsonl", "raw_pairs/x--b.jsonl"]
    raw = rows(lake, "raw_pairs")
    assert [(r["source_file"], r["source_row"]) for r in raw] == [(str(tmp_path / "a.jsonl"), i) for i in range(1, 7)]
    assert silver.raw_rows == 6 and len(rows(lake, "silver_pairs")) == 6
    assert not list((lake.root / "_manifests" / "raw").glob("x--b.jsonl--*"))


# --- pair_id: NFC-normalised, whitespace-collapsed, and this exact recipe ---

def _pair_id(conversation: list[dict], chosen: str, rejected: str) -> str:
    """The recipe of sql/macros.sql, written again independently (RE2's \\s is [\\t\\n\\f\\r ])."""
    import hashlib
    import re
    import unicodedata

    def norm(s: str) -> str:
        s = re.sub(r"[\t\n\f\r ][\t\n\f\r ]+|[\t\n\r\f]", " ", unicodedata.normalize("NFC", s))
        return s.strip(" ")

    conv = "\x1e".join(m["role"] + "\x1f" + norm(m["content"]) for m in conversation)
    return hashlib.md5((conv + "\x1d" + norm(chosen) + "\x1d" + norm(rejected)).encode()).hexdigest()


def test_pair_id_is_the_documented_hash_of_the_normalised_pair(lake, tmp_path):
    composed = {"prompt": "Caf\u00e9 au lait?", "chosen": "Oui,\tc'est  bon.", "rejected": "Non."}
    decomposed = {"prompt": "Cafe\u0301 au lait?", "chosen": "Oui, c'est bon. ", "rejected": "Non."}  # NFD, spaces
    other = {"prompt": "Tea?", "chosen": "Yes.", "rejected": "No."}
    write_jsonl = [json.dumps(r) for r in (composed, decomposed, other)]
    (tmp_path / "n.jsonl").write_text("\n".join(write_jsonl) + "\n")
    src = write_sources(tmp_path / "s.yaml", [{"name": "n", "path": "n.jsonl", "shape": "prompt_chosen_rejected"}])
    run_stages(lake, src)
    kept = {r["source_row"]: r["pair_id"] for r in rows(lake, "silver_pairs")}
    (dup,) = rows(lake, "silver_quarantine")
    assert (dup["source_row"], dup["reason"], dup["pair_id"]) == (2, "duplicate", kept[1])  # same pair once normalised
    assert kept[1] == _pair_id([{"role": "user", "content": composed["prompt"]}], composed["chosen"],
                               composed["rejected"])
    assert kept[3] == _pair_id([{"role": "user", "content": "Tea?"}], "Yes.", "No.")
    assert kept[1] != _pair_id([{"role": "user", "content": composed["prompt"]}], composed["rejected"],
                               composed["chosen"])  # the order of the two responses is part of the identity


# --- the fuzz: seeded mutations of valid records of every shape ---

FUZZ_RECORDS = 2_400  # per run: 600 per shape
SHAPE_RECORDS = {
    "prompt_chosen_rejected": lambda i: {"prompt": f"Question {i}?", "system": "Be brief.",
                                         "chosen": f"Answer {i}.", "rejected": f"No {i}."},
    "conversational": lambda i: {"prompt": [{"role": "user", "content": f"Hi {i}"}],
                                 "chosen": [{"role": "assistant", "content": f"Hello {i}!"}],
                                 "rejected": [{"role": "assistant", "content": "Go away."}]},
    "hh_transcript": lambda i: {"chosen": f"\n\nHuman: Hi {i}\n\nAssistant: Hello!",
                                "rejected": f"\n\nHuman: Hi {i}\n\nAssistant: Go."},
    "labelled_outputs": lambda i: {"prompt": f"Pick {i}", "output_1": "good", "output_2": f"bad {i}", "label": 1},
}
WEIRD_VALUES = [None, True, 0, -1, 2.5, float("inf"), "", " ", "x\ud800y", "\udfff", "\u0000", "é" * 3,
                [], {}, [None], [{"role": "user"}], [{"role": ["user"], "content": "x"}], {"role": "user"},
                {"content": {"nested": [1, 2]}}, "A" * 50_000]


def _paths(value, prefix=()):
    """Every (path) into a nested record, for structural mutations."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _set(record, path, new):
    if not path:
        return new
    target = record
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return record


def _mutate_value(rng, record):
    """A structural mutation: a wrong type, deep nesting, a huge number, a surrogate, a deletion."""
    import copy

    record = copy.deepcopy(record)
    path = rng.choice(list(_paths(record)))
    kind = rng.randrange(6)
    if kind == 0:
        return _set(record, path, copy.deepcopy(rng.choice(WEIRD_VALUES)))
    if kind == 1:
        return _set(record, path, json.loads("[" * 50 + "1" + "]" * 50) if rng.random() < 0.5 else "deep")
    if kind == 2 and path:
        parent = record
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]
        return record
    if kind == 3:
        return _set(record, path, rng.choice([10 ** 50, -(10 ** 20), 2 ** 63]))
    if kind == 4:
        return [record] if rng.random() < 0.5 else json.dumps(record)
    return record  # unchanged: a good record among the bad


def _dump(rng, value) -> bytes:
    text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
    return text.encode("utf-8", "surrogatepass")


def _mutate_bytes(rng, line: bytes) -> bytes:
    """A byte-level mutation of a JSON line: truncation, flips, inserted depth or digits."""
    kind = rng.randrange(6)
    if kind == 0 and len(line) > 2:
        return line[: rng.randrange(1, len(line))]
    if kind == 1:
        data = bytearray(line)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data).replace(b"\n", b" ")
    if kind == 2:
        return b"[" * 3_000 + line + b"]" * rng.choice([3_000, 2_999])
    if kind == 3:
        at = rng.randrange(len(line))
        return line[:at] + b"9" * rng.choice([4_400, 5_000]) + line[at:]
    if kind == 4:
        return line.replace(b'"', b'"\\ud83d', 1)  # a lone high surrogate escape, or broken JSON
    return line


def test_fuzzed_records_of_every_shape_never_crash_ingest_and_always_reconcile(lake, tmp_path):
    import random

    rng = random.Random(19)
    sources, expected_reads = [], 0
    per_shape = FUZZ_RECORDS // len(SHAPE_RECORDS)
    for shape, make in SHAPE_RECORDS.items():
        lines, elements = [], []
        for i in range(per_shape):
            value = _mutate_value(rng, make(i)) if rng.random() < 0.7 else make(i)
            line = _dump(rng, value)
            lines.append(_mutate_bytes(rng, line) if rng.random() < 0.5 else line)
            elements.append(_dump(rng, _mutate_value(rng, make(i))))
        (tmp_path / f"{shape}.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        # a JSON array takes the structural mutations (a byte flip would break the whole document)
        (tmp_path / f"{shape}.json").write_bytes(b"[" + b",\n".join(elements) + b"]")
        sources += [{"name": f"{shape}-jsonl", "path": f"{shape}.jsonl", "shape": shape},
                    {"name": f"{shape}-json", "path": f"{shape}.json", "shape": shape}]
        expected_reads += len(elements) + sum(1 for line in lines if line.strip())
    src = write_sources(tmp_path / "s.yaml", sources)
    ingest, silver = run_stages(lake, src)
    assert expected_reads >= 2 * FUZZ_RECORDS - 50  # only blank lines are not records
    assert ingest.read == expected_reads == ingest.raw + ingest.quarantined
    for f in ingest.files:
        assert f.read == f.raw + f.quarantined, f
    reasons = ingest.reasons()
    assert "unmappable_record" not in reasons, reasons  # every bad record met a rule that names it
    assert ingest.raw > 1_000 and ingest.quarantined > 1_000  # the mutations hit and missed
    assert {"invalid_json", "invalid_unicode", "wrong_type", "missing_field", "not_an_object"} <= set(reasons)
    assert silver.raw_rows == ingest.raw == silver.silver_rows + silver.quarantined
    # the rows on disk say the same as the summary
    assert len(rows(lake, "raw_pairs")) == ingest.raw and len(rows(lake, "ingest_quarantine")) == ingest.quarantined
