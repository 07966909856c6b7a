"""human_labels: every human judgement, one row each, append-only (never updated in place).

Two ways in, both deduplicated on label_id so that nothing is ever doubled:
- the annotation page journals each label (synpref/gold/label_journal.py) and `seal` moves
  journal lines into new Parquet parts (at server start, to recover after a kill;
  periodically; at shutdown; and by the human_labels asset, upstream of gold_pairs);
- `submit_labels` (imports, simulated annotators) checks labels and journals them, as a
  finished annotation server would: the human_labels asset seals them like any other;
- `append_labels` writes checked labels as one durable Parquet part (what sealing does).

A choice is stored relative to the pair's original label (chosen | rejected | cannot_decide),
with the order the responses were shown in beside it, so the display order never leaks into gold.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
from filelock import FileLock

from synpref.lake import schemas
from synpref.lake.duck import connect as duck_connect, lit, register_tables
from synpref.gold.label_journal import LabelJournal, claim, journal_dir, read_segment, segment_files
from synpref.lake import Lake, fsync_dir, write_part

TABLE = "human_labels"
CHOICES = ("chosen", "rejected", "cannot_decide")
SHOWN_ORDERS = ("chosen_first", "rejected_first")


class LabelError(ValueError):
    """Labels that cannot be stored; says which rows and why. Nothing of the batch is written."""


def label_lock(lake: Lake) -> FileLock:
    """One writer of human_labels at a time (sealers, importers), across processes."""
    folder = lake.home / "annotation"
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / "labels.lock"))


def rejected_lines_path(lake: Lake) -> Path:
    return lake.home / "annotation" / "rejected_journal_lines.jsonl"


def _timestamp(value, what: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, (int, float)):
        stamp = datetime.fromtimestamp(float(value), timezone.utc)
    else:
        try:
            stamp = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{what} {value!r} is not an ISO-8601 time") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def derived_label_id(row: dict) -> str:
    """A stable id for a label that came without one (an import): the same judgement imported
    twice gets the same id, so it is stored once."""
    key = [row.get(k) for k in ("source", "annotator", "pair_id", "choice", "shown_order", "comment")]
    key.append(str(row.get("labelled_at")))
    return hashlib.md5(json.dumps(key, default=str).encode()).hexdigest()


def normalise(raw: dict, source: str, now: datetime) -> dict:
    """One label as a row of human_labels; raises ValueError saying what is wrong."""
    row = {k: raw.get(k) for k in schemas.HUMAN_LABELS.names}
    row["source"] = row["source"] or source
    if row["label_id"] in (None, ""):
        row["label_id"] = derived_label_id(row)  # from the label as given, before any default
    for required in ("pair_id", "annotator", "choice"):
        value = row[required]
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{required} is missing")
        row[required] = value.strip()
    if row["choice"] not in CHOICES:
        raise ValueError(f"choice {row['choice']!r} is not one of {', '.join(CHOICES)}")
    if row["shown_order"] in ("", None):
        row["shown_order"] = None
    elif row["shown_order"] not in SHOWN_ORDERS:
        raise ValueError(f"shown_order {row['shown_order']!r} is not one of {', '.join(SHOWN_ORDERS)}")
    if row["seconds"] not in (None, ""):
        try:
            row["seconds"] = float(row["seconds"])
        except (TypeError, ValueError):
            raise ValueError(f"seconds {row['seconds']!r} is not a number") from None
        if not row["seconds"] >= 0:
            raise ValueError(f"seconds {row['seconds']!r} is negative")
    else:
        row["seconds"] = None
    row["labelled_at"] = _timestamp(row["labelled_at"], "labelled_at") or now
    row["recorded_at"] = _timestamp(row["recorded_at"], "recorded_at") or now
    simulated = row["simulated"]
    if isinstance(simulated, str):
        simulated = {"true": True, "false": False, "1": True, "0": False, "": False}.get(simulated.strip().lower())
        if simulated is None:
            raise ValueError(f"simulated {row['simulated']!r} is not true/false")
    row["simulated"] = bool(simulated)
    row["comment"] = row["comment"] or None  # a CSV's empty cell is no comment
    row["guideline_version"] = row["guideline_version"] or None
    row["label_id"] = str(row["label_id"])
    return row


def to_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schemas.HUMAN_LABELS)


def _store_new(lake: Lake, incoming: pa.Table) -> tuple[int, int]:
    """Write the rows whose label_id is not stored yet (one durable part). Call under label_lock.
    Returns (written, duplicates)."""
    with duck_connect(lake) as con:
        con.register("incoming", incoming)
        stored = (f"anti join (select label_id from read_parquet({lit(lake.table_glob(TABLE))})) using (label_id)"
                  if lake.has_table(TABLE) else "")
        new = con.sql(f"select * from incoming {stored} "
                      f"qualify row_number() over (partition by label_id order by recorded_at) = 1").to_arrow_table()
    if new.num_rows:
        write_part(lake, TABLE, new.select(schemas.HUMAN_LABELS.names).cast(schemas.HUMAN_LABELS), durable=True)
    return new.num_rows, incoming.num_rows - new.num_rows


def append_labels(lake: Lake, labels: list[dict], source: str = "api") -> tuple[int, int]:
    """Append labels to human_labels (the import path; simulated labels pass simulated=True).

    Each label needs pair_id (a silver pair), annotator and choice (chosen | rejected |
    cannot_decide, relative to the original label); optional: label_id, shown_order,
    comment, seconds, labelled_at, guideline_version, simulated, source. All are checked
    first; any bad row raises LabelError and nothing is written. A label_id stored already
    is skipped. Returns (written, skipped as already stored)."""
    now = datetime.now(timezone.utc)
    rows, errors = [], []
    for i, raw in enumerate(labels, start=1):
        try:
            rows.append(normalise(raw, source, now))
        except ValueError as e:
            errors.append(f"label {i}: {e}")
    if not errors and rows:
        errors = [f"label {i}: pair_id {pid!r} is not in silver_pairs" for i, pid in _unknown_pairs(lake, rows)]
    if errors:
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        raise LabelError(f"{len(errors)} of {len(labels)} labels cannot be stored{more}:\n  "
                         + "\n  ".join(errors[:10]))
    if not rows:
        return 0, 0
    with label_lock(lake):
        return _store_new(lake, to_table(rows))


def submit_labels(lake: Lake, labels: list[dict], source: str) -> tuple[int, int]:
    """Journal labels for the next seal (the human_labels asset), as the annotation page does,
    checked first as imports are (LabelError, nothing journaled). Labels whose label_id is stored
    or journaled already are left out. Returns (journaled now, left out as known)."""
    now = datetime.now(timezone.utc)
    errors, rows = [], []
    for i, raw in enumerate(labels, start=1):
        try:
            rows.append(normalise({**raw, "source": raw.get("source") or source}, source, now))
        except ValueError as e:
            errors.append(f"label {i}: {e}")
    if not errors and rows:
        errors = [f"label {i}: pair_id {pid!r} is not in silver_pairs" for i, pid in _unknown_pairs(lake, rows)]
    if errors:
        raise LabelError(f"{len(errors)} of {len(labels)} labels cannot be journaled:\n  " + "\n  ".join(errors[:10]))
    known = _journaled_ids(lake) | _stored_ids(lake, [r["label_id"] for r in rows])
    fresh = [r for r in rows if r["label_id"] not in known]
    if fresh:
        journal = LabelJournal(lake)
        try:
            journal.append_many([{k: v.isoformat() if isinstance(v, datetime) else v for k, v in r.items()}
                                 for r in fresh])
        finally:
            journal.close()  # unlocked: a dead segment, sealed by the next seal
    return len(fresh), len(rows) - len(fresh)


def _journaled_ids(lake: Lake) -> set[str]:
    ids = set()
    for path in segment_files(lake):
        for record in read_segment(path, live=True).records:
            if record.get("label_id"):
                ids.add(str(record["label_id"]))
    return ids


def _stored_ids(lake: Lake, label_ids: list[str]) -> set[str]:
    if not lake.has_table(TABLE) or not label_ids:
        return set()
    with duck_connect(lake) as con:
        con.register("wanted", pa.table({"label_id": label_ids}))
        return {i for (i,) in con.execute(f"select label_id from read_parquet({lit(lake.table_glob(TABLE))}) "
                                          f"semi join wanted using (label_id)").fetchall()}


def _unknown_pairs(lake: Lake, rows: list[dict]) -> list[tuple[int, str]]:
    if not lake.has_table("silver_pairs"):
        raise LabelError(f"no silver_pairs under {lake.root}: labels must name silver pairs")
    with duck_connect(lake) as con:
        register_tables(con, lake, temp=True)
        con.register("named", pa.table({"i": list(range(1, len(rows) + 1)), "pair_id": [r["pair_id"] for r in rows]}))
        return con.execute("select i, pair_id from named anti join silver_pairs using (pair_id) order by i").fetchall()


# ---------------------------------------------------------------- sealing the journal

@dataclass
class SealSummary:
    sealed: int = 0  # rows written to human_labels now
    duplicates: int = 0  # journal lines already stored (sealed before)
    segments: int = 0  # journal segments read
    removed: int = 0  # dead servers' segments sealed and removed
    rejected_lines: int = 0  # lines set aside in rejected_journal_lines.jsonl: unreadable, invalid, unknown pair
    unknown_pairs: int = 0  # of rejected_lines: labels naming a pair_id that is not in silver_pairs
    lines: int = 0  # journal lines dealt with now; always sealed + duplicates + rejected_lines


def seal(lake: Lake, journal: LabelJournal | None = None) -> SealSummary:
    """Move every journal line into human_labels, once. A dead server's segment is removed
    after its lines are durably stored; a live server's is only read (that server seals and
    rotates its own: pass its `journal`). Safe to run from several processes at once.

    Lines are checked as imports are (`normalise`, then pair_id in silver_pairs); a line that
    fails is set aside in rejected_journal_lines.jsonl with its reason, never dropped. A live
    segment's lines are set aside only once it is dead, so each is set aside once."""
    summary = SealSummary()
    with label_lock(lake):
        if journal is not None:
            journal.rotate()  # new labels go to a fresh segment while the old one is sealed
        claimed: dict[Path, int] = {}
        try:
            records, bad = [], []  # records: (line as read, from a live segment?)
            segments = segment_files(lake)
            for path in segments:
                fd = claim(path)
                if fd is not None:
                    claimed[path] = fd
                lines = read_segment(path, live=fd is None)
                records += [(record, fd is None) for record in lines.records]
                if fd is not None:  # a live segment's bad lines are set aside once it is dead
                    bad += lines.bad
            summary.segments, unreadable = len(segments), len(bad)
            now = datetime.now(timezone.utc)
            checked, deferred = [], 0  # checked: (row, record, live)
            for record, live in records:
                try:
                    checked.append((normalise(record, "web", now), record, live))
                except ValueError as e:
                    deferred += live
                    if not live:
                        bad.append({"reason": f"invalid label: {e}", "text": json.dumps(record, default=str)})
            # the pair must exist, as for an import; sealing cannot refuse the batch, so such a label is set aside
            unknown = {i - 1 for i, _ in _unknown_pairs(lake, [row for row, _, _ in checked])} if checked else set()
            for i in sorted(unknown):
                row, record, live = checked[i]
                deferred += live
                if not live:
                    summary.unknown_pairs += 1
                    bad.append({"reason": f"pair_id {row['pair_id']!r} is not in silver_pairs",
                                "text": json.dumps(record, default=str)})
            rows = [row for i, (row, _, _) in enumerate(checked) if i not in unknown]
            if rows:
                summary.sealed, summary.duplicates = _store_new(lake, to_table(rows))
            if bad:
                _keep_rejected(lake, bad)
            summary.rejected_lines = len(bad)
            # every line read is stored, a duplicate, set aside, or left in its live segment for later
            summary.lines = len(records) + unreadable - deferred
            for path in claimed:
                path.unlink(missing_ok=True)
            if claimed:
                fsync_dir(journal_dir(lake))
            summary.removed = len(claimed)
        finally:
            for fd in claimed.values():
                os.close(fd)
    return summary


