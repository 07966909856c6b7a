"""The annotation page in a real browser: Playwright drives Debian's chromium (headless) against
`synpref annotate serve`. Sign in, label pairs by clicks and keys, find them in gold_pairs; a
script inside a response is shown as text, never run; markdown shows as code and lists; and
attributes a random test LLM wrote carry a banner saying they are noise.

SYNPREF_SCREENSHOTS=<folder> saves screenshots of the banner and of a code block there."""

from __future__ import annotations

import os
import shutil

import pytest
from playwright.sync_api import expect

from pathlib import Path

from support.annotation import pair_ids, silver_lake, simple_records, stored_labels, write_attributes
from synpref.gold.annotate.process import AnnotationServer
from synpref.gold.annotation_queue import queue_for_humans
from synpref.gold.annotators import add_annotator
from synpref.gold.gold_pairs import build_gold_pairs
from synpref.gold.human_labels import seal

pytestmark = pytest.mark.browser
PAYLOAD = '<img src=x onerror="window.__pwned=1;alert(1)"><script>window.__pwned=2;alert(2)</script>'


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = os.environ.get("SYNPREF_CHROMIUM") or shutil.which("chromium")
    if not executable:
        pytest.fail("chromium is not installed: run `make browser` (scripts/install_browser.sh) or "
                    "`apt-get install -y chromium`, or point SYNPREF_CHROMIUM at a Chromium binary")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def _sign_in(page, server: AnnotationServer, token: str) -> None:
    response = page.goto(server.url + "/")
    assert response.status == 401  # no token yet: the sign-in form
    page.fill("#token", token)
    page.click("#signin")
    page.wait_for_selector("#task:not([hidden])")


def _shown(page) -> dict:
    return {"pair_id": page.text_content("#pair-id"), "1": page.text_content("#candidate-1"),
            "2": page.text_content("#candidate-2"), "progress": page.text_content("#progress")}


def test_label_five_pairs_by_clicks_and_keys_then_they_are_gold(lake, tmp_path, page):
    silver_lake(lake, tmp_path, simple_records(8))
    queue_for_humans(lake, "test", select_sql="select pair_id from silver_pairs")
    token = add_annotator(lake, "alice")
    server = AnnotationServer(lake, tmp_path / "server.log")
    try:
        _sign_in(page, server, token)
        assert page.text_content("#annotator") == "alice"
        # (how, which candidate); a comment is written on the fourth
        actions = [("click", "1"), ("click", "2"), ("key", "1"), ("key", "2"), ("click", "1")]
        preferred: dict[str, str] = {}
        for step, (how, which) in enumerate(actions):
            shown = _shown(page)
            assert shown["progress"] == f"{step} of 8"
            if step == 3:
                page.keyboard.press("c")
                page.keyboard.type("Checked the sum.")
                page.keyboard.press("Escape")
            if how == "click":
                page.click(f"#choose-{which}")
            else:
                page.keyboard.press(which)
            expect(page.locator("#pair-id")).not_to_have_text(shown["pair_id"])  # the next pair is up
            expect(page.locator("#progress")).to_have_text(f"{step + 1} of 8")
            preferred[shown["pair_id"]] = shown[which]
        assert page.text_content("#status") == "Saved (5 of 8)."
        undecided = _shown(page)["pair_id"]
        page.keyboard.press("3")  # cannot decide: discarded, never gold
        expect(page.locator("#pair-id")).not_to_have_text(undecided)
        expect(page.locator("#progress")).to_have_text("6 of 8")

        seal(lake)  # what the human_labels asset does before gold_pairs: the running server's journal too
        summary = build_gold_pairs(lake)
        assert summary.rows == 5 and summary.outcomes["cannot_decide"] == 1
        gold = {r["pair_id"]: r for r in _gold(lake)}
        assert set(gold) == set(preferred) and undecided not in gold
        for pid, text in preferred.items():
            assert gold[pid]["chosen"] == text  # the response alice preferred, whatever side it was on
    finally:
        assert server.shutdown()
    labels = {r["pair_id"]: r for r in stored_labels(lake)}
    assert len(labels) == 6 and labels[undecided]["choice"] == "cannot_decide"
    assert [r["comment"] for r in labels.values() if r["comment"]] == ["Checked the sum."]
    assert all(r["annotator"] == "alice" and r["seconds"] > 0 and r["guideline_version"] == "annotation-v1"
               and r["source"] == "web" and r["simulated"] is False for r in labels.values())


def _gold(lake):
    from conftest import rows

    return rows(lake, "gold_pairs", order="pair_id")


def _screenshot(page, name: str) -> None:
    if folder := os.environ.get("SYNPREF_SCREENSHOTS"):
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_a_script_inside_a_response_is_shown_as_text_never_run(lake, tmp_path, page):
    # markdown around the payload too: in a list item and as a link's text with a javascript: target
    silver_lake(lake, tmp_path, [{"prompt": f"Say hi {PAYLOAD}", "chosen": f"Hi! {PAYLOAD}",
                                  "rejected": f"- No. {PAYLOAD}\n- [{PAYLOAD}](javascript:alert(3))"}])
    (pid,) = pair_ids(lake)
    write_attributes(lake, {pid: ("objective", "low")}, guideline=f"Prefer a greeting. {PAYLOAD}")
    queue_for_humans(lake, "test", pair_ids=[pid])
    token = add_annotator(lake, "mallory-target")
    server = AnnotationServer(lake, tmp_path / "server.log")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        _sign_in(page, server, token)
        texts = [page.text_content(s) for s in ("#candidate-1", "#candidate-2", "#conversation", "#pair-guideline")]
        assert all(PAYLOAD in text for text in texts), texts
        assert "&lt;script&gt;" in page.inner_html("#candidate-1")  # escaped, i.e. text
        assert page.locator("#task script, #task img, #task iframe, #task a").count() == 0
        assert page.locator(".candidates li").count() == 2  # the list is a list; its items hold text only
        page.wait_for_timeout(300)  # an onerror handler would have fired by now
        assert page.evaluate("window.__pwned === undefined") and dialogs == []
        csp = page.goto(server.url + "/").headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    finally:
        assert server.shutdown()


