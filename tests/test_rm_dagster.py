"""The model assets under real Dagster: reward_model launches the DeepSpeed script through
Dagster Pipes (its log lines reach the run), rm_eval evaluates it, and rm_predictions scores
every shard in one ranged run; the model name is run config, never a fixed path."""

from __future__ import annotations

import dagster as dg
import pytest

from conftest import dagster_resources, lake_stages, rows, toy_preference_records, write_jsonl, write_sources
from dagster_project.definitions import defs
from dagster_project.resources import TrainerResource
from dagster_project.run import RANGE_END, RANGE_START
from synpref.lake.shards import shard_keys

pytestmark = pytest.mark.slow
MODEL = "dagster-rm"


def _materialize(lake, resources, selection, tags=None, ops=None, instance=None):
    return dg.materialize([*defs.assets, *defs.asset_checks], selection=selection, resources=resources,
                          instance=instance or dg.DagsterInstance.ephemeral(), raise_on_error=False, tags=tags or {},
                          run_config={"ops": ops or {}})


EVALUATE, EVALUATION = "evaluate_reward_models", ("rm_eval", "rm_eval_pairs")  # one multi-asset, two tables


def _failures(result) -> str:
    return "\n".join(e.step_failure_data.error.message for e in result.all_events if e.is_step_failure)


def test_train_evaluate_and_score_through_dagster(lake, tmp_path, tiny_rm_config_file):
    write_jsonl(tmp_path / "a.jsonl", toy_preference_records(120, seed=7))
    sources = write_sources(tmp_path / "s.yaml", [{"name": "a", "path": "a.jsonl", "shape": "prompt_chosen_rejected"}])
    resources = dagster_resources(lake, sources, trainer=TrainerResource(config_file=str(tiny_rm_config_file),
                                                                         accelerator="cpu"))
    model_config = {"config": {"model_name": MODEL}}
    instance = dg.DagsterInstance.ephemeral()
    result = _materialize(lake, resources, lake_stages() | dg.AssetSelection.assets("reward_model", *EVALUATION),
                          ops={"reward_model": {"config": {"model_name": MODEL, "holdout_fraction": 0.2}},
                               EVALUATE: model_config}, instance=instance)
    assert result.success, _failures(result)

    # the training script's own log lines came back through Dagster Pipes
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("starting: " in (m or "") and "training pairs" in (m or "") for m in messages)
    assert any("[pipes] external process successfully opened dagster pipes" in (m or "") for m in messages)
    (trained,) = result.asset_materializations_for_node("reward_model")
    meta = {k: v.value for k, v in trained.metadata.items()}
    assert (meta["model"], meta["model_version"], meta["status"], meta["eval_set"]) == (MODEL, "v001", "trained",
                                                                                        "holdout")
    assert meta["best_eval_accuracy"] >= 0.9 and meta["steps"] > 0
    assert meta["path"].endswith(f"models/rm/{MODEL}/v001/best")
    assert "data:image/png;base64," in meta["loss_curve"]
    (evaluated,) = [m for m in result.asset_materializations_for_node(EVALUATE)
                    if m.asset_key == dg.AssetKey("rm_eval")]
    # the per-pair scores of the evaluation went to rm_eval_pairs, not rm_predictions
    assert {r["pairs_table"] for r in rows(lake, "rm_eval_pairs", order="pair_id")} == {"eval_holdout"}
    assert evaluated.metadata["accuracy"].value >= 0.9 and evaluated.metadata["eval_set"].value == "holdout"
    assert "| overall | all |" in evaluated.metadata["by_group"].value
    assert {(r["model"], r["eval_set"]) for r in rows(lake, "rm_eval", order="breakdown")} == {(MODEL, "holdout")}

    # every shard in one run: one materialisation per shard, the model loaded once
    keys = shard_keys()
    scored = _materialize(lake, resources, dg.AssetSelection.assets("rm_predictions"),
                          tags={RANGE_START: keys[0], RANGE_END: keys[-1]}, ops={"rm_predictions": model_config})
    assert scored.success, _failures(scored)
    assert sorted(m.partition for m in scored.asset_materializations_for_node("rm_predictions")) == keys
    predictions = [r for r in rows(lake, "rm_predictions", order="pair_id") if r["pairs_table"] == "silver_pairs"]
    assert len(predictions) == 120 and {r["model"] for r in predictions} == {MODEL}
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed for e in scored.get_asset_check_evaluations()}
    assert checks[("rm_predictions", "expectations")] is True

    # one shard again: already scored, nothing recomputed
    again = _materialize(lake, resources, dg.AssetSelection.assets("rm_predictions"),
                         tags={RANGE_START: keys[2], RANGE_END: keys[2]}, ops={"rm_predictions": model_config})
    (materialization,) = again.asset_materializations_for_node("rm_predictions")
    assert materialization.metadata["scored_now"].value == 0


def test_a_model_that_was_never_trained_fails_with_its_name(lake, tmp_path):
    result = _materialize(lake, dagster_resources(lake, tmp_path / "none.yaml"), dg.AssetSelection.assets(*EVALUATION),
                          ops={EVALUATE: {"config": {"model_name": "round-9"}}})
    assert not result.success and "no complete reward model 'round-9'" in _failures(result)
