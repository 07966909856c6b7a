"""The demo generator: reproducible files the project's own ingest reads, with known planted defects."""

import gzip
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from synpref.demo import chunks, generate_demo
from synpref.raw.ingest import ingest_sources
from synpref.lake import Lake
from synpref.raw.sources import load_sources

PAIRS = 2000
DATA_FILES = ("chat.jsonl.gz", "hh.jsonl", "labelled.json", "prompts.parquet", "truth.parquet")
ALL_FILES = DATA_FILES + ("sources.yaml", "benchmark_prompts.jsonl")
# truth defect -> the ingest quarantine reason it must produce
INGEST_REASON = {"malformed_json": "invalid_json", "missing_field": "missing_field",
                 "unknown_role": "unknown_role", "invalid_label": "invalid_label"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    summary = generate_demo(out, pairs=PAIRS, seed=7)
    truth = pq.read_table(out / "truth.parquet").to_pylist()
    return out, summary, truth


@pytest.fixture(scope="module")
def ingested(generated, tmp_path_factory):
    out, _, _ = generated
    lake = Lake.at(tmp_path_factory.mktemp("lake"))
    summary = ingest_sources(lake, load_sources(out / "sources.yaml"))
    return lake, summary


def _rows(lake: Lake, table: str) -> list[dict]:
    return [row for f in lake.table_files(table) for row in pq.read_table(f).to_pylist()]


def _bytes(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in ALL_FILES}


# --- reproducibility ---------------------------------------------------------------------------

def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    first = _bytes(generate_demo(tmp_path / "a", pairs=300, seed=1).out_dir)
    again = _bytes(generate_demo(tmp_path / "b", pairs=300, seed=1).out_dir)
    other = _bytes(generate_demo(tmp_path / "c", pairs=300, seed=2).out_dir)
    assert first == again
    for name in DATA_FILES:
        assert first[name] != other[name], name
    # The benchmark and the sources file do not depend on the seed.
    assert first["benchmark_prompts.jsonl"] == other["benchmark_prompts.jsonl"]


def test_worker_processes_do_not_change_the_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", 150)  # several chunks per file
    serial = generate_demo(tmp_path / "serial", pairs=1200, seed=3, workers=1)
    parallel = generate_demo(tmp_path / "parallel", pairs=1200, seed=3, workers=2)
    assert _bytes(serial.out_dir) == _bytes(parallel.out_dir)
    assert pq.ParquetFile(serial.out_dir / "prompts.parquet").num_row_groups == 2  # 300 rows in chunks of 150


def test_tiny_chunks_still_plant_valid_duplicates(tmp_path, monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", 3)  # chunks too small to hold every defect kind
    out = generate_demo(tmp_path, pairs=200, seed=5).out_dir
    truth = pq.read_table(out / "truth.parquet").to_pylist()
    clean = {(r["file"], r["pair_key"]) for r in truth if r["defect"] in ("none", "flipped")}
    duplicates = [r for r in truth if r["defect"] in ("duplicate", "whitespace_duplicate")]
    assert duplicates and all((r["file"], r["pair_key"]) in clean for r in duplicates)


def test_progress_is_reported_per_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(chunks, "CHUNK", 100)
    calls = []
    generate_demo(tmp_path, pairs=500, seed=0, progress=lambda done, total: calls.append((done, total)))
    assert len(calls) == 6  # chat 200, hh 100, labelled 75, parquet 125 rows, in chunks of 100
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert calls[-1] == (500, 500)


def test_too_few_pairs_is_refused(tmp_path):
    with pytest.raises(ValueError, match="pairs must be"):
        generate_demo(tmp_path, pairs=5)


# --- the files -----------------------------------------------------------------------------------

def test_summary_and_truth_agree(generated):
    out, summary, truth = generated
    assert summary.records == PAIRS == len(truth)
    assert summary.sources_file == out / "sources.yaml"
    assert summary.files == dict(Counter(row["file"] for row in truth))
    assert summary.files == {"chat.jsonl.gz": 800, "hh.jsonl": 400, "labelled.json": 300,
                             "prompts.parquet": 500}
    assert {k: v for k, v in summary.defects.items() if v} == dict(Counter(row["defect"] for row in truth))
    for file, n in summary.files.items():
        assert sorted(r["source_row"] for r in truth if r["file"] == file) == list(range(1, n + 1))


def test_files_have_the_documented_shapes(generated):
    out, _, _ = generated
    with gzip.open(out / "chat.jsonl.gz", "rt", encoding="utf-8") as f:
        chat = [json.loads(line) for line in f if _is_json(line)]
    user_turns = Counter(sum(m["role"] == "user" for m in r["chosen"]) for r in chat if "rejected" in r)
    assert set(user_turns) == {1, 2, 3}
    assert all(r["chosen"][-1]["role"] == "assistant" for r in chat)

    hh = [json.loads(line) for line in (out / "hh.jsonl").read_text().splitlines() if _is_json(line)]
    assert all(r["chosen"].startswith("\n\nHuman: ") for r in hh)

    labelled = json.loads((out / "labelled.json").read_text())
    assert set(labelled[0]) == {"input", "output_1", "output_2", "label"}

    table = pq.read_table(out / "prompts.parquet")
    assert table.column_names == ["question", "chosen", "rejected"]
    assert set(table.to_pylist()[0]["question"]) == {"text"}

    benchmark = _benchmark(out)
    assert len(benchmark) == 40 and len(set(benchmark)) == 40
    assert all(len(p.split()) >= 20 for p in benchmark)
    assert "# Generated demo data" in (out / "sources.yaml").read_text()


def _benchmark(out: Path) -> list[str]:
    return [json.loads(line)["prompt"] for line in (out / "benchmark_prompts.jsonl").read_text().splitlines()]


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
        return True
    except json.JSONDecodeError:
        return False


def test_tasks_are_varied_and_clean_pairs_never_collide(generated):
    out, _, truth = generated
    tasks = {r["task"] for r in truth}
    assert {"math", "coding", "factual_qa", "advice", "creative_writing", "safety"} <= tasks
    clean = [r for r in truth if r["defect"] in ("none", "flipped")]
    assert len({r["pair_key"] for r in clean}) == len(clean)
    prompts = [row["question"]["text"] for row in pq.read_table(out / "prompts.parquet").to_pylist()]
    assert len(set(prompts)) > 0.95 * len(prompts)  # only planted duplicates repeat


# --- planted defects -----------------------------------------------------------------------------

@pytest.mark.parametrize("defect, rate", [
    ("flipped", 0.10), ("duplicate", 0.02), ("whitespace_duplicate", 0.01), ("empty_response", 0.01),
    ("identical_responses", 0.005), ("contaminated", 0.01), ("invalid_label", 0.005),
])
def test_defect_rates_match_the_targets(generated, defect, rate):
    _, summary, _ = generated
    assert abs(summary.defects[defect] - rate * PAIRS) <= max(2, 0.1 * rate * PAIRS)


def test_malformed_records_are_only_in_jsonl_files(generated):
    _, summary, truth = generated
    malformed = [r for r in truth if r["defect"] in ("malformed_json", "missing_field", "unknown_role")]
    assert abs(len(malformed) - 0.015 * PAIRS) <= 3
    assert {r["file"] for r in malformed} == {"chat.jsonl.gz", "hh.jsonl"}
    assert {r["file"] for r in malformed if r["defect"] == "unknown_role"} == {"chat.jsonl.gz"}
    assert {r["file"] for r in truth if r["defect"] == "invalid_label"} == {"labelled.json"}


def test_truth_labels(generated):
    _, _, truth = generated
    by_defect = {}
    for r in truth:
        by_defect.setdefault(r["defect"], set()).add(r["true_better"])
    assert by_defect["none"] == by_defect["contaminated"] == {"chosen"}
    assert by_defect["flipped"] == {"rejected"}
    for defect in ("malformed_json", "missing_field", "unknown_role", "invalid_label", "identical_responses",
                   "empty_response"):
        assert by_defect[defect] == {None}, defect


def test_duplicates_repeat_an_earlier_clean_record_of_the_same_file(generated):
    _, _, truth = generated
    first_seen = {}
    for r in truth:  # truth is in file, then row, order
        key = (r["file"], r["pair_key"])
        if r["defect"] in ("duplicate", "whitespace_duplicate"):
            original = first_seen[key]
            assert original["defect"] in ("none", "flipped") and original["source_row"] < r["source_row"]
            assert (r["task"], r["true_better"]) == (original["task"], original["true_better"])
        else:
            assert key not in first_seen
            first_seen[key] = r


def test_planted_content_defects_are_visible_in_the_data(generated):
    out, _, truth = generated
    rows = pq.read_table(out / "prompts.parquet").to_pylist()
    benchmark = _benchmark(out)
    for r in (r for r in truth if r["file"] == "prompts.parquet"):
        row = rows[r["source_row"] - 1]
        prompt, chosen, rejected = row["question"]["text"], row["chosen"]["answer"], row["rejected"]["answer"]
        contaminated = any(b in prompt for b in benchmark)
        assert contaminated == (r["defect"] == "contaminated")
        assert (not chosen.strip() or not rejected.strip()) == (r["defect"] == "empty_response")
        assert (chosen == rejected) == (r["defect"] == "identical_responses")
        if r["defect"] == "whitespace_duplicate":
            assert "  " in prompt and prompt != " ".join(prompt.split())


# --- the project's ingest reads it -----------------------------------------------------------------

def test_ingest_reads_every_record(ingested, generated):
    _, summary = ingested
    _, _, truth = generated
    assert summary.read == len(truth)
    per_file = {Path(f.file).name: f.read for f in summary.files}
    assert per_file == dict(Counter(r["file"] for r in truth))


def test_ingest_quarantines_exactly_the_malformed_records(ingested, generated):
    lake, summary = ingested
    _, _, truth = generated
    expected = {(r["file"], r["source_row"]): INGEST_REASON[r["defect"]]
                for r in truth if r["defect"] in INGEST_REASON}
    quarantined = {(Path(q["source_file"]).name, q["source_row"]): q["reason"]
                   for q in _rows(lake, "ingest_quarantine")}
    assert summary.quarantined == len(expected)
    assert quarantined == expected


def test_raw_pairs_carry_the_planted_labels(ingested, generated):
    lake, _ = ingested
    _, _, truth = generated
    truth_at = {(r["file"], r["source_row"]): r for r in truth}
    raw = _rows(lake, "raw_pairs")
    assert len(raw) == sum(r["defect"] not in INGEST_REASON for r in truth)
    # Safety pairs: the better answer is the refusal, so `chosen` refuses unless the label was flipped.
    checked = 0
    for pair in raw:
        r = truth_at[(Path(pair["source_file"]).name, pair["source_row"])]
        if r["task"] == "safety" and r["defect"] in ("none", "flipped"):
            refuses = pair["chosen"].startswith(("I can't", "I won't", "I'd rather not"))
            assert refuses == (r["true_better"] == "chosen"), pair
            checked += 1
    assert checked > 100


def test_silver_finds_exactly_the_planted_content_defects(ingested, generated):
    from synpref.silver.pool import build_silver

    lake, _ = ingested
    out, _, truth = generated
    build_silver(lake, load_sources(out / "sources.yaml").decontamination)
    where = {p["raw_id"]: (Path(p["source_file"]).name, p["source_row"]) for p in _rows(lake, "raw_pairs")}
    found = {where[d["raw_id"]]: d["reason"] for d in _rows(lake, "silver_decisions")}
    silver_reason = {"none": None, "flipped": None, "duplicate": "duplicate",
                     "whitespace_duplicate": "duplicate", "empty_response": "empty_response",
                     "identical_responses": "identical_responses", "contaminated": "contaminated"}
    expected = {(r["file"], r["source_row"]): silver_reason[r["defect"]] for r in truth
                if r["defect"] not in INGEST_REASON}
    assert found == expected
