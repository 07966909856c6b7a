"""Labelling elsewhere: export the queue (or the labels) as JSONL / CSV, and import labels made in
another tool: SynPref's own columns, Argilla 2.x record exports, or Label Studio exports.

An exported task shows the two responses as response_1 / response_2 in a seeded random order
and carries that order (shown_order) with it; an imported answer that names a position
(response_1, "Candidate 2", 1, ...) is mapped back to the original label through it.
Column mappings: README "Labelling in another tool".
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator


from models.judge import chosen_position
from synpref.gold.annotation_queue import TABLE as QUEUE
from synpref.silver.attributes import register_latest_attributes
from synpref.lake.duck import connect as duck_connect, register_tables
from synpref.gold.human_labels import TABLE as LABELS, LabelError, submit_labels
from synpref.lake import Lake, atomic_path

FORMATS = ("jsonl", "csv")
MAPPINGS = ("synpref", "argilla", "label_studio")
POSITION = {"1": 1, "candidate 1": 1, "response 1": 1, "2": 2, "candidate 2": 2, "response 2": 2}
DIRECT = {"chosen": "chosen", "rejected": "rejected", "cannot decide": "cannot_decide", "undecided": "cannot_decide",
          "tie": "cannot_decide"}


# ---------------------------------------------------------------- export

def export_rows(lake: Lake, what: str, seed: int = 0) -> list[dict]:
    """The queue as tasks to label elsewhere (what='queue'), or human_labels as stored (what='labels')."""
    table = {"queue": QUEUE, "labels": LABELS}.get(what)
    if table is None:
        raise ValueError(f"export what: queue or labels, not {what!r}")
    if not lake.has_table(table):
        return []
    with duck_connect(lake) as con:
        register_tables(con, lake, temp=True)
        register_latest_attributes(con, lake)
        if what == "labels":
            cursor = con.execute("select * from human_labels order by recorded_at, label_id")
        else:
            cursor = con.execute(
                "select q.pair_id, q.priority, q.origin, s.conversation, s.chosen, s.rejected, a.task_category, "
                "a.objectivity, a.controversiality, a.desired_attributes, a.annotation_guideline "
                "from annotation_queue q join silver_pairs s using (pair_id) left join latest_attributes a "
                "using (pair_id) order by q.priority, q.queued_at, q.pair_id")
        columns = [d[0] for d in cursor.description]
        rows = [dict(zip(columns, r)) for r in cursor.fetchall()]
    return [_task(r, seed) for r in rows] if what == "queue" else [
        {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in r.items()} for r in rows]


def _task(r: dict, seed: int) -> dict:
    chosen_first = chosen_position(r["pair_id"], seed) == 1
    first, second = (r["chosen"], r["rejected"]) if chosen_first else (r["rejected"], r["chosen"])
    return {
        "pair_id": r["pair_id"], "shown_order": "chosen_first" if chosen_first else "rejected_first",
        "prompt": "\n\n".join(f"{m['role']}: {m['content']}" for m in r["conversation"]),
        "response_1": first, "response_2": second,
        "task_category": r["task_category"], "objectivity": r["objectivity"],
        "controversiality": r["controversiality"], "desired_attributes": "; ".join(r["desired_attributes"] or []),
        "annotation_guideline": r["annotation_guideline"], "priority": r["priority"], "origin": r["origin"],
        "conversation": json.dumps(r["conversation"], ensure_ascii=False),
    }


def write_rows(rows: list[dict], path: Path | None, fmt: str) -> None:
    """JSONL or CSV to a file (written atomically) or, with path None, to stdout."""
    if fmt not in FORMATS:
        raise ValueError(f"format: one of {', '.join(FORMATS)}")
    buffer = io.StringIO()
    if fmt == "jsonl":
        for row in rows:
            buffer.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    elif rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()}
                         for row in rows)
    if path is None:
        print(buffer.getvalue(), end="")
        return
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")


# ---------------------------------------------------------------- import

def read_rows(path: Path, fmt: str | None = None) -> list[dict]:
    """Records of a JSONL, JSON (an array) or CSV file; the format from the name unless given."""
    path = Path(path)
    fmt = fmt or {".csv": "csv", ".json": "json"}.get(path.suffix.lower(), "jsonl")
    text = path.read_text(encoding="utf-8-sig")
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(text)))
    if fmt == "json" or (fmt == "jsonl" and text.lstrip().startswith("[")):
        return json.loads(text)
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise LabelError(f"{path}:{number}: not JSON ({e})") from None
    return rows


@dataclass(frozen=True)
class Questions:
    """Names of the questions (Argilla) / control tags (Label Studio) in the labelling project."""
    preference: str = "preference"
    comment: str = "comment"


def resolve_choice(value, shown_order: str | None) -> str:
    """chosen | rejected | cannot_decide from an answer naming a label or a shown position."""
    if isinstance(value, list):
        if len(value) != 1:
            raise ValueError(f"expected one choice, got {value!r}")
        value = value[0]
    key = " ".join(str(value).strip().lower().replace("_", " ").replace("-", " ").split())
    if key in DIRECT:
        return DIRECT[key]
    if key.replace(" ", "") in {"response1", "response2", "candidate1", "candidate2"}:
        key = key.replace(" ", "")[:-1] + " " + key[-1]
    if key not in POSITION:
        raise ValueError(f"cannot read choice {value!r} (expected chosen/rejected/cannot_decide, or "
                         f"response_1/response_2/Candidate 1/Candidate 2 with a shown_order)")
    if shown_order not in ("chosen_first", "rejected_first"):
        raise ValueError(f"choice {value!r} names a position but the row has no shown_order")
    return "chosen" if (POSITION[key] == 1) == (shown_order == "chosen_first") else "rejected"


def _stable_id(*parts) -> str:
    return hashlib.md5(json.dumps([str(p) for p in parts]).encode()).hexdigest()


def _list_cell(value) -> list:
    """A list from JSON, from a CSV cell holding a JSON or Python list, or from a scalar."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return list(ast.literal_eval(value))
    return [value]


