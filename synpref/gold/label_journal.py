"""The annotation page's write-ahead journal: each human label is one JSON line, on disk
(written and fsynced) before the page is told it was saved.

A serving process appends to its own segment, `<lake>/annotation/journal/segment-*.jsonl`,
and holds an exclusive flock on it for as long as it writes there. The lock dies with the
process (a SIGKILL included), which is how a sealer tells a live segment from one left by a
dead server: a dead one can be sealed into human_labels and removed, a live one only read.
Lines are appended whole under a lock; a line without its newline was never acknowledged
(the process died while writing it) and is set aside, not sealed.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from synpref.lake import Lake, fsync_dir


def journal_dir(lake: Lake) -> Path:
    return lake.home / "annotation" / "journal"


def segment_files(lake: Lake) -> list[Path]:
    folder = journal_dir(lake)
    return sorted(folder.glob("segment-*.jsonl")) if folder.is_dir() else []


def _sync(fd: int) -> None:
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


class LabelJournal:
    """This process's journal segment. Thread-safe; `append` returns once the line is on disk."""

    def __init__(self, lake: Lake):
        self.folder = journal_dir(lake)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.appended = 0  # lines appended by this process (a sealer compares it with what it sealed)
        self._fd, self.path = self._open_segment()

    def _open_segment(self) -> tuple[int, Path]:
        # Lock under a hidden name, then rename: a sealer never sees a segment that is not
        # yet locked by its writer (and would take it for a dead server's and remove it).
        name = f"segment-{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        hidden = self.folder / f".{name}.new"
        fd = os.open(hidden, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(hidden, self.folder / name)
        fsync_dir(self.folder)
        return fd, self.folder / name

    def append(self, record: dict) -> None:
        self.append_many([record])

    def append_many(self, records: list[dict]) -> None:
        """Lines written and synced at once (one label from the page, or a batch submitted);
        returns once they are on disk."""
        with self._lock:
            if self._fd < 0:
                raise RuntimeError("the label journal is closed")
            data = b"".join((json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
                            for r in records)
            start = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view):]
                _sync(self._fd)
                self.appended += len(records)
            except OSError:
                # a half-written line would glue itself to the next one: cut it off
                os.ftruncate(self._fd, start)
                raise

    def rotate(self) -> Path:
        """Continue in a fresh segment; the old one is closed (unlocked) and returned, to be
        sealed and removed by the caller."""
        with self._lock:
            old_fd, old = self._fd, self.path
            self._fd, self.path = self._open_segment()
            os.close(old_fd)
            return old

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def claim(path: Path) -> int | None:
    """An open, exclusively locked fd on a dead server's segment; None if its writer is alive
    (or the segment is gone). Hold the fd while sealing and removing the segment."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@dataclass
class SegmentLines:
    records: list[dict] = field(default_factory=list)
    bad: list[dict] = field(default_factory=list)  # {segment, line, reason, text}


def read_segment(path: Path, live: bool) -> SegmentLines:
    """The whole lines of a segment as records. Lines that do not parse are returned as bad;
    so is a dead segment's unfinished last line (never acknowledged). A live segment's
    unfinished last line is being written now: it is left for a later read."""
    out = SegmentLines()
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the data ends with a newline
    for number, raw in enumerate(lines, start=1):
        try:
            record = json.loads(raw)
            if not isinstance(record, dict):
                raise ValueError("not an object")
            out.records.append(record)
        except ValueError as e:
            out.bad.append({"segment": path.name, "line": number, "reason": f"unreadable: {e}",
                            "text": raw.decode("utf-8", "replace")})
    if tail and not live:
        out.bad.append({"segment": path.name, "line": len(lines) + 1,
                        "reason": "unfinished line (the server died while writing it; never acknowledged)",
                        "text": tail.decode("utf-8", "replace")})
    return out