def test_a_label_past_its_lease_is_refused_and_the_page_moves_on(lake, tmp_path, page):
    """410 (the lease ran out): the page says so, fetches a pair with a fresh ticket, and the
    next click saves; nothing was stored for the late click."""
    silver_lake(lake, tmp_path, simple_records(3))
    queue_for_humans(lake, "test", select_sql="select pair_id from silver_pairs")
    token = add_annotator(lake, "carol")
    server = AnnotationServer(lake, tmp_path / "server.log", "--lease", "1")
    try:
        _sign_in(page, server, token)
        page.wait_for_timeout(2_000)  # past the one-second lease
        page.click("#choose-1")
        expect(page.locator("#status")).to_have_text(
            "Not saved: ticket expired; fetch the next pair. This is the next pair.")
        expect(page.locator("#progress")).to_have_text("0 of 3")
        page.click("#choose-2")
        expect(page.locator("#status")).to_have_text("Saved (1 of 3).")
    finally:
        assert server.shutdown()
    assert len(stored_labels(lake)) == 1


def test_attributes_from_the_test_llm_carry_a_banner_and_others_do_not(lake, tmp_path, page):
    silver_lake(lake, tmp_path, simple_records(3))
    noise, real, bare = pair_ids(lake)
    # the queue shows objective pairs first, then subjective ones, then pairs without attributes
    write_attributes(lake, {noise: ("objective", "low")}, model="tiny", test_model=True)
    write_attributes(lake, {real: ("subjective", "low")}, model="Qwen/Qwen3-32B", test_model=False)
    queue_for_humans(lake, "test", select_sql="select pair_id from silver_pairs")
    token = add_annotator(lake, "dora")
    server = AnnotationServer(lake, tmp_path / "server.log")
    banner = page.locator("#test-model-banner")
    try:
        _sign_in(page, server, token)
        assert page.text_content("#pair-id") == noise
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("randomly initialised test LLM: they are noise, not guidance")
        expect(page.locator("#attr-model")).to_have_text("tiny")
        _screenshot(page, "page-banner.png")
        page.click("#choose-1")
        expect(page.locator("#pair-id")).to_have_text(real)
        expect(banner).to_be_hidden()  # hidden again for the next pair, not left over
        expect(page.locator("#attr-model")).to_have_text("Qwen/Qwen3-32B")
        page.click("#choose-1")
        expect(page.locator("#pair-id")).to_have_text(bare)
        expect(banner).to_be_hidden()
        expect(page.locator("#attr-task_category")).to_have_text("—")
    finally:
        assert server.shutdown()


CODE = ("def sort_items(items):\n    return sorted(items, key=lambda x: x < 0)\n"
        f"# a long line: {'it scrolls inside its block ' * 12}")


def test_markdown_in_a_response_shows_as_code_and_lists(lake, tmp_path, page):
    chosen = (f"Use `sorted`:\n\n```python\n{CODE}\n```\n\n- it returns a new list\n- the input stays as it was\n\n"
              "See [the docs](https://docs.python.org/3/howto/sorting.html), not [this](javascript:window.__pwned=3).")
    silver_lake(lake, tmp_path, [{"prompt": "Write a **Python** function that sorts a list.", "chosen": chosen,
                                  "rejected": "1. Call `items.sort()`\n2. Return `items`"}])
    queue_for_humans(lake, "test", select_sql="select pair_id from silver_pairs")
    token = add_annotator(lake, "erin")
    server = AnnotationServer(lake, tmp_path / "server.log")
    try:
        _sign_in(page, server, token)
        code = page.locator(".candidates pre > code")
        expect(code).to_have_count(1)
        assert code.text_content() == CODE + "\n"  # the code as written, < and indentation included
        assert code.get_attribute("class") == "language-python"
        items = page.locator(".candidates li")
        assert sorted(items.all_text_contents()) == sorted(["it returns a new list", "the input stays as it was",
                                                            "Call items.sort()", "Return items"])
        assert page.locator(".candidates ol > li").count() == 2 and page.locator(".candidates ul > li").count() == 2
        expect(page.locator("#conversation strong")).to_have_text("Python")  # the prompt's markdown too
        link = page.locator(".candidates a")
        expect(link).to_have_count(1)  # the javascript: one is left as text
        assert link.get_attribute("href") == "https://docs.python.org/3/howto/sorting.html"
        assert link.get_attribute("target") == "_blank"
        assert "[this](javascript:window.__pwned=3)" in page.text_content(".candidates")
        # the long code line scrolls inside its block instead of widening its candidate
        assert page.locator(".candidates pre").evaluate("e => e.scrollWidth > e.clientWidth")
        widths = page.locator(".candidates article").evaluate_all("es => es.map(e => e.clientWidth)")
        assert abs(widths[0] - widths[1]) <= 1, widths
        _screenshot(page, "page-code.png")
    finally:
        assert server.shutdown()