def from_synpref(row: dict, q: Questions) -> Iterator[dict]:
    label = {k: row.get(k) for k in ("label_id", "pair_id", "annotator", "shown_order", "comment", "seconds",
                                     "labelled_at", "guideline_version", "simulated", "source")}
    label["choice"] = resolve_choice(row.get("choice"), row.get("shown_order") or None)
    yield label


def from_argilla(row: dict, q: Questions) -> Iterator[dict]:
    """An Argilla 2.x record, nested (`records.to_json`, `to_list()`) or flattened (`to_list(flatten=True)`,
    `to_datasets()` then CSV): one label per submitted response to the preference question."""
    metadata = row.get("metadata") or {}
    pair_id = metadata.get("pair_id") or row.get("pair_id")
    shown = metadata.get("shown_order") or row.get("shown_order")
    if isinstance(row.get("responses"), dict):  # nested
        answers = [(r.get("user_id"), r.get("value"), r.get("status"))
                   for r in row["responses"].get(q.preference, [])]
        comments = {r.get("user_id"): r.get("value") for r in row["responses"].get(q.comment, [])}
    else:  # flattened: "<question>.responses", ".users", ".status" side by side
        key = f"{q.preference}.responses"
        values, users = _list_cell(row.get(key)), _list_cell(row.get(f"{key}.users"))
        status = _list_cell(row.get(f"{key}.status")) or [None] * len(values)
        answers = list(zip(users, values, status))
        comments = dict(zip(_list_cell(row.get(f"{q.comment}.responses.users")),
                            _list_cell(row.get(f"{q.comment}.responses"))))
    for user, value, status in answers:
        if status not in (None, "submitted"):  # drafts and discarded responses are no judgement
            continue
        yield {"label_id": _stable_id("argilla", row.get("id") or pair_id, user, q.preference),
               "pair_id": pair_id, "annotator": f"argilla:{user}", "shown_order": shown,
               "choice": resolve_choice(value, shown), "comment": comments.get(user)}


def from_label_studio(row: dict, q: Questions) -> Iterator[dict]:
    """A Label Studio task: the JSON export (data + annotations) or a CSV / JSON-MIN row (data columns
    beside one column per control tag and annotator, annotation_id, lead_time, created_at, updated_at)."""
    if isinstance(row.get("annotations"), list):
        data = row.get("data") or {}
        for ann in row["annotations"]:
            if ann.get("was_cancelled"):
                continue
            results = {r.get("from_name"): r.get("value", {}) for r in ann.get("result", [])}
            if q.preference not in results:
                continue
            who = ann.get("completed_by")
            who = who.get("email") or who.get("id") if isinstance(who, dict) else who
            comment = results.get(q.comment, {}).get("text")
            yield {"label_id": _stable_id("label_studio", ann.get("id")), "pair_id": data.get("pair_id"),
                   "annotator": f"label_studio:{who}", "shown_order": data.get("shown_order"),
                   "choice": resolve_choice(results[q.preference].get("choices"), data.get("shown_order")),
                   "comment": "\n".join(comment) if isinstance(comment, list) else comment,
                   "seconds": ann.get("lead_time"), "labelled_at": ann.get("updated_at") or ann.get("created_at")}
        return
    if row.get(q.preference) in (None, ""):
        return  # a task nobody labelled
    yield {"label_id": _stable_id("label_studio", row.get("annotation_id") or (row.get("id"), row.get("annotator"))),
           "pair_id": row.get("pair_id"), "annotator": f"label_studio:{row.get('annotator')}",
           "shown_order": row.get("shown_order"), "choice": resolve_choice(row[q.preference], row.get("shown_order")),
           "comment": row.get(q.comment) or None, "seconds": row.get("lead_time") or None,
           "labelled_at": row.get("updated_at") or row.get("created_at") or None}


READERS = {"synpref": from_synpref, "argilla": from_argilla, "label_studio": from_label_studio}


def labels_from(rows: Iterable[dict], mapping: str, questions: Questions = Questions()) -> list[dict]:
    """Labels in SynPref's columns from another tool's records; bad records raise LabelError."""
    if mapping not in READERS:
        raise ValueError(f"mapping: one of {', '.join(MAPPINGS)}")
    labels, errors = [], []
    for number, row in enumerate(rows, start=1):
        try:
            labels += list(READERS[mapping](row, questions))
        except (ValueError, TypeError, SyntaxError, AttributeError) as e:
            errors.append(f"record {number}: {e}")
    if errors:
        raise LabelError(f"{len(errors)} records cannot be read:\n  " + "\n  ".join(errors[:10]))
    return labels


def import_labels(lake: Lake, path: Path, mapping: str = "synpref", fmt: str | None = None,
                  questions: Questions = Questions()) -> tuple[int, int]:
    """Read a file of labels made elsewhere into the label journal (the human_labels asset seals
    them). Returns (journaled now, already stored or journaled)."""
    labels = labels_from(read_rows(path, fmt), mapping, questions)
    return submit_labels(lake, labels, source=f"import:{mapping}")
