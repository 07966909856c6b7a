"""Labelling elsewhere: `synpref annotate export` of the queue and the labels, and `import` of
files in each documented mapping (SynPref, Argilla 2.x, Label Studio), JSONL and CSV."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from click.testing import CliRunner

from support.annotation import silver_lake, silver_texts, simple_records, stored_labels
from dagster_project.cli import main
from synpref.gold.annotation_queue import queue_for_humans
from synpref.gold.human_labels import LabelError
from synpref.gold.human_labels import seal
from synpref.gold.label_io import export_rows, import_labels, resolve_choice
from synpref.lake import Lake


@pytest.fixture
def tasks(lake, tmp_path):
    """Six queued pairs, exported as tasks (JSONL) by the CLI."""
    silver_lake(lake, tmp_path, simple_records(6))
    queue_for_humans(lake, "test", select_sql="select pair_id from silver_pairs")
    out = tmp_path / "tasks.jsonl"
    result = CliRunner().invoke(main, ["annotate", "export", "--format", "jsonl", "-o", str(out),
                                       "--lake", str(lake.root)])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in out.read_text().splitlines()]


def _truth(lake, task: dict, picked: str) -> str:
    """What a pick of response_1 / response_2 means against the original label."""
    chosen, _ = silver_texts(lake)[task["pair_id"]]
    return "chosen" if task[picked] == chosen else "rejected"


def _by_pair(lake) -> dict[str, dict]:
    seal(lake)  # imports are journaled; the human_labels asset seals them
    return {r["pair_id"]: r for r in stored_labels(lake)}


def test_exported_tasks_show_both_responses_in_a_recorded_order(lake, tasks):
    texts = silver_texts(lake)
    assert len(tasks) == 6 and {t["shown_order"] for t in tasks} <= {"chosen_first", "rejected_first"}
    for t in tasks:
        chosen, rejected = texts[t["pair_id"]]
        expected = (chosen, rejected) if t["shown_order"] == "chosen_first" else (rejected, chosen)
        assert (t["response_1"], t["response_2"]) == expected and t["prompt"].startswith("user: Question")
    assert export_rows(lake, "queue") == tasks  # seeded: the same order every time
    with pytest.raises(ValueError, match="queue or labels"):
        export_rows(lake, "gold")


def test_import_synpref_columns_jsonl_is_idempotent(lake, tasks, tmp_path):
    rows = [{"pair_id": t["pair_id"], "annotator": "ext-1", "choice": "response_1" if i % 2 else "response_2",
             "shown_order": t["shown_order"], "seconds": 12, "labelled_at": "2026-02-01T09:00:00Z"}
            for i, t in enumerate(tasks)]
    rows.append({"pair_id": tasks[0]["pair_id"], "annotator": "ext-2", "choice": "cannot_decide"})
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert import_labels(lake, path, "synpref") == (7, 0)
    assert import_labels(lake, path, "synpref") == (0, 7)
    assert not lake.has_table("human_labels")  # journaled, as the annotation page's labels are
    assert seal(lake).sealed == 7  # what the human_labels asset does
    assert import_labels(lake, path, "synpref") == (0, 7)  # stored now: still known
    stored = [r for r in stored_labels(lake) if r["annotator"] == "ext-1"]
    by_pair = {t["pair_id"]: t for t in tasks}
    for i, r in enumerate(sorted(stored, key=lambda r: [t["pair_id"] for t in tasks].index(r["pair_id"]))):
        assert r["choice"] == _truth(lake, by_pair[r["pair_id"]], "response_1" if i % 2 else "response_2")
        assert r["source"] == "import:synpref" and r["seconds"] == 12.0


def test_import_argilla_flattened_jsonl_nested_json_and_csv(lake, tasks, tmp_path):
    t0, t1, t2 = tasks[:3]
    flat = {"id": "rec-0", "status": "completed", "_server_id": "9f1c", "prompt": t0["prompt"],
            "response_1": t0["response_1"], "response_2": t0["response_2"], "pair_id": t0["pair_id"],
            "shown_order": t0["shown_order"],
            "preference.responses": ["response_1", "response_2"], "preference.responses.users": ["u1", "u2"],
            "preference.responses.status": ["submitted", "draft"],
            "comment.responses": ["clear win"], "comment.responses.users": ["u1"]}
    (tmp_path / "argilla.jsonl").write_text(json.dumps(flat) + "\n")
    nested = [{"id": "rec-1", "_server_id": "7a2b", "fields": {"prompt": t1["prompt"]},
               "metadata": {"pair_id": t1["pair_id"], "shown_order": t1["shown_order"]},
               "responses": {"preference": [{"value": "response_2", "user_id": "u3"}],
                             "comment": [{"value": "close call", "user_id": "u3"}]},
               "suggestions": {}, "vectors": {}}]
    (tmp_path / "argilla.json").write_text(json.dumps(nested))
    with (tmp_path / "argilla.csv").open("w", newline="") as f:  # list cells as pandas writes them
        writer = csv.DictWriter(f, fieldnames=["id", "pair_id", "shown_order", "preference.responses",
                                               "preference.responses.users", "preference.responses.status"])
        writer.writeheader()
        writer.writerow({"id": "rec-2", "pair_id": t2["pair_id"], "shown_order": t2["shown_order"],
                         "preference.responses": "['cannot_decide']", "preference.responses.users": "['u4']",
                         "preference.responses.status": "['submitted']"})
    assert import_labels(lake, tmp_path / "argilla.jsonl", "argilla") == (1, 0)
    assert import_labels(lake, tmp_path / "argilla.json", "argilla") == (1, 0)
    assert import_labels(lake, tmp_path / "argilla.csv", "argilla") == (1, 0)
    assert import_labels(lake, tmp_path / "argilla.jsonl", "argilla") == (0, 1)
    labels = _by_pair(lake)
    assert (labels[t0["pair_id"]]["annotator"], labels[t0["pair_id"]]["comment"]) == ("argilla:u1", "clear win")
    assert labels[t0["pair_id"]]["choice"] == _truth(lake, t0, "response_1")
    assert labels[t1["pair_id"]]["choice"] == _truth(lake, t1, "response_2")
    assert labels[t1["pair_id"]]["comment"] == "close call"
    assert labels[t2["pair_id"]]["choice"] == "cannot_decide"
    assert {r["source"] for r in labels.values()} == {"import:argilla"}


def test_import_label_studio_json_export_and_csv_export(lake, tasks, tmp_path):
    t0, t1, t2 = tasks[:3]
    export = [{"id": 1, "data": {k: t0[k] for k in ("pair_id", "shown_order", "prompt", "response_1", "response_2")},
               "annotations": [
                   {"id": 101, "completed_by": {"id": 7, "email": "ann@example.org"}, "was_cancelled": False,
                    "lead_time": 31.5, "created_at": "2026-02-03T10:00:00.000000Z",
                    "updated_at": "2026-02-03T10:00:31.000000Z",
                    "result": [{"from_name": "preference", "to_name": "prompt", "type": "choices",
                                "value": {"choices": ["Candidate 2"]}},
                               {"from_name": "comment", "to_name": "prompt", "type": "textarea",
                                "value": {"text": ["second is right"]}}]},
                   {"id": 102, "completed_by": 8, "was_cancelled": True, "result": []}]}]
    (tmp_path / "ls.json").write_text(json.dumps(export))
    with (tmp_path / "ls.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["pair_id", "shown_order", "prompt", "response_1", "response_2", "id",
                                               "preference", "comment", "annotator", "annotation_id", "created_at",
                                               "updated_at", "lead_time"], quoting=csv.QUOTE_NONNUMERIC)
        writer.writeheader()
        for task, pick, annotation in ((t1, "Candidate 1", 201), (t2, "Candidate 2", 202)):
            writer.writerow({**{k: task[k] for k in ("pair_id", "shown_order", "prompt", "response_1", "response_2")},
                             "id": annotation - 200, "preference": pick, "comment": "", "annotator": "ls@example.org",
                             "annotation_id": annotation, "created_at": "2026-02-04T08:00:00.000000Z",
                             "updated_at": "2026-02-04T08:00:00.000000Z", "lead_time": 8.25})
    assert import_labels(lake, tmp_path / "ls.json", "label_studio") == (1, 0)  # the cancelled one is skipped
    assert import_labels(lake, tmp_path / "ls.csv", "label_studio") == (2, 0)
    assert import_labels(lake, tmp_path / "ls.csv", "label_studio") == (0, 2)
    labels = _by_pair(lake)
    first = labels[t0["pair_id"]]
    assert (first["annotator"], first["comment"], first["seconds"]) == ("label_studio:ann@example.org",
                                                                       "second is right", 31.5)
    assert first["choice"] == _truth(lake, t0, "response_2") and first["labelled_at"].second == 31
    assert labels[t1["pair_id"]]["choice"] == _truth(lake, t1, "response_1")
    assert labels[t2["pair_id"]]["choice"] == _truth(lake, t2, "response_2")
    assert labels[t2["pair_id"]]["seconds"] == 8.25 and labels[t2["pair_id"]]["comment"] is None


def test_a_bad_file_is_refused_with_its_reasons_and_nothing_is_written(lake, tasks, tmp_path):
    path = tmp_path / "bad.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["pair_id", "annotator", "choice", "shown_order"])
        writer.writeheader()
        writer.writerow({"pair_id": tasks[0]["pair_id"], "annotator": "x", "choice": "chosen"})
        writer.writerow({"pair_id": tasks[1]["pair_id"], "annotator": "x", "choice": "Candidate 3"})
        writer.writerow({"pair_id": tasks[2]["pair_id"], "annotator": "x", "choice": "response_1"})
    result = CliRunner().invoke(main, ["annotate", "import", str(path), "--lake", str(lake.root)])
    assert result.exit_code != 0
    assert "record 2: cannot read choice 'Candidate 3'" in result.output
    assert "record 3: choice 'response_1' names a position but the row has no shown_order" in result.output
    assert not lake.has_table("human_labels")
    with pytest.raises(ValueError, match="one choice"):
        resolve_choice(["Candidate 1", "Candidate 2"], "chosen_first")
    with pytest.raises(LabelError, match="not JSON"):
        (tmp_path / "broken.jsonl").write_text('{"pair_id": 1}\n{oops\n')
        import_labels(lake, tmp_path / "broken.jsonl")


def test_labels_exported_as_csv_import_into_another_lake_unchanged(lake, tasks, tmp_path):
    rows = [{"pair_id": t["pair_id"], "annotator": "a", "choice": ("chosen", "rejected", "cannot_decide")[i % 3],
             "shown_order": t["shown_order"], "comment": "ok, \"quoted\"\nsecond line" if i == 0 else None,
             "seconds": 4.5, "simulated": i == 1} for i, t in enumerate(tasks)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    import_labels(lake, tmp_path / "in.jsonl")
    seal(lake)
    out = tmp_path / "labels.csv"
    result = CliRunner().invoke(main, ["annotate", "export", "--what", "labels", "--format", "csv", "-o", str(out),
                                       "--lake", str(lake.root)])
    assert result.exit_code == 0, result.output
    other = Lake.at(tmp_path / "other")
    shutil.copytree(lake.table_dir("silver_pairs"), other.table_dir("silver_pairs"))
    result = CliRunner().invoke(main, ["annotate", "import", str(out), "--lake", str(other.root)])
    assert result.exit_code == 0 and "imported 6 labels" in result.output, result.output
    def as_stored(labels):  # recorded_at: when a row entered that lake
        return [{k: v for k, v in r.items() if k != "recorded_at"} for r in labels]

    assert as_stored(stored_labels(other)) == as_stored(stored_labels(lake))
