"""human_labels: append-only and deduplicated on label_id, whether labels come through the
journal (sealed once, dead segments recovered, unfinished lines set aside) or append_labels."""

from __future__ import annotations

import json

import pytest

from support.annotation import pair_ids, silver_lake, simple_records, stored_labels
from conftest import assert_violation_fails, violations_parametrized
from synpref.gold.human_labels import (LabelError, append_labels, rejected_lines_path, seal, stored_rows,
                                        unsealed_dead_lines)
from synpref.gold.label_journal import LabelJournal, journal_dir, segment_files
from synpref.checks.quality import validate_table


@pytest.fixture
def labelled_lake(lake, tmp_path):
    silver_lake(lake, tmp_path, simple_records(6))
    return lake


def _web_label(label_id: str, pair_id: str, annotator: str = "ann", choice: str = "chosen") -> dict:
    return {"label_id": label_id, "pair_id": pair_id, "annotator": annotator, "choice": choice,
            "shown_order": "rejected_first", "comment": None, "seconds": 7.5,
            "labelled_at": "2026-01-02T03:04:05+00:00", "guideline_version": "annotation-v1", "simulated": False,
            "source": "web", "recorded_at": "2026-01-02T03:04:05+00:00"}


def test_append_labels_stores_each_label_once(labelled_lake):
    lake = labelled_lake
    ids = pair_ids(lake)
    labels = [{"pair_id": ids[0], "annotator": "a", "choice": "chosen", "seconds": "3.5"},
              {"pair_id": ids[1], "annotator": "a", "choice": "cannot_decide", "comment": "both wrong"},
              {"pair_id": ids[0], "annotator": "sim", "choice": "rejected", "simulated": True,
               "label_id": "sim-1", "labelled_at": "2026-03-01T10:00:00Z"}]
    assert append_labels(lake, labels, source="test") == (3, 0)
    assert append_labels(lake, labels, source="test") == (0, 3)  # derived and given ids alike
    stored = {r["annotator"] + r["pair_id"]: r for r in stored_labels(lake)}
    assert len(stored) == 3 == stored_rows(lake)
    first = stored["a" + ids[0]]
    assert first["seconds"] == 3.5 and first["source"] == "test" and first["simulated"] is False
    assert first["shown_order"] is None and first["recorded_at"] is not None
    sim = stored["sim" + ids[0]]
    assert sim["simulated"] is True and sim["label_id"] == "sim-1" and sim["labelled_at"].year == 2026
    assert stored["a" + ids[1]]["comment"] == "both wrong"


@pytest.mark.parametrize("bad,message", [
    ({"pair_id": "nope", "annotator": "a", "choice": "chosen"}, "is not in silver_pairs"),
    ({"annotator": "a", "choice": "chosen"}, "pair_id is missing"),
    ({"pair_id": "{p}", "annotator": " ", "choice": "chosen"}, "annotator is missing"),
    ({"pair_id": "{p}", "annotator": "a", "choice": "maybe"}, "choice 'maybe' is not one of"),
    ({"pair_id": "{p}", "annotator": "a", "choice": "chosen", "shown_order": "left"}, "shown_order 'left'"),
    ({"pair_id": "{p}", "annotator": "a", "choice": "chosen", "seconds": -1}, "negative"),
    ({"pair_id": "{p}", "annotator": "a", "choice": "chosen", "labelled_at": "yesterday"}, "not an ISO-8601"),
])
def test_a_bad_label_is_refused_with_its_reason_and_nothing_is_written(labelled_lake, bad, message):
    pid = pair_ids(labelled_lake)[0]
    good = {"pair_id": pid, "annotator": "a", "choice": "chosen"}
    bad = {k: v.format(p=pid) if isinstance(v, str) else v for k, v in bad.items()}
    with pytest.raises(LabelError, match=message):
        append_labels(labelled_lake, [good, bad])
    assert not labelled_lake.has_table("human_labels")


def test_journal_lines_are_sealed_once_and_the_segment_rotated(labelled_lake):
    lake = labelled_lake
    ids = pair_ids(lake)
    journal = LabelJournal(lake)
    for i, pid in enumerate(ids[:3]):
        journal.append(_web_label(f"w{i}", pid))
    journal.append(_web_label("w0", ids[0]))  # a resubmitted label: same id
    first_segment = journal.path
    summary = seal(lake, journal)
    assert (summary.sealed, summary.duplicates, summary.removed) == (3, 1, 1)
    assert journal.path != first_segment and not first_segment.exists()  # rotated, old one sealed + removed
    journal.append(_web_label("w3", ids[3]))
    assert seal(lake).sealed == 1  # a live segment is read (and kept: its server still writes there)
    assert journal.path.exists() and seal(lake).sealed == 0
    assert seal(lake, journal).sealed == 0
    labels = stored_labels(lake)
    assert sorted(r["label_id"] for r in labels) == ["w0", "w1", "w2", "w3"]
    assert labels[0]["shown_order"] == "rejected_first" and labels[0]["guideline_version"] == "annotation-v1"
    journal.close()
    assert seal(lake).removed == 1 and segment_files(lake) == []