def _keep_rejected(lake: Lake, bad: list[dict]) -> None:
    """Unreadable journal lines are set aside with their reason, never dropped silently."""
    path = rejected_lines_path(lake)
    stamp = datetime.now(timezone.utc).isoformat()
    with path.open("a", encoding="utf-8") as f:
        for item in bad:
            f.write(json.dumps({**item, "set_aside_at": stamp}, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def ensure_table(lake: Lake) -> None:
    """An empty part, so that the table (and its DuckDB view) exists before the first label."""
    if not lake.has_table(TABLE):
        write_part(lake, TABLE, schemas.HUMAN_LABELS.empty_table())


def stored_rows(lake: Lake) -> int:
    """Rows of human_labels on disk (Parquet metadata only: cheap enough for a sensor)."""
    files = lake.table_files(TABLE)
    if not files:
        return 0
    with duck_connect(lake) as con:
        return int(con.execute("select coalesce(sum(num_rows), 0) from parquet_file_metadata(?)",
                               [[str(f) for f in files]]).fetchone()[0])


def unsealed_dead_lines(lake: Lake) -> int:
    """Whole lines in segments no live server holds (a killed server's): labels waiting for a seal."""
    count = 0
    for path in segment_files(lake):
        fd = claim(path)
        if fd is None:
            continue
        try:
            count += path.read_bytes().count(b"\n")
        finally:
            os.close(fd)
    return count


def label_counts(lake: Lake) -> dict:
    """Figures for the asset's metadata: rows by choice, annotator, source, and simulated."""
    if not lake.has_table(TABLE):
        return {"rows": 0, "by_choice": {}, "by_annotator": {}, "by_source": {}, "simulated": 0}
    with duck_connect(lake) as con:
        scan = f"read_parquet({lit(lake.table_glob(TABLE))})"

        def grouped(column: str) -> dict:
            return dict(con.execute(f"select {column}, count(*) from {scan} group by 1 order by 2 desc, 1").fetchall())

        (rows, simulated), = con.execute(f"select count(*), count(*) filter (where simulated) from {scan}").fetchall()
        return {"rows": rows, "by_choice": grouped("choice"), "by_annotator": grouped("annotator"),
                "by_source": grouped("source"), "simulated": simulated}
