"""Scratch names that say who made them, so a rerun removes what a killed run left behind.

Temporary files and folders (a part being written, silver's staging folder, DuckDB's spill
folder) are named ``<kind>-<host>-<pid>-<random>``: made by process <pid> on the machine whose
name hashes to <host>. ``sweep`` deletes those of this machine whose process is gone. A live
writer's scratch (a step running beside, another shard's worker) is never touched, and neither
is another machine's: on a shared disk only its owner's host can tell whether it is alive.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import time
import uuid
from pathlib import Path

HOST = hashlib.md5(socket.gethostname().encode()).hexdigest()[:6]
_OWNED = re.compile(r"(?:\.tmp|\.old|^silver|^part|^duckdb)-([0-9a-f]{6})-(\d+)-[0-9a-f]{8}$")
# Before owner tags: "<name>.tmp-<8 hex>" and "silver-<8 hex>"; removed once clearly abandoned.
_LEGACY = re.compile(r"(?:\.tmp|^silver)-[0-9a-f]{8}$")
LEGACY_AGE_S = 24 * 3600


def tag() -> str:
    """``<host>-<pid>-<random>``: the owner part of a scratch name."""
    return f"{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def abandoned(path: Path, now: float | None = None) -> bool:
    """Scratch whose owner on this machine is gone (or an untagged leftover over a day old)."""
    m = _OWNED.search(path.name)
    if m:
        return m.group(1) == HOST and not _alive(int(m.group(2)))
    if _LEGACY.search(path.name):
        try:
            return (now or time.time()) - path.lstat().st_mtime > LEGACY_AGE_S
        except FileNotFoundError:
            return False
    return False


def sweep(*folders: Path) -> list[Path]:
    """Delete abandoned scratch anywhere under `folders`; returns what was removed."""
    removed: list[Path] = []
    now = time.time()
    for folder in folders:
        if not Path(folder).is_dir():
            continue
        for parent, dirs, files in os.walk(folder):
            for name in list(dirs):
                path = Path(parent) / name
                if abandoned(path, now):
                    shutil.rmtree(path, ignore_errors=True)
                    dirs.remove(name)  # nothing to look at inside
                    removed.append(path)
            for name in files:
                path = Path(parent) / name
                if abandoned(path, now):
                    path.unlink(missing_ok=True)
                    removed.append(path)
    return removed