def test_a_dead_servers_segment_is_recovered_and_its_unfinished_line_set_aside(labelled_lake):
    lake = labelled_lake
    ids = pair_ids(lake)
    folder = journal_dir(lake)
    folder.mkdir(parents=True)
    # what a SIGKILLed server leaves: whole lines, then one cut off while being written
    lines = [json.dumps(_web_label(f"d{i}", pid)) for i, pid in enumerate(ids[:2])]
    (folder / "segment-1-1-dead.jsonl").write_text("\n".join(lines) + "\n" + lines[0][:40])
    assert unsealed_dead_lines(lake) == 2
    summary = seal(lake)
    assert (summary.sealed, summary.removed, summary.rejected_lines) == (2, 1, 1)
    assert segment_files(lake) == [] and unsealed_dead_lines(lake) == 0
    (kept,) = [json.loads(line) for line in rejected_lines_path(lake).read_text().splitlines()]
    assert "unfinished line" in kept["reason"] and kept["text"] == lines[0][:40]
    assert sorted(r["label_id"] for r in stored_labels(lake)) == ["d0", "d1"]


def test_sealing_sets_aside_a_label_whose_pair_is_not_in_the_lake_as_import_refuses_it(labelled_lake):
    lake = labelled_lake
    ids = pair_ids(lake)
    stranger = _web_label("w-stranger", "no-such-pair")
    with pytest.raises(LabelError, match="'no-such-pair' is not in silver_pairs"):
        append_labels(lake, [stranger])  # import refuses it
    journal = LabelJournal(lake)
    for label in (_web_label("w0", ids[0]), stranger, _web_label("w1", ids[1]), _web_label("w0", ids[0])):
        journal.append(label)
    # while its server lives, the segment is read but its stranger is left there, not set aside each time
    for _ in range(2):
        live = seal(lake)
        assert (live.sealed + live.duplicates, live.rejected_lines, live.lines) == (3, 0, 3)
    assert not rejected_lines_path(lake).exists()
    journal.close()
    dead = seal(lake)
    assert (dead.sealed, dead.duplicates, dead.rejected_lines, dead.unknown_pairs, dead.lines) == (0, 3, 1, 1, 4)
    assert dead.lines == dead.sealed + dead.duplicates + dead.rejected_lines and segment_files(lake) == []
    (kept,) = [json.loads(line) for line in rejected_lines_path(lake).read_text().splitlines()]
    assert kept["reason"] == "pair_id 'no-such-pair' is not in silver_pairs"
    assert json.loads(kept["text"]) == stranger  # the line as journaled, whole: nothing lost
    assert sorted(r["label_id"] for r in stored_labels(lake)) == ["w0", "w1"]


def test_a_journal_write_that_fails_leaves_no_half_line(labelled_lake, monkeypatch):
    import os

    lake = labelled_lake
    journal = LabelJournal(lake)
    journal.append(_web_label("ok", pair_ids(lake)[0]))
    real_write = os.write

    def half_then_fail(fd, data):  # the disk fills up halfway through a line
        real_write(fd, bytes(data[:10]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_fail)
    with pytest.raises(OSError):
        journal.append(_web_label("lost", pair_ids(lake)[1]))
    monkeypatch.undo()
    journal.append(_web_label("next", pair_ids(lake)[2]))
    journal.close()
    assert journal.path.read_text().count("\n") == 2
    assert seal(lake).rejected_lines == 0
    assert sorted(r["label_id"] for r in stored_labels(lake)) == ["next", "ok"]


def test_human_labels_pass_their_suite(labelled_lake):
    lake = labelled_lake
    ids = pair_ids(lake)
    journal = LabelJournal(lake)
    for i, pid in enumerate(ids):
        journal.append(_web_label(f"w{i}", pid, choice=("chosen", "rejected", "cannot_decide")[i % 3]))
    journal.close()
    seal(lake)
    append_labels(lake, [{"pair_id": pid, "annotator": "sim", "choice": "chosen", "simulated": True} for pid in ids])
    v = validate_table(lake, "human_labels", batch_rows=5, build_docs=False)
    assert v.rows == 12 and v.success and not v.failed(blocking=False), v.outcomes


VIOLATIONS = [
    ("human_labels", "select * from {t} union all (select * from {t} limit 2)",
     "expect_column_values_to_be_unique(label_id)", True),
    ("human_labels", "select * replace ('maybe' as choice) from {t}", "expect_column_values_to_be_in_set(choice)",
     True),
    ("human_labels", "select * replace (null as shown_order) from {t}",
     "expect_column_values_to_be_in_set(web_label_without_order)", True),
    ("human_labels", "select * replace (null as annotator) from {t}",
     "expect_column_values_to_not_be_null(annotator)", True),
    ("human_labels", "select * replace (0.5 as seconds) from {t}",
     "expect_column_values_to_be_in_set(under_two_seconds)", False),
    ("human_labels", "select * replace ('cannot_decide' as choice) from {t}",
     "expect_column_values_to_be_in_set(choice)", False),
]


@violations_parametrized(VIOLATIONS)
def test_each_planted_violation_fails_its_expectation(labelled_lake, table, select, expectation, blocking):
    lake = labelled_lake
    journal = LabelJournal(lake)
    for i, pid in enumerate(pair_ids(lake)):
        journal.append(_web_label(f"w{i}", pid))
    journal.close()
    seal(lake)
    assert_violation_fails(lake, table, select, expectation, blocking)
