"""The annotation web app (FastAPI). One server per lake; run it with `synpref annotate serve`.

Every request needs an annotator's token (the sign-in cookie, or `Authorization: Bearer`);
without a valid one the answer is 401 (for a page, the sign-in form). Texts reach the page
as JSON and are put in with textContent, never as HTML; the Content-Security-Policy allows
only the app's own script file, so nothing inside a response can run.

A label is journaled (written and fsynced) before the page is told it was saved; the journal
is sealed into human_labels at start (recovering a killed server's labels), every
`seal_every_s` seconds, and at shutdown.
"""

from __future__ import annotations

import fcntl
import os
import random
import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, Field

from synpref.annotate.guideline import load_guideline
from synpref.annotate.state import AnnotationState
from synpref.annotate.tickets import TicketError, TicketSigner
from synpref.annotators import Tokens
from synpref.human_labels import seal
from synpref.label_journal import LabelJournal
from synpref.lake import Lake

HERE = Path(__file__).resolve().parent
COOKIE = "synpref_token"
CHOICES = {"1": 1, "2": 2, "cannot_decide": None}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
MAX_COMMENT = 5000


@dataclass(frozen=True)
class ServeSettings:
    labels_per_pair: int = 1  # annotators per pair before it leaves the queue (2+ to measure agreement)
    seal_every_s: float = 10.0  # how often journaled labels are sealed into human_labels
    lease_s: float = 600.0  # a shown pair is held for its annotator this long
    guideline_version: str = "annotation-v1"


class LabelIn(BaseModel):
    ticket: str = Field(max_length=2000)
    choice: str
    comment: str | None = Field(default=None, max_length=MAX_COMMENT)


class ServerLock:
    """One annotation server per lake: two would each count labels the other cannot see."""

    def __init__(self, lake: Lake):
        path = lake.home / "annotation" / "server.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise RuntimeError(f"another annotation server is running on {lake.root}") from None

    def release(self) -> None:
        os.close(self.fd)


class Sealer(threading.Thread):
    """Seals the journal every few seconds while labels come in."""

    def __init__(self, lake: Lake, journal: LabelJournal, every_s: float, log):
        super().__init__(name="label-sealer", daemon=True)
        self.lake, self.journal, self.every_s, self.log = lake, journal, every_s, log
        self._sealed_at = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            pending = self.journal.appended
            if pending == self._sealed_at:
                continue
            try:
                summary = seal(self.lake, self.journal)
                self._sealed_at = pending
                self.log(f"sealed {summary.sealed} labels into human_labels")
            except Exception as e:  # the labels stay journaled; the next round tries again
                self.log(f"sealing failed, will retry: {e!r}")


def create_app(lake: Lake, settings: ServeSettings = ServeSettings(), log=print) -> FastAPI:
    templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))
    guideline = load_guideline(settings.guideline_version)
    tokens = Tokens(lake)
    rng = random.SystemRandom()
    live: dict = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        lock = ServerLock(lake)
        recovered = seal(lake)  # labels a killed server acknowledged, before anything else
        if recovered.sealed or recovered.removed:
            log(f"recovered {recovered.sealed} journaled labels from {recovered.removed} segments")
        journal = LabelJournal(lake)
        state = AnnotationState(lake, settings.labels_per_pair, settings.lease_s)
        state.load_labels()
        state.refresh_queue(force=True)
        sealer = Sealer(lake, journal, settings.seal_every_s, log)
        sealer.start()
        live.update(journal=journal, state=state, sealer=sealer, signer=TicketSigner.for_lake(lake))
        log(f"annotation server on {lake.root}: {len(state.order)} queued pairs")
        try:
            yield
        finally:
            sealer.stop.set()
            sealer.join()
            journal.close()
            final = seal(lake)  # this server's last segment is dead now: sealed and removed
            log(f"shutdown: sealed {final.sealed} labels")
            lock.release()

    app = FastAPI(title="SynPref annotation", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def page(name: str, status: int = 200, **context) -> HTMLResponse:
        return HTMLResponse(templates.get_template(name).render(**context), status_code=status)

    def signin_page(error: str | None = None) -> HTMLResponse:
        return page("signin.html", status=401, error=error)

    @app.middleware("http")
    async def authenticate(request: Request, call_next):
        if request.url.path == "/signin" and request.method == "POST":
            response = await call_next(request)
        else:
            token = request.cookies.get(COOKIE)
            header = request.headers.get("authorization", "")
            if header.lower().startswith("bearer "):
                token = header[7:].strip()
            annotator = tokens.annotator(token)
            if annotator is None:
                if request.url.path.startswith("/api/"):
                    response = JSONResponse({"detail": "sign in with an annotator token"}, status_code=401)
                else:
                    response = signin_page()
            else:
                request.state.annotator = annotator
                response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.post("/signin")
    async def signin(request: Request):
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0].strip()
        if tokens.annotator(token) is None:
            return signin_page("That token is not valid.")
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", max_age=30 * 24 * 3600)
        return response

    @app.post("/signout")
    def signout():
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        return page("page.html", annotator=request.state.annotator, guideline=guideline.text,
                    guideline_version=guideline.version)

    @app.get("/api/next")
    def next_pair(request: Request):
        annotator = request.state.annotator
        pair, progress = live["state"].next_for(annotator)
        if pair is None:
            return {"pair": None, "ticket": None, "progress": progress.as_dict()}
        chosen_first = rng.random() < 0.5  # a fresh coin per showing: the order never follows the label
        shown = "chosen_first" if chosen_first else "rejected_first"
        candidates = [pair["chosen"], pair["rejected"]] if chosen_first else [pair["rejected"], pair["chosen"]]
        return {"pair": {"pair_id": pair["pair_id"], "conversation": pair["conversation"], "candidates": candidates,
                         "attributes": pair["attributes"], "origin": pair["origin"]},
                "ticket": live["signer"].issue(pair["pair_id"], annotator, shown),
                "progress": progress.as_dict()}

    @app.post("/api/labels")
    def save_label(request: Request, body: LabelIn):
        annotator, state = request.state.annotator, live["state"]
        if body.choice not in CHOICES:
            return JSONResponse({"detail": f"choice must be one of {', '.join(CHOICES)}"}, status_code=422)
        try:
            ticket = live["signer"].verify(body.ticket)
        except (TicketError, ValueError, KeyError) as e:
            return JSONResponse({"detail": f"bad ticket: {e}"}, status_code=400)
        if ticket["annotator"] != annotator:
            return JSONResponse({"detail": "this pair was shown to another annotator"}, status_code=403)
        label_id = ticket["nonce"]
        if not state.seen(label_id):  # a resubmitted ticket is saved once
            position = CHOICES[body.choice]
            choice = "cannot_decide" if position is None else (
                "chosen" if (position == 1) == (ticket["shown_order"] == "chosen_first") else "rejected")
            now = datetime.now(timezone.utc)
            live["journal"].append({
                "label_id": label_id, "pair_id": ticket["pair_id"], "annotator": annotator, "choice": choice,
                "shown_order": ticket["shown_order"], "comment": (body.comment or "").strip() or None,
                "seconds": round(max(0.0, time.time() - ticket["served_at"]), 3), "labelled_at": now.isoformat(),
                "guideline_version": guideline.version, "simulated": False, "source": "web",
                "recorded_at": now.isoformat()})
            state.record(label_id, ticket["pair_id"], annotator)
        return {"saved": True, "label_id": label_id, "progress": state.progress(annotator).as_dict()}

    return app
