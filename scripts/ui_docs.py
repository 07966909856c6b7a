"""Screenshots of the Dagster UI on a finished demo lake, for the docs (headless Chromium):

- docs/lineage.png: the global asset lineage, groups (= layers) expanded;
- docs/asset_page.png: one asset's page with its figure (default gold_pairs: outcomes and agreement);
- docs/runs.png: the runs list, every run named by its job.

    .venv/bin/python scripts/ui_docs.py --lake lake [--out docs] [--asset gold_pairs]

It starts `synpref ui` on the lake (the lake's own Dagster home), waits for it, and stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VIEW = {"width": 1800, "height": 1400}
ZOOM_OUT = 1
FIGURE = {"gold_pairs": "figure", "pool_scores": "score_histogram", "stage1_rounds": "gold_accuracy_by_round",
          "curated_export": "retention_chart"}  # asset -> the metadata key of its figure


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(port: int, proc: subprocess.Popen, timeout: float = 180) -> None:
    query = json.dumps({"query": "{ assetNodes { id } }"}).encode()
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("synpref ui exited")
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=query,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as resp:
                if json.load(resp)["data"]["assetNodes"]:
                    return
        except (OSError, KeyError, TypeError):
            pass
        time.sleep(1)
    raise SystemExit("the UI did not answer in time")


def shoot(base: str, out: Path, asset: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport=VIEW)
        page.goto(f"{base}/asset-groups", wait_until="networkidle")
        page.wait_for_timeout(4000)
        skip = page.get_by_role("button", name="Skip")  # the first visit's newsletter dialog
        if skip.count():
            skip.first.click()
            page.wait_for_timeout(1000)
        # the lineage opens with the groups (the layers) collapsed: the canvas's menu expands them all
        page.mouse.click(VIEW["width"] - 200, 200, button="right")
        page.wait_for_timeout(1000)
        expand = page.get_by_text("Expand all groups").locator("visible=true")
        if not expand.count():
            raise SystemExit("no 'Expand all groups' in the lineage's menu")
        expand.first.click()
        page.wait_for_timeout(3000)
        hide = page.get_by_text("Hide navigation").locator("visible=true")
        if hide.count():  # room for the graph
            hide.first.click()
            page.wait_for_timeout(1000)
        for _ in range(ZOOM_OUT):  # the zoom control's minus, bottom right: the whole graph in view
            page.mouse.click(VIEW["width"] - 28, VIEW["height"] - 149)
            page.wait_for_timeout(800)
        page.wait_for_timeout(2000)
        page.screenshot(path=str(out / "lineage.png"))
        page.goto(f"{base}/assets/{asset}", wait_until="networkidle")
        page.wait_for_timeout(5000)
        # the figure is Markdown with an image: the metadata table folds it; open it over the page
        show = page.locator("tr", has_text=FIGURE[asset]).get_by_text("[Show Markdown]").locator("visible=true")
        if show.count():
            show.first.click()
            page.wait_for_timeout(3000)
        page.screenshot(path=str(out / "asset_page.png"))
        page.goto(f"{base}/runs", wait_until="networkidle")
        page.wait_for_timeout(4000)
        page.screenshot(path=str(out / "runs.png"))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True)
    parser.add_argument("--out", default=str(REPO / "docs"))
    parser.add_argument("--asset", default="gold_pairs", choices=sorted(FIGURE))
    args = parser.parse_args()
    port = _free_port()
    synpref = Path(sys.executable).with_name("synpref")
    proc = subprocess.Popen([str(synpref), "ui", "--lake", args.lake, "--port", str(port)],
                            env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        _wait(port, proc)
        shoot(f"http://127.0.0.1:{port}", Path(args.out), args.asset)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    print(f"screenshots in {args.out}: lineage.png, asset_page.png, runs.png")


if __name__ == "__main__":
    main()
