"""Tickets: what the server showed an annotator (pair, order, time), signed with a key kept
under the lake root, so a label names its display order without the server storing it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
import uuid

from synpref.lake import Lake, atomic_path


class TicketError(ValueError):
    """A ticket that was not issued by this lake's server, or was altered."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TicketSigner:
    def __init__(self, key: bytes):
        self.key = key

    @classmethod
    def for_lake(cls, lake: Lake) -> "TicketSigner":
        path = lake.home / "annotation" / "ticket.key"
        if not path.exists():
            with atomic_path(path) as tmp:
                tmp.write_bytes(secrets.token_bytes(32))
                os.chmod(tmp, 0o600)
        return cls(path.read_bytes())

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self.key, payload.encode(), hashlib.sha256).digest())

    def issue(self, pair_id: str, annotator: str, shown_order: str) -> str:
        body = {"p": pair_id, "a": annotator, "o": shown_order, "t": time.time(), "n": uuid.uuid4().hex}
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload)}"

    def verify(self, ticket: str) -> dict:
        """The ticket's content: pair_id, annotator, shown_order, served_at (epoch s), nonce."""
        payload, _, mac = str(ticket).partition(".")
        if not payload or not hmac.compare_digest(mac, self._mac(payload)):
            raise TicketError("the ticket is not one this server issued")
        body = json.loads(_unb64(payload))
        return {"pair_id": body["p"], "annotator": body["a"], "shown_order": body["o"], "served_at": body["t"],
                "nonce": body["n"]}
