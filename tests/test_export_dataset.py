"""The curated export's `datasets` copy holds the export's rows, value for value (not only as
many): real silver, filter and export stages on a small lake whose pool scores are set by hand
so that pairs are kept, flipped (their responses swapped) and dropped."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from conftest import rows, run_stages, write_jsonl, write_sources
from synpref.export_stage import dataset_dir, export_curated, export_path
from synpref.filter_stage import FilterSettings, filter_shard
from synpref.schemas import POOL_SCORES
from synpref.shards import N_SHARDS, shard_of
from synpref.stage2 import pool_scores_part

# (p_best, p_gold) -> the filter's decision without judges or humans
KEPT, FLIPPED, DROPPED = (0.9, 0.8), (0.1, 0.2), (0.9, 0.4)


def test_the_datasets_copy_holds_the_export_rows(lake, tmp_path):
    from datasets import load_from_disk

    write_jsonl(tmp_path / "a.jsonl", [{"prompt": f"Question {i}?", "chosen": f"Good answer {i}.",
                                        "rejected": f"Bad answer {i}."} for i in range(30)])
    run_stages(lake, write_sources(tmp_path / "s.yaml", [{"name": "a", "path": "a.jsonl",
                                                          "shape": "prompt_chosen_rejected"}]))
    ids = [r["pair_id"] for r in rows(lake, "silver_pairs", order="pair_id")]
    scores = {pid: (KEPT, FLIPPED, DROPPED)[i % 3] for i, pid in enumerate(ids)}
    fixed = {"fold": 0, "p_best_spread": 0.0, "members": 1, "best_model": "round-2", "best_version": "v001",
             "gold_model": "gold", "gold_version": "v001"}
    for shard in range(N_SHARDS):
        part = [dict(fixed, pair_id=pid, shard=shard, p_best=p_best, p_gold=p_gold, needs_judges=p_best <= 0.5)
                for pid, (p_best, p_gold) in scores.items() if shard_of(pid) == shard]
        pool_scores_part(lake, shard).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(part, schema=POOL_SCORES), pool_scores_part(lake, shard))
        filter_shard(lake, shard, FilterSettings())

    summary = export_curated(lake)
    assert summary.by_status == {"kept": 10, "flipped": 10, "dropped": 10} and summary.pairs == 20
    exported = sorted(pq.read_table(export_path(lake)).to_pylist(), key=lambda r: r["pair_id"])
    assert len(exported) == 20 and {r["status"] for r in exported} == {"kept", "flipped"}
    dataset = load_from_disk(str(dataset_dir(lake)))
    assert dataset.column_names == pq.read_schema(export_path(lake)).names
    copied = sorted(dataset.to_list(), key=lambda r: r["pair_id"])
    assert copied == exported  # every column of every row, responses swapped where flipped
    silver = {r["pair_id"]: r for r in rows(lake, "silver_pairs", order="pair_id")}
    for r in copied:
        good, bad = silver[r["pair_id"]]["chosen"], silver[r["pair_id"]]["rejected"]
        assert (r["chosen"][0]["content"], r["rejected"][0]["content"]) == \
            ((bad, good) if scores[r["pair_id"]] == FLIPPED else (good, bad))
