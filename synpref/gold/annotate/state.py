"""What the annotation server keeps in memory: the queue (with each pair's texts and
attributes), who has labelled which pair, and short leases on pairs being looked at.

The queue is small by design (humans label thousands of pairs, not millions), so it is read
whole and read again when annotation_queue gets a new part. An annotator gets the first
queued pair (objective, low-controversy first) they have not labelled, that still needs
labels: fewer than labels_per_pair labels plus other annotators' open leases.

An annotator labels a pair once, and no pair gets more than labels_per_pair labels from the
page: a label is stored only if `has_room` says so at the moment it is journaled.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


from synpref.gold.annotation_queue import TABLE as QUEUE
from synpref.silver.attributes import register_latest_attributes
from synpref.lake.duck import connect as duck_connect, lit, register_tables
from synpref.gold.human_labels import TABLE as LABELS
from synpref.gold.label_journal import read_segment, segment_files
from synpref.lake import Lake

QUEUE_SQL = f"""
select q.pair_id, q.origin, q.priority, s.conversation, s.chosen, s.rejected,
       a.task_category, a.objectivity, a.controversiality, a.desired_attributes, a.annotation_guideline,
       a.model, a.test_model
from (select pair_id, arg_min(origin, queued_at) as origin, min(priority) as priority, min(queued_at) as queued_at
      from {QUEUE} group by pair_id) as q
join silver_pairs as s using (pair_id)
left join latest_attributes as a using (pair_id)
order by q.priority, q.queued_at, q.pair_id
"""
# with the model that wrote them, and whether it is a random test LLM (the page then warns)
ATTRIBUTES = ("task_category", "objectivity", "controversiality", "desired_attributes", "annotation_guideline",
              "model", "test_model")


@dataclass(frozen=True)
class Progress:
    done: int  # queued pairs this annotator has labelled
    total: int  # done + the queued pairs still open to them

    def as_dict(self) -> dict:
        return {"done": self.done, "total": self.total}


class AnnotationState:
    def __init__(self, lake: Lake, labels_per_pair: int = 1, lease_s: float = 600.0, reload_every_s: float = 2.0):
        if labels_per_pair < 1:
            raise ValueError("labels_per_pair must be >= 1")
        self.lake, self.labels_per_pair = lake, labels_per_pair
        self.lease_s, self.reload_every_s = lease_s, reload_every_s
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self.order: list[str] = []
        self.pairs: dict[str, dict] = {}
        self.labelled_by: dict[str, set[str]] = {}
        self.done: dict[str, set[str]] = {}
        self.label_ids: set[str] = set()
        self.kept_labels: dict[tuple[str, str], tuple[str, str]] = {}  # (pair, annotator) -> (label_id, choice)
        self.leases: dict[str, dict[str, float]] = {}
        self._queue_files: tuple[str, ...] | None = None
        self._checked = 0.0

    # ------------------------------------------------------------ loading

    def load_labels(self) -> None:
        """Every stored label (sealed parts and journal lines), for who-labelled-what."""
        keys: list[tuple[str, str, str, str]] = []
        if self.lake.has_table(LABELS):
            with duck_connect(self.lake) as con:
                keys = con.execute(f"select label_id, pair_id, annotator, choice from "
                                   f"read_parquet({lit(self.lake.table_glob(LABELS))}) order by recorded_at").fetchall()
        for path in segment_files(self.lake):
            keys += [(r.get("label_id"), r.get("pair_id"), r.get("annotator"), r.get("choice"))
                     for r in read_segment(path, live=True).records]
        for label_id, pair_id, annotator, choice in keys:
            self.record(label_id, pair_id, annotator, choice)

    def refresh_queue(self, force: bool = False) -> None:
        """Reread the queue if annotation_queue has new parts (checked every reload_every_s)."""
        now = time.monotonic()
        if not force and now - self._checked < self.reload_every_s:
            return
        with self._reload_lock:  # one reader at a time; label requests go on meanwhile
            self._checked = now
            files = tuple(str(f) for f in self.lake.table_files(QUEUE))
            if files == self._queue_files:
                return
            pairs = self._read_queue() if files else []
            with self._lock:
                self.order = [p["pair_id"] for p in pairs]
                self.pairs = {p["pair_id"]: p for p in pairs}
                self._queue_files = files

    def _read_queue(self) -> list[dict]:
        with duck_connect(self.lake) as con:
            register_tables(con, self.lake, temp=True)
            register_latest_attributes(con, self.lake)
            cursor = con.execute(QUEUE_SQL)
            columns = [d[0] for d in cursor.description]
            rows = [dict(zip(columns, row)) for row in cursor.fetchall()]
        return [{"pair_id": r["pair_id"], "origin": r["origin"], "priority": r["priority"],
                 "conversation": [{"role": m["role"], "content": m["content"]} for m in r["conversation"]],
                 "chosen": r["chosen"], "rejected": r["rejected"],
                 "attributes": {k: r[k] for k in ATTRIBUTES}} for r in rows]

    # ------------------------------------------------------------ labels and leases

    def kept(self, pair_id: str, annotator: str) -> tuple[str, str] | None:
        """(label_id, choice) of the label this annotator gave this pair, None if they have not."""
        with self._lock:
            return self.kept_labels.get((pair_id, annotator))

    def has_room(self, pair_id: str, annotator: str) -> bool:
        """Whether a label by this annotator still fits the pair: fewer than labels_per_pair labels
        plus other annotators' open leases. Their own lease is their slot, so it is not counted;
        a pair taken by others meanwhile (a lease lost in a restart) is full."""
        with self._lock:
            return self._open_to(pair_id, annotator, time.time())

    def record(self, label_id: str, pair_id: str, annotator: str, choice: str | None = None) -> bool:
        """Count a stored label; False if it was counted already (a resubmitted ticket)."""
        with self._lock:
            if label_id in self.label_ids:
                return False
            self.label_ids.add(label_id)
            # loaded oldest first, so a later correction (an import) is the one kept, as in gold_pairs;
            # the page itself stores one label per annotator and pair
            self.kept_labels[(pair_id, annotator)] = (label_id, choice)
            self.labelled_by.setdefault(pair_id, set()).add(annotator)
            self.done.setdefault(annotator, set()).add(pair_id)
            self.leases.get(pair_id, {}).pop(annotator, None)
            return True

    def _open_to(self, pair_id: str, annotator: str, now: float) -> bool:
        labelled = self.labelled_by.get(pair_id, set())
        if annotator in labelled:
            return False
        leased = sum(1 for who, until in self.leases.get(pair_id, {}).items() if who != annotator and until > now)
        return len(labelled) + leased < self.labels_per_pair

    def next_for(self, annotator: str) -> tuple[dict | None, Progress]:
        """The pair to show this annotator next (leased to them), and their progress."""
        self.refresh_queue()
        now = time.time()
        with self._lock:
            open_ = [p for p in self.order if self._open_to(p, annotator, now)]
            # a pair already leased to them comes back (a reloaded page shows the same pair)
            mine = [p for p in open_ if self.leases.get(p, {}).get(annotator, 0) > now]
            pick = (mine or open_ or [None])[0]
            if pick is not None:
                self.leases.setdefault(pick, {})[annotator] = now + self.lease_s
            done = len(self.done.get(annotator, set()) & self.pairs.keys())
            return (self.pairs[pick] if pick else None), Progress(done, done + len(open_))

    def progress(self, annotator: str) -> Progress:
        now = time.time()
        with self._lock:
            done = len(self.done.get(annotator, set()) & self.pairs.keys())
            return Progress(done, done + sum(1 for p in self.order if self._open_to(p, annotator, now)))
