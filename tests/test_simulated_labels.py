"""Simulated annotators on demo data: labels from the generator's truth, marked simulated,
turned into gold pairs that recover the planted flips."""

from __future__ import annotations

import duckdb

from synpref.lake.duck import lit
from conftest import rows
from synpref.gold.annotation_queue import queue_for_humans
from synpref.demo import generate_demo
from synpref.demo.simulated import ANNOTATORS, simulate_annotators, true_choices
from synpref.gold.gold_pairs import build_gold_pairs
from synpref.raw.ingest import ingest_sources
from synpref.gold.human_labels import seal
from synpref.silver.pool import build_silver
from synpref.raw.sources import load_sources


def test_simulated_labels_recover_the_planted_flips(lake):
    summary = generate_demo(lake.root / "landing" / "demo", pairs=300, seed=3)
    config = load_sources(summary.sources_file)
    ingest_sources(lake, config)
    build_silver(lake, config.decontamination)
    queue_for_humans(lake, "round-1", select_sql="select pair_id from silver_pairs", size=120)
    queued = {r["pair_id"] for r in rows(lake, "annotation_queue", order="pair_id")}
    truth = true_choices(lake, sorted(queued))
    assert set(truth.values()) >= {"chosen", "rejected"}  # the demo plants flips

    written = simulate_annotators(lake, origin="round-1")
    assert written == len(queued) * len(ANNOTATORS)
    assert simulate_annotators(lake, origin="round-1") == 0  # a rerun labels nothing twice (journaled)
    assert not lake.has_table("human_labels")  # in the label journal, as a finished annotation server leaves them
    assert seal(lake).sealed == written  # what the human_labels asset does
    assert simulate_annotators(lake, origin="round-1") == 0  # ... nor once they are stored
    labels = rows(lake, "human_labels", order="pair_id, annotator")
    assert len(labels) == written and all(label["simulated"] for label in labels)
    mistakes = sum(label["choice"] != truth[label["pair_id"]] for label in labels)
    assert 0 < mistakes < 0.15 * written  # a few honest mistakes, seeded

    build_gold_pairs(lake)
    gold = rows(lake, "gold_pairs", order="pair_id")
    decidable = {pid for pid, t in truth.items() if t != "cannot_decide"}
    assert {g["pair_id"] for g in gold} <= decidable and len(gold) > 0.9 * len(decidable)
    assert all(g["simulated"] for g in gold)
    wrong = [g for g in gold if g["flipped"] != (truth[g["pair_id"]] == "rejected")]
    assert len(wrong) <= 0.05 * len(gold)  # the majority of three almost always finds the truth
    con = duckdb.connect()
    flipped_back = con.execute(f"select count(*) from read_parquet({lit(lake.table_glob('gold_pairs'))}) as g "
                               f"join read_parquet({lit(lake.table_glob('silver_pairs'))}) as s using (pair_id) "
                               f"where g.flipped and g.chosen = s.rejected").fetchone()[0]
    assert flipped_back == sum(g["flipped"] for g in gold)
