"""The annotation server's rules at its edges, against the real server (`synpref annotate serve`
in a subprocess): an expired ticket is refused and no pair gets more than labels_per_pair
labels; a ticket is labelled once (a retry is idempotent, another choice gets 409); request
bodies over 64 KiB get 413 before they are read; paths outside /static are refused."""

from __future__ import annotations

import socket
import time
from collections import Counter

import httpx
import pytest

from support.annotation import silver_lake, simple_records, stored_labels
from synpref.gold.annotate.process import AnnotationServer
from synpref.gold.annotation_queue import queue_for_humans
from synpref.gold.annotators import add_annotator
from synpref.gold.human_labels import seal
from synpref.lake import Lake


def _queued_lake(root) -> Lake:
    lake = Lake.at(root / "lake")
    silver_lake(lake, root, simple_records(6))
    queue_for_humans(lake, "test", select_sql="select pair_id from silver_pairs")
    return lake


def _client(server: AnnotationServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _raw(server: AnnotationServer, head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send a request as raw bytes (no client normalising its path or adding a body); the
    status and body of the answer, read until the server closes. A 5 s timeout: an answer that
    waits for the rest of a body never comes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
        conn.sendall((head + "Connection: close\n\n").replace("\n", "\r\n").encode() + body)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One server (labels_per_pair 1, the default 10-minute lease) for the tests that need no restart."""
    root = tmp_path_factory.mktemp("served")
    lake = _queued_lake(root)
    tokens = {name: add_annotator(lake, name) for name in ("alice", "bob")}
    server = AnnotationServer(lake, root / "server.log")
    yield lake, server, tokens
    assert server.shutdown()


def test_an_expired_ticket_is_refused_and_no_pair_gets_more_than_labels_per_pair(tmp_path):
    lake = _queued_lake(tmp_path)
    tokens = {name: add_annotator(lake, name) for name in ("alice", "bob", "carol")}
    server = AnnotationServer(lake, tmp_path / "server.log", "--lease", "1")
    try:
        with _client(server, tokens["alice"]) as alice, _client(server, tokens["bob"]) as bob, \
                _client(server, tokens["carol"]) as carol:
            first = alice.get("/api/next").json()
            assert bob.get("/api/next").json()["pair"]["pair_id"] != first["pair"]["pair_id"]  # alice holds it
            time.sleep(1.2)  # alice's lease ends: her pair goes to the next annotator
            taken = carol.get("/api/next").json()
            assert taken["pair"]["pair_id"] == first["pair"]["pair_id"]
            late = alice.post("/api/labels", json={"ticket": first["ticket"], "choice": "1"})
            assert late.status_code == 410 and late.json()["detail"] == "ticket expired; fetch the next pair"
            assert carol.post("/api/labels", json={"ticket": taken["ticket"], "choice": "2"}).status_code == 200
            second = alice.get("/api/next").json()  # bob's lease has ended too: his pair is hers now
    finally:
        assert server.shutdown()

    # A restart forgets the leases: alice's ticket is still within the new server's lease, but bob
    # took its pair meanwhile; the pair has its one label, so hers is refused all the same.
    server = AnnotationServer(lake, tmp_path / "server2.log", "--lease", "60")
    try:
        with _client(server, tokens["alice"]) as alice, _client(server, tokens["bob"]) as bob:
            again = bob.get("/api/next").json()
            assert again["pair"]["pair_id"] == second["pair"]["pair_id"]
            assert bob.post("/api/labels", json={"ticket": again["ticket"], "choice": "1"}).status_code == 200
            full = alice.post("/api/labels", json={"ticket": second["ticket"], "choice": "1"})
            assert full.status_code == 410 and "has all its labels" in full.json()["detail"]
    finally:
        assert server.shutdown()
    labels = stored_labels(lake)
    assert sorted(r["annotator"] for r in labels) == ["bob", "carol"], (tmp_path / "server2.log").read_text()
    assert max(Counter(r["pair_id"] for r in labels).values()) == 1


def test_a_ticket_is_labelled_once_a_retry_is_idempotent_another_choice_gets_409(served):
    lake, server, tokens = served
    with _client(server, tokens["alice"]) as alice:
        shown = alice.get("/api/next").json()
        label = {"ticket": shown["ticket"], "choice": "1", "comment": "é" * 5000}  # the longest comment fits
        saved = alice.post("/api/labels", json=label)
        assert saved.status_code == 200 and saved.json()["saved"] is True
        label_id = saved.json()["label_id"]
        retry = alice.post("/api/labels", json=label)  # the answer was lost: the page sends it again
        assert retry.status_code == 200 and retry.json()["repeat"] is True and retry.json()["label_id"] == label_id
        for other in ("2", "cannot_decide"):
            changed = alice.post("/api/labels", json={**label, "choice": other})
            assert changed.status_code == 409, other
            assert changed.json()["detail"].startswith("already labelled") and changed.json()["saved"] is False
            assert changed.json()["kept_choice"] == "1" and changed.json()["label_id"] == label_id
        assert alice.get("/api/next").json()["pair"]["pair_id"] != shown["pair"]["pair_id"]
    seal(lake)  # reads the live server's journal segment into human_labels
    (row,) = [r for r in stored_labels(lake) if r["pair_id"] == shown["pair"]["pair_id"]]
    assert row["label_id"] == label_id
    assert row["choice"] == ("chosen" if row["shown_order"] == "chosen_first" else "rejected")  # candidate 1


def test_request_bodies_over_64_kib_get_413_before_they_are_read(served):
    lake, server, tokens = served
    huge = "Content-Length: 104857600\n"  # 100 MiB declared, none of it sent: the answer cannot wait for it
    for head in (f"POST /signin HTTP/1.1\nHost: t\nContent-Type: application/x-www-form-urlencoded\n{huge}",
                 f"POST /api/labels HTTP/1.1\nHost: t\nAuthorization: Bearer {tokens['bob']}\n"
                 f"Content-Type: application/json\n{huge}",
                 f"GET / HTTP/1.1\nHost: t\n{huge}"):
        status, body = _raw(server, head)
        assert status == 413 and b"over 64 KiB" in body, head
    # chunked (no length declared): refused once 64 KiB have come, the rest never awaited
    status, _ = _raw(server, "POST /signin HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n",
                     b"%x\r\n" % 70_000 + b"a" * 70_000 + b"\r\n")
    assert status == 413
    # the tester's request: a real client sending 100 MB to /signin
    start = time.perf_counter()
    refused = httpx.post(server.url + "/signin", content=b"token=" + b"a" * 100_000_000, timeout=30)
    assert refused.status_code == 413 and refused.headers["connection"] == "close"
    assert time.perf_counter() - start < 10
    # a body under the limit is served as before
    padded = {"token": tokens["bob"], "padding": "x" * 60_000}
    assert httpx.post(server.url + "/signin", data=padded, timeout=30).status_code == 303


def test_paths_outside_static_are_refused(served):
    lake, server, tokens = served
    auth = f"Authorization: Bearer {tokens['bob']}\n"
    status, body = _raw(server, f"GET /static/app.js HTTP/1.1\nHost: t\n{auth}")
    assert status == 200
    for path in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py",
                 "/static/%2e%2e%2f%2e%2e%2f..%2fpyproject.toml", "/static//etc/passwd"):
        status, body = _raw(server, f"GET {path} HTTP/1.1\nHost: t\n{auth}")
        assert status == 404 and b"import" not in body and b"root:" not in body, path
