"""Which model wrote a pair's attributes, and whether it was a random test LLM: the tiny model
says so in its config.json, and latest_attributes carries both to the annotation page, over
pair_attributes parts written before the test_model column existed too."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pyarrow as pa
import pytest

from synpref.lake import schemas, write_part
from synpref.lake.duck import connect as duck_connect
from synpref.silver.attributes import register_latest_attributes
from models.tiny_llm import is_test_model


@pytest.mark.slow
def test_only_the_tiny_llm_is_a_test_model(tiny_model, tmp_path):
    assert is_test_model(str(tiny_model))
    real = tmp_path / "real-model"
    real.mkdir()
    (real / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": 32000}))
    assert not is_test_model(str(real))
    assert not is_test_model("Qwen/Qwen3-32B")  # a served model's name: nothing to read, not marked
    assert not is_test_model(str(tmp_path / "missing"))


def _row(pair_id: str, model: str, **extra) -> dict:
    return {"pair_id": pair_id, "model": model, "prompt_version": "attributes-v1", "status": "ok",
            "task_category": "math", "objectivity": "objective", "controversiality": "low",
            "desired_attributes": ["aus"], "annotation_guideline": "aus", "attempts": 1, "error": None,
            "raw_output": "{}", "annotated_at": datetime.now(timezone.utc), **extra}


def _latest(lake) -> dict[str, tuple]:
    with duck_connect(lake) as con:
        register_latest_attributes(con, lake)
        return {p: (m, t) for p, m, t in con.execute(
            "select pair_id, model, test_model from latest_attributes").fetchall()}


def test_latest_attributes_name_the_model_and_whether_it_was_a_test_llm(lake):
    assert _latest(lake) == {}  # before any attributes: the view exists, empty
    # a part from before the column: no test_model at all, so unknown (null), never a guess
    old_schema = schemas.PAIR_ATTRIBUTES.remove(schemas.PAIR_ATTRIBUTES.get_field_index("test_model"))
    write_part(lake, "pair_attributes", pa.Table.from_pylist([_row("p-old", "tiny")], schema=old_schema))
    assert _latest(lake) == {"p-old": ("tiny", None)}
    write_part(lake, "pair_attributes", pa.Table.from_pylist(
        [_row("p-noise", "tiny", test_model=True), _row("p-real", "Qwen/Qwen3-32B", test_model=False)],
        schema=schemas.PAIR_ATTRIBUTES))
    assert _latest(lake) == {"p-old": ("tiny", None), "p-noise": ("tiny", True), "p-real": ("Qwen/Qwen3-32B", False)}
