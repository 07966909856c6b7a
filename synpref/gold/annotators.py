"""Annotators and their sign-in tokens. Only a SHA-256 of each token is kept, under the lake
root (`annotation/annotators.json`); the token itself is shown once, when it is made."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path

from synpref.lake import Lake, atomic_path

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def annotators_file(lake: Lake) -> Path:
    return lake.home / "annotation" / "annotators.json"


def _digest(token: str) -> str:
    # tokens are 192 random bits: a plain hash cannot be reversed or guessed, no slow KDF needed
    return hashlib.sha256(token.encode()).hexdigest()


def load(lake: Lake) -> dict[str, dict]:
    path = annotators_file(lake)
    if not path.exists():
        return {}
    with path.open() as f:
        return json.load(f).get("annotators", {})


def add_annotator(lake: Lake, name: str) -> str:
    """Make (or replace) NAME's token; returns the token, which is stored only as a hash."""
    if not NAME.match(name):
        raise ValueError(f"annotator name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-'")
    token = secrets.token_urlsafe(24)
    annotators = load(lake)
    annotators[name] = {"token_sha256": _digest(token), "added_at": datetime.now(timezone.utc).isoformat()}
    path = annotators_file(lake)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"annotators": annotators}, indent=2, sort_keys=True))
        tmp.chmod(0o600)
    return token


class Tokens:
    """Who a token belongs to; rereads the annotators file when it changes (no restart needed)."""

    def __init__(self, lake: Lake):
        self.lake = lake
        self._stamp: float | None = None
        self._by_digest: dict[str, str] = {}

    def annotator(self, token: str | None) -> str | None:
        if not token:
            return None
        path = annotators_file(self.lake)
        stamp = path.stat().st_mtime_ns if path.exists() else None
        if stamp != self._stamp:
            self._by_digest = {entry["token_sha256"]: name for name, entry in load(self.lake).items()}
            self._stamp = stamp
        digest = _digest(token)
        for known, name in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return name
        return None
