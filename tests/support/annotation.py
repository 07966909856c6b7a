"""Helpers of the human-annotation tests: a silver lake with attributes and labels."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pyarrow as pa

from synpref.lake.duck import lit
from conftest import rows, run_stages, write_jsonl, write_sources
from synpref.lake import schemas
from synpref.lake import Lake, write_part


def silver_lake(lake: Lake, tmp_path: Path, records: list[dict]) -> Lake:
    """Ingest prompt/chosen/rejected records and build silver_pairs."""
    write_jsonl(tmp_path / "pairs.jsonl", records)
    run_stages(lake, write_sources(tmp_path / "sources.yaml", [{"name": "test", "path": "pairs.jsonl",
                                                              "shape": "prompt_chosen_rejected"}]))
    return lake


def simple_records(n: int, tag: str = "") -> list[dict]:
    return [{"prompt": f"Question {i}{tag}: what is {i} + {i}?", "chosen": f"{i} + {i} = {2 * i}.",
             "rejected": f"{i} + {i} = {2 * i + 1}."} for i in range(n)]


def pair_ids(lake: Lake, where: str = "true") -> list[str]:
    con = duckdb.connect()
    try:
        return [r[0] for r in con.execute(f"select pair_id from read_parquet({lit(lake.table_glob('silver_pairs'))}) "
                                          f"where {where} order by pair_id").fetchall()]
    finally:
        con.close()


def silver_texts(lake: Lake) -> dict[str, tuple[str, str]]:
    """pair_id -> (chosen, rejected) as in silver_pairs."""
    con = duckdb.connect()
    try:
        return {p: (c, r) for p, c, r in con.execute(
            f"select pair_id, chosen, rejected from read_parquet({lit(lake.table_glob('silver_pairs'))})").fetchall()}
    finally:
        con.close()


def write_attributes(lake: Lake, attributes: dict[str, tuple[str, str]], guideline: str = "Check the sum.",
                     model: str = "test", test_model: bool | None = None) -> None:
    """pair_attributes rows (status ok) with the given (objectivity, controversiality) per pair,
    written by `model` (`test_model`: a random test LLM, as the stage records it)."""
    now = datetime.now(timezone.utc)
    write_part(lake, "pair_attributes", pa.Table.from_pylist([{
        "pair_id": pid, "model": model, "test_model": test_model, "prompt_version": "attributes-v1", "status": "ok",
        "task_category": "math", "objectivity": obj, "controversiality": contro,
        "desired_attributes": ["correct arithmetic"], "annotation_guideline": guideline, "attempts": 1,
        "error": None, "raw_output": "{}", "annotated_at": now} for pid, (obj, contro) in attributes.items()],
        schema=schemas.PAIR_ATTRIBUTES))


def stored_labels(lake: Lake) -> list[dict]:
    return rows(lake, "human_labels", order="recorded_at, label_id")
