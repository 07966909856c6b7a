"""Make the README's figures of human annotation, on a demo lake in a temporary folder:

- docs/annotation_page.png: the annotation page in headless chromium (Playwright), showing one
  hand-written example pair whose attributes are also written by hand (the tiny demo LLM's
  attributes are noise and would show nothing useful);
- docs/gold_pairs_figure.png: the gold_pairs asset's metadata figure, after three SIMULATED
  annotators labelled 40 queued demo pairs through the real server over HTTP: each pair has a
  hidden better side (the original label's for 75% of pairs, seeded by pair_id), which the
  annotators find with probability 0.9, 0.8 and 0.65 (and 5% "cannot decide").

    .venv/bin/python scripts/annotation_docs.py [--out docs]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pyarrow as pa
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from synpref.lake import schemas  # noqa: E402
from synpref.gold.annotate.process import AnnotationServer  # noqa: E402
from synpref.gold.annotation_queue import queue_for_humans  # noqa: E402
from synpref.gold.annotators import add_annotator  # noqa: E402
from synpref.demo import generate_demo  # noqa: E402
from synpref.gold.gold_pairs import build_gold_pairs  # noqa: E402
from synpref.gold.gold_figure import gold_figure  # noqa: E402
from synpref.raw.ingest import ingest_sources  # noqa: E402
from synpref.lake import Lake, write_part  # noqa: E402
from synpref.silver.pool import build_silver  # noqa: E402
from synpref.raw.sources import load_sources  # noqa: E402

EXAMPLE = {"prompt": "My recipe needs 3/4 cup of sugar per batch and I'm making 2.5 batches. How much sugar "
                     "is that in total?",
           "chosen": "3/4 x 2.5 = 1.875, so you need 1 7/8 cups of sugar (1 3/4 cups plus 2 tablespoons).",
           "rejected": "You need 2 cups of sugar: 3/4 x 2.5 is about 2."}
EXAMPLE_ATTRIBUTES = {"task_category": "math", "objectivity": "objective", "controversiality": "low",
                      "desired_attributes": ["correct arithmetic", "a usable kitchen measure"],
                      "annotation_guideline": "Check the multiplication: 0.75 x 2.5 = 1.875. A response with a "
                                              "wrong total loses, however confident."}
SIMULATED = {"sim-annotator-1": 0.9, "sim-annotator-2": 0.8, "sim-annotator-3": 0.65}  # P(finds the better side)


def build_lake(root: Path) -> tuple[Lake, str]:
    lake = Lake.at(root / "lake")
    landing = root / "landing"
    summary = generate_demo(landing, pairs=300, seed=0)
    (landing / "example.jsonl").write_text(json.dumps(EXAMPLE) + "\n")
    doc = yaml.safe_load(Path(summary.sources_file).read_text())
    doc["sources"].append({"name": "example", "path": "example.jsonl", "shape": "prompt_chosen_rejected"})
    sources = landing / "sources_with_example.yaml"
    sources.write_text(yaml.safe_dump(doc))
    config = load_sources(sources)
    ingest_sources(lake, config)
    build_silver(lake, config.decontamination)
    import duckdb

    con = duckdb.connect()
    (example_id,) = con.execute(f"select pair_id from read_parquet('{lake.table_glob('silver_pairs')}') "
                                f"where source = 'example'").fetchone()
    con.close()
    write_part(lake, "pair_attributes", pa.Table.from_pylist([{
        "pair_id": example_id, "model": "hand-written", "prompt_version": "illustration", "status": "ok",
        **EXAMPLE_ATTRIBUTES, "attempts": 1, "error": None, "raw_output": None,
        "annotated_at": datetime.now(timezone.utc)}], schema=schemas.PAIR_ATTRIBUTES))
    queue_for_humans(lake, "docs", pair_ids=[example_id])
    queue_for_humans(lake, "docs", select_sql="select pair_id from silver_pairs where source <> 'example' "
                                              "order by hash(pair_id)", size=40)
    return lake, example_id


def simulate(server: AnnotationServer, token: str, agree_p: float, seed: int, texts: dict) -> int:
    rng = random.Random(seed)
    done = 0
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as client:
        while (data := client.get("/api/next").json())["pair"] is not None:
            pair_id = data["pair"]["pair_id"]
            chosen, _ = texts[pair_id]
            original_at = "1" if data["pair"]["candidates"][0] == chosen else "2"
            # a latent truth all annotators share: the original label is right for 75% of pairs
            better_at = original_at if random.Random(pair_id).random() < 0.75 else {"1": "2", "2": "1"}[original_at]
            choice = "cannot_decide" if rng.random() < 0.05 else (
                better_at if rng.random() < agree_p else {"1": "2", "2": "1"}[better_at])
            client.post("/api/labels", json={"ticket": data["ticket"], "choice": choice}).raise_for_status()
            done += 1
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        lake, _ = build_lake(Path(tmp))
        import duckdb

        con = duckdb.connect()
        texts = {p: (c, r) for p, c, r in con.execute(
            f"select pair_id, chosen, rejected from read_parquet('{lake.table_glob('silver_pairs')}')").fetchall()}
        con.close()
        tokens = {name: add_annotator(lake, name) for name in [*SIMULATED, "you"]}
        server = AnnotationServer(lake, Path(tmp) / "server.log", "--labels-per-pair", "4")
        try:
            for seed, (name, agree_p) in enumerate(SIMULATED.items()):
                print(f"{name}: {simulate(server, tokens[name], agree_p, seed, texts)} labels")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), headless=True)
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.goto(server.url + "/")
                page.fill("#token", tokens["you"])
                page.click("#signin")
                page.wait_for_selector("#task:not([hidden])")
                page.fill("#comment", "0.75 x 2.5 = 1.875; the 2-cup answer rounds it wrongly.")
                page.screenshot(path=str(args.out / "annotation_page.png"), full_page=True)
                browser.close()
        finally:
            server.shutdown()
        summary = build_gold_pairs(lake)
        gold_figure(summary).savefig(args.out / "gold_pairs_figure.png", dpi=90, bbox_inches="tight")
        a = summary.agreement
        print(f"gold pairs {summary.rows} ({summary.flipped} flipped); outcomes {summary.outcomes}; "
              f"pairwise agreement {a.pairwise}, Fleiss' kappa {a.fleiss_kappa}, Cohen's kappa mean {a.cohen_mean}")
    print(f"wrote {args.out / 'annotation_page.png'} and {args.out / 'gold_pairs_figure.png'}")


if __name__ == "__main__":
    main()
