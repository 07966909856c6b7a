"""`synpref export --for trl`: the curated export of a demo lake as a dataset TRL's RewardTrainer
trains on as it is, for an encoder without a chat template (MiniLM) and for a chat model."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from conftest import rows, run_stages
from dagster_project.cli import main
from synpref.filtered.export import export_curated, export_path
from synpref.lake import Lake

DEMO_PAIRS = 40
FLIP_EVERY = 5  # one pair in five comes out flipped: the export swaps its responses


@pytest.fixture(scope="module")
def demo_lake(tmp_path_factory) -> Lake:
    """A demo lake's curated export in seconds: the demo's pairs (every source shape, multi-turn
    conversations) through the real ingest, silver, Stage 2 filter and export SQL; only the
    models' scores are stand-ins, so no reward model or judge runs."""
    from synpref.demo import generate_demo
    from synpref.filtered.filtering import FilterSettings, filter_shard
    from synpref.filtered.stage2 import pool_scores_part
    from synpref.lake.schemas import POOL_SCORES
    from synpref.lake.shards import N_SHARDS, shard_of

    tmp = tmp_path_factory.mktemp("trl")
    lake = Lake.at(tmp / "lake")
    run_stages(lake, generate_demo(tmp / "landing", pairs=DEMO_PAIRS, seed=0, workers=0).sources_file)
    scores, flipped = {shard: [] for shard in range(N_SHARDS)}, []
    for i, r in enumerate(rows(lake, "silver_pairs", order="pair_id")):
        p = 0.1 if i % FLIP_EVERY == 0 else 0.9  # both RMs clearly against the label: recycled flipped
        scores[shard_of(r["pair_id"])].append({
            "pair_id": r["pair_id"], "shard": shard_of(r["pair_id"]), "fold": 0, "p_best": p, "p_best_spread": 0.0,
            "members": 1, "p_gold": p, "needs_judges": p <= 0.5, "best_model": "round-2", "best_version": "v001",
            "gold_model": "gold", "gold_version": "v001"})
        if p < 0.5:
            flipped.append({"pair_id": r["pair_id"], "verdict": "flipped"})
    for shard, part in scores.items():
        pool_scores_part(lake, shard).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(part, schema=POOL_SCORES), pool_scores_part(lake, shard))
    lake.table_dir("silver_labels").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(flipped), lake.table_dir("silver_labels") / "part-0.parquet")
    for shard in range(N_SHARDS):
        filter_shard(lake, shard, FilterSettings())
    summary = export_curated(lake, with_dataset=False)
    assert summary.by_status.get("flipped") and summary.by_status.get("kept"), summary.by_status
    return lake


def _export_for_trl(lake: Lake, tokenizer: str, out, *extra: str):
    """The command as a user runs it; returns the dataset it wrote and the curated export's rows."""
    from datasets import load_from_disk

    result = CliRunner().invoke(main, ["export", "--for", "trl", "--tokenizer", tokenizer, "--out", str(out),
                                       "--lake", str(lake.root), *extra])
    assert result.exit_code == 0, result.output
    curated = {r["pair_id"]: r for r in pq.read_table(export_path(lake)).to_pylist()}
    return load_from_disk(str(out)), json.loads((out / "synpref_export.json").read_text()), curated


def _train_with_trl(model_dir: str, dataset, out) -> list[dict]:
    """TRL's RewardTrainer, as the README shows it, for two steps; returns its training log."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    trainer = RewardTrainer(
        model=model, processing_class=AutoTokenizer.from_pretrained(model_dir), train_dataset=dataset,
        args=RewardConfig(output_dir=str(out), max_steps=2, per_device_train_batch_size=2, logging_steps=1,
                          use_cpu=True, report_to=[], save_strategy="no", disable_tqdm=True))
    trainer.train()
    assert trainer.state.global_step == 2
    steps = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(steps) == 2 and all(math.isfinite(entry["loss"]) for entry in steps), trainer.state.log_history
    return steps


@pytest.mark.slow
def test_an_encoder_without_chat_template_trains_on_the_export(demo_lake, tmp_path):
    """MiniLM, the project's own encoder: TRL cannot read its pairs as text (no chat template,
    no eos token), so they come tokenized as the project's reward model reads them."""
    from transformers import AutoTokenizer

    from models.reward_model import conversation_text, resolve_backbone

    dataset, info, curated = _export_for_trl(demo_lake, "minilm", tmp_path / "trl", "--max-length", "128")
    assert (info["form"], info["rows"], info["max_length"]) == ("tokenized", len(curated), 128)
    assert sorted(dataset["pair_id"]) == sorted(curated)  # every curated pair, once
    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone("minilm"))
    whole = 0
    for r in dataset:
        source = curated[r["pair_id"]]  # flipped pairs included: chosen is what the export chose
        assert r["prompt"] == conversation_text(source["prompt"])
        assert (r["chosen"], r["rejected"]) == (source["chosen"][0]["content"], source["rejected"][0]["content"])
        for text, ids in ((r["chosen"], r["chosen_ids"]), (r["rejected"], r["rejected_ids"])):
            assert len(ids) <= 128
            expected = tokenizer(r["prompt"], text)["input_ids"]  # [CLS] conversation [SEP] response [SEP]
            if len(expected) <= 128:
                assert ids == expected
                whole += 1
            else:  # cut: the response's start stays, after what fits of the conversation's end
                assert ids[-1] == tokenizer.sep_token_id and ids.count(tokenizer.sep_token_id) == 2
    assert whole > 0
    _train_with_trl(resolve_backbone("minilm"), dataset, tmp_path / "run")


@pytest.mark.slow
def test_a_chat_model_trains_on_the_export_as_messages(demo_lake, tiny_model, tmp_path):
    """The tiny chat LLM (a chat template; Llama has a sequence-classification head): the pairs
    stay the curated export's messages, and TRL renders them with the model's template."""
    dataset, info, curated = _export_for_trl(demo_lake, str(tiny_model), tmp_path / "trl")
    assert (info["form"], info["rows"]) == ("conversational", len(curated))
    assert "chosen_ids" not in dataset.column_names
    by_id = {r["pair_id"]: r for r in dataset}
    assert by_id.keys() == curated.keys()
    for pair_id, source in curated.items():
        assert {k: by_id[pair_id][k] for k in ("prompt", "chosen", "rejected", "status", "source")} == \
            {k: source[k] for k in ("prompt", "chosen", "rejected", "status", "source")}
    _train_with_trl(str(tiny_model), dataset, tmp_path / "run")


def test_export_for_trl_says_what_is_missing(demo_lake, tmp_path):
    def export(lake_root, tokenizer):
        return CliRunner().invoke(main, ["export", "--for", "trl", "--tokenizer", tokenizer,
                                         "--out", str(tmp_path / "out"), "--lake", str(lake_root)])

    no_export = export(tmp_path / "empty lake", "minilm")
    assert no_export.exit_code == 1 and "no curated export under" in no_export.output
    assert "synpref stage2" in no_export.output
    no_folder = export(demo_lake.root, str(tmp_path / "no such model"))
    assert no_folder.exit_code == 1 and "is not a local model folder" in no_folder.output
    (tmp_path / "not a model").mkdir()
    no_tokenizer = export(demo_lake.root, str(tmp_path / "not a model"))
    assert no_tokenizer.exit_code == 1 and "no tokenizer in" in no_tokenizer.output
    assert not (tmp_path / "out").exists()
