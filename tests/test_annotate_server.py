"""The annotation server as it runs (`synpref annotate serve` in a subprocess): 401 without a
token, 8 concurrent annotators x 200 labels with none lost or doubled, and a SIGKILL mid-stream
that loses no acknowledged label."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter

import httpx
import pytest

from support.annotation import silver_lake, simple_records, stored_labels
from synpref.gold.annotate.process import AnnotationServer
from synpref.gold.annotation_queue import queue_for_humans
from synpref.gold.annotators import add_annotator
from synpref.gold.label_journal import segment_files

N_PAIRS = 200


@pytest.fixture
def queued_lake(lake, tmp_path):
    silver_lake(lake, tmp_path, simple_records(N_PAIRS))
    queue_for_humans(lake, "test", select_sql="select pair_id from silver_pairs")
    return lake


def _label(client: httpx.Client, i: int) -> str | None:
    """Fetch the next pair and label it; the label_id once the server acknowledged it, None when done."""
    shown = client.get("/api/next")
    shown.raise_for_status()
    data = shown.json()
    if data["pair"] is None:
        return None
    saved = client.post("/api/labels", json={"ticket": data["ticket"], "choice": ("1", "2", "cannot_decide")[i % 3],
                                             "comment": f"label {i}" if i % 5 == 0 else None})
    saved.raise_for_status()
    assert saved.json()["saved"] is True
    return saved.json()["label_id"]


def _client(server: AnnotationServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_every_request_without_a_valid_token_gets_401(queued_lake, tmp_path):
    token = add_annotator(queued_lake, "alice")
    server = AnnotationServer(queued_lake, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=server.url, timeout=30, follow_redirects=True) as anonymous:
            requests = [("GET", "/"), ("GET", "/api/next"), ("POST", "/api/labels"), ("GET", "/static/app.js"),
                        ("GET", "/static/app.css"), ("GET", "/no/such/page"), ("POST", "/signout"),
                        ("GET", "/docs"), ("GET", "/openapi.json")]
            for method, path in requests:
                assert anonymous.request(method, path).status_code == 401, (method, path)
            for bad in ({"Authorization": "Bearer nope"}, {"Authorization": f"Basic {token}"},
                        {"Cookie": "synpref_token=nope"}):
                assert anonymous.get("/api/next", headers=bad).status_code == 401, bad
            wrong = anonymous.post("/signin", data={"token": "nope"})
            assert wrong.status_code == 401 and "not valid" in wrong.text
            page = anonymous.get("/")
            assert 'name="token"' in page.text and "script-src 'self'" in page.headers["content-security-policy"]

            signed_in = anonymous.post("/signin", data={"token": token})  # follows the redirect with the cookie
            assert signed_in.status_code == 200 and "alice" in signed_in.text
            assert anonymous.get("/static/app.js").status_code == 200
        with _client(server, token) as alice:
            assert alice.get("/api/next").json()["progress"] == {"done": 0, "total": N_PAIRS}
    finally:
        assert server.shutdown()


def test_eight_annotators_times_200_labels_none_lost_none_doubled(queued_lake, tmp_path):
    lake = queued_lake
    tokens = {f"annotator-{i}": add_annotator(lake, f"annotator-{i}") for i in range(8)}
    server = AnnotationServer(lake, tmp_path / "server.log", "--labels-per-pair", "8", "--seal-every", "1")
    acked: dict[str, list[str]] = {name: [] for name in tokens}
    errors: list[BaseException] = []

    def annotate(name: str) -> None:
        try:
            with _client(server, tokens[name]) as client:
                for i in range(N_PAIRS):
                    acked[name].append(_label(client, i))
        except BaseException as e:  # reported below
            errors.append(e)

    start = time.perf_counter()
    threads = [threading.Thread(target=annotate, args=(name,)) for name in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    assert not errors, errors
    assert server.shutdown()  # SIGTERM: the last labels are sealed at shutdown
    print(f"\n8 clients x {N_PAIRS} labels acknowledged in {seconds:.1f} s ({8 * N_PAIRS / seconds:.0f} labels/s)")

    labels = stored_labels(lake)
    acknowledged = [label_id for ids in acked.values() for label_id in ids]
    assert len(acknowledged) == 8 * N_PAIRS and None not in acknowledged
    assert len(labels) == 8 * N_PAIRS == len({r["label_id"] for r in labels})
    assert {r["label_id"] for r in labels} == set(acknowledged)
    # each annotator judged each pair once; every pair has its 8 labels
    assert Counter((r["annotator"], r["pair_id"]) for r in labels).most_common(1)[0][1] == 1
    assert set(Counter(r["pair_id"] for r in labels).values()) == {8}
    assert Counter(r["choice"] for r in labels)["cannot_decide"] == 8 * len(range(2, N_PAIRS, 3))
    assert segment_files(lake) == []  # everything sealed, the journal empty


def test_a_sigkilled_server_loses_no_acknowledged_label(queued_lake, tmp_path):
    lake = queued_lake
    tokens = {f"annotator-{i}": add_annotator(lake, f"annotator-{i}") for i in range(4)}
    server = AnnotationServer(lake, tmp_path / "server.log", "--labels-per-pair", "4", "--seal-every", "0.5")
    acked: dict[str, list[str]] = {name: [] for name in tokens}
    stop = threading.Event()

    def annotate(name: str) -> None:
        with _client(server, tokens[name]) as client:
            i = 0
            while not stop.is_set():
                try:
                    label_id = _label(client, i)
                except (httpx.HTTPError, OSError):
                    return  # the server is gone; what it acknowledged is in acked
                if label_id is None:
                    return
                acked[name].append(label_id)
                i += 1

    threads = [threading.Thread(target=annotate, args=(name,)) for name in tokens]
    for t in threads:
        t.start()
    while sum(map(len, acked.values())) < 150 and all(t.is_alive() for t in threads):
        time.sleep(0.01)
    assert server.stop(signal.SIGKILL) == -signal.SIGKILL  # mid-stream: requests in flight
    stop.set()
    for t in threads:
        t.join()
    acknowledged = {label_id for ids in acked.values() for label_id in ids}
    assert len(acknowledged) >= 150
    assert segment_files(lake), "the killed server leaves its journal segment"

    # a new server recovers the journal at start, and knows who labelled what
    restarted = AnnotationServer(lake, tmp_path / "server.log", "--labels-per-pair", "4")
    try:
        assert not segment_files(lake) or all(f.stat().st_size == 0 for f in segment_files(lake))
        labels = stored_labels(lake)
        stored = {r["label_id"] for r in labels}
        assert acknowledged <= stored, f"lost {len(acknowledged - stored)} acknowledged labels"
        assert len(labels) == len(stored)  # none doubled
        assert len(stored - acknowledged) <= len(tokens)  # at most the requests in flight at the kill
        per_annotator = Counter(r["annotator"] for r in labels)
        for name, token in tokens.items():
            with _client(restarted, token) as client:
                assert client.get("/api/next").json()["progress"]["done"] == per_annotator[name]
    finally:
        assert restarted.shutdown()
    assert {r["label_id"] for r in stored_labels(lake)} == stored
