"""The annotation web app (FastAPI). One server per lake; run it with `synpref annotate serve`.

Every request needs an annotator's token (the sign-in cookie, or `Authorization: Bearer`);
without a valid one the answer is 401 (for a page, the sign-in form). Texts reach the page
as JSON: conversation turns and responses also as HTML rendered from their markdown here, with
no HTML of their own let through (markdown.py); everything else is put in with textContent. The
Content-Security-Policy allows only the app's own script file, so nothing inside a response can run.

A label is journaled (written and fsynced) before the page is told it was saved; the journal
is sealed into human_labels at start (recovering a killed server's labels), every
`seal_every_s` seconds, and at shutdown.

A ticket is good for `lease_s` seconds (the time its pair is held for the annotator): after
that the label is refused with 410. An annotator labels a pair once: resending the same
choice is a retry (200, nothing new stored), another choice gets 409 with the kept one. No
request body may exceed MAX_BODY bytes (413, answered before the body is read).
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

from synpref.gold.annotate.guideline import load_guideline
from synpref.gold.annotate.markdown import render_markdown
from synpref.gold.annotate.state import AnnotationState
from synpref.gold.annotate.tickets import TicketError, TicketSigner
from synpref.gold.annotators import Tokens
from synpref.gold.human_labels import seal
from synpref.gold.label_journal import LabelJournal
from synpref.lake import Lake

HERE = Path(__file__).resolve().parent
COOKIE = "synpref_token"
CHOICES = {"1": 1, "2": 2, "cannot_decide": None}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                    "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY", "Cache-Control": "no-store"}
MAX_COMMENT = 5000
MAX_BODY = 64 * 1024  # a label (ticket + 5000-character comment) is far smaller; nothing here needs more


@dataclass(frozen=True)
class ServeSettings:
    labels_per_pair: int = 1  # annotators per pair before it leaves the queue (2+ to measure agreement)
    seal_every_s: float = 10.0  # how often journaled labels are sealed into human_labels
    lease_s: float = 600.0  # a shown pair is held for its annotator this long; its ticket expires then
    guideline_version: str = "annotation-v1"


class LabelIn(BaseModel):
    ticket: str = Field(max_length=2000)
    choice: str
    comment: str | None = Field(default=None, max_length=MAX_COMMENT)


class BodyLimit:
    """Refuses request bodies over `limit` bytes with 413, on every route: a declared
    Content-Length before a byte of the body is read, a chunked body as soon as it passes the
    limit. It sits outside everything else, so no handler (/signin included) buffers more."""

    def __init__(self, app, limit: int = MAX_BODY):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await self._refuse(scope, send)
        received, refused = 0, False

        async def counted():
            nonlocal received, refused
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit and not refused:
                refused = True
                await self._refuse(scope, send)
            # once refused, the app sees the client gone and its own answer is dropped below
            return {"type": "http.disconnect"} if refused else message

        async def unless_refused(message):
            if not refused:
                await send(message)

        try:
            await self.app(scope, counted, unless_refused)
        except Exception:
            if not refused:  # the app's failure reading a body we cut off is expected; others are not
                raise

    async def _refuse(self, scope, send) -> None:
        # Connection: close, so the server does not go on receiving the rest of the body
        await JSONResponse({"detail": f"request body over {self.limit // 1024} KiB"}, status_code=413,
                           headers={**SECURITY_HEADERS, "Connection": "close"})(scope, None, send)


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


def relative_choice(position: str, shown_order: str) -> str:
    """The page's answer ("1", "2", "cannot_decide") as stored: relative to the original label."""
    if CHOICES[position] is None:
        return "cannot_decide"
    return "chosen" if (CHOICES[position] == 1) == (shown_order == "chosen_first") else "rejected"


def shown_choice(choice: str, shown_order: str) -> str:
    """A stored choice as the page names it, for a pair shown in shown_order."""
    if choice not in ("chosen", "rejected"):
        return "cannot_decide"
    return "1" if (choice == "chosen") == (shown_order == "chosen_first") else "2"


def create_app(lake: Lake, settings: ServeSettings = ServeSettings(), log=print) -> FastAPI:
    templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))
    guideline = load_guideline(settings.guideline_version)
    tokens = Tokens(lake)
    rng = random.SystemRandom()
    live: dict = {}
    # Saves run one at a time from the checks to the journal (appends are serial anyway): two
    # racing saves cannot both take a pair's last slot, and a retry is answered only once the
    # first label is on disk.
    save_lock = threading.Lock()

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

    app.add_middleware(BodyLimit)  # added after authenticate, so outside it: sizes are checked before anything

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
        conversation = [{**m, "content_html": render_markdown(m["content"])} for m in pair["conversation"]]
        return {"pair": {"pair_id": pair["pair_id"], "conversation": conversation, "candidates": candidates,
                         "candidates_html": [render_markdown(c) for c in candidates],
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
        pair_id, shown_order = ticket["pair_id"], ticket["shown_order"]
        choice = relative_choice(body.choice, shown_order)
        with save_lock:
            kept = state.kept(pair_id, annotator)
            if kept is not None:
                # An annotator labels a pair once (by this ticket or another showing of the pair). The
                # same choice again is a client retry (a lost answer, a double click): idempotent 200,
                # nothing new stored. Another choice is not silently dropped: 409 names the kept one
                # (a correction is a newer row, by import).
                kept_id, kept_choice = kept
                if kept_choice != choice:
                    return JSONResponse({"detail": "already labelled: the first choice is kept", "saved": False,
                                         "label_id": kept_id, "kept_choice": shown_choice(kept_choice, shown_order)},
                                        status_code=409)
                return {"saved": True, "repeat": True, "label_id": kept_id,
                        "progress": state.progress(annotator).as_dict()}
            if time.time() - ticket["served_at"] > settings.lease_s:
                # the pair was held for this annotator only so long; it may be someone else's now
                return JSONResponse({"detail": "ticket expired; fetch the next pair"}, status_code=410)
            if not state.has_room(pair_id, annotator):
                return JSONResponse({"detail": "this pair has all its labels; fetch the next pair"}, status_code=410)
            label_id = ticket["nonce"]
            now = datetime.now(timezone.utc)
            live["journal"].append({
                "label_id": label_id, "pair_id": pair_id, "annotator": annotator, "choice": choice,
                "shown_order": shown_order, "comment": (body.comment or "").strip() or None,
                "seconds": round(max(0.0, time.time() - ticket["served_at"]), 3), "labelled_at": now.isoformat(),
                "guideline_version": guideline.version, "simulated": False, "source": "web",
                "recorded_at": now.isoformat()})
            state.record(label_id, pair_id, annotator, choice)
        return {"saved": True, "label_id": label_id, "progress": state.progress(annotator).as_dict()}

    return app
