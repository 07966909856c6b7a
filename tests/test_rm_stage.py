"""Reward models on a lake: training from a SELECT into a named, versioned folder (evaluated on
gold_pairs, or a held-out share), rm_eval rows, rm_predictions shard by shard (resumable),
their suites, and the `synpref train / score / models` commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from synpref.lake.duck import lit
from conftest import (assert_violation_fails, rows, run_stages, toy_preference_records, violations_parametrized,
                      write_jsonl, write_sources)
from dagster_project.cli import main
from support.kill import kill_after_a_checkpoint
from models.launch import LaunchConfig
from models.scorer import Scorer
from models.train_config import load_config
from synpref.rm import rm_models
from synpref.lake import schemas
from synpref.lake import Lake
from synpref.checks.quality import validate_table
from synpref.rm.rm_eval import accuracy_by_set, evaluate_reward_model, evaluated
from synpref.rm.rm_predictions import part_path, score_shard
from synpref.rm.rm_training import train_reward_model
from synpref.lake.shards import N_SHARDS, shard_key

pytestmark = pytest.mark.slow
N_PAIRS, N_GOLD = 160, 24
PAIRS_SQL = "select pair_id, conversation, chosen, rejected, source from silver_pairs"
CPU = LaunchConfig(accelerator="cpu")
SCORED_SHARDS = (0, 1)  # a small rm_predictions for the suite tests (validated 5 rows at a time)


def _make_lake(lake: Lake, tmp_path) -> Lake:
    """Toy silver pairs in two sources, attributes for each, and N_GOLD of them as gold_pairs."""
    records = toy_preference_records(N_PAIRS, seed=5)
    write_jsonl(tmp_path / "a.jsonl", records[: N_PAIRS // 2])
    write_jsonl(tmp_path / "b.jsonl", records[N_PAIRS // 2:])
    run_stages(lake, write_sources(tmp_path / "s.yaml", [
        {"name": name, "path": f"{name}.jsonl", "shape": "prompt_chosen_rejected"} for name in ("a", "b")]))
    ids = [r["pair_id"] for r in rows(lake, "silver_pairs", order="pair_id")]
    attributes = pa.Table.from_pylist([{
        "pair_id": pid, "model": "hand", "prompt_version": "v0", "status": "ok",
        "task_category": ("factual_qa", "advice")[i % 2], "objectivity": ("objective", "subjective")[i % 3 == 0],
        "controversiality": "low", "desired_attributes": ["helpful"], "annotation_guideline": "Prefer helpful.",
        "attempts": 1, "error": None, "raw_output": "{}", "annotated_at": None} for i, pid in enumerate(ids)],
        schema=schemas.PAIR_ATTRIBUTES)
    lake.table_dir("pair_attributes").mkdir(parents=True)
    pq.write_table(attributes, lake.table_dir("pair_attributes") / "part-0.parquet")
    gold = lake.table_dir("gold_pairs") / "part-0.parquet"  # written by hand: humans are not in this test
    gold.parent.mkdir(parents=True)
    con = duckdb.connect()
    con.execute(f"copy (select pair_id, conversation, chosen, rejected, false as flipped, source from read_parquet("
                f"{lit(lake.table_glob('silver_pairs'))}) order by md5(pair_id) limit {N_GOLD}) to {lit(gold)}")
    con.close()
    return lake


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_rm_config_file):
    """A lake with the tiny model trained on it as `baseline` (evaluated and scored per test)."""
    tmp = tmp_path_factory.mktemp("rm-lake")
    lake = _make_lake(Lake.at(tmp / "lake"), tmp)
    summary = train_reward_model(lake, "baseline", PAIRS_SQL, load_config(tiny_rm_config_file), launch=CPU,
                                 log=lambda msg: None)
    return lake, summary


@pytest.fixture
def lake_copy(trained, tmp_path):
    shutil.copytree(trained[0].root, tmp_path / "lake", symlinks=True)
    return Lake.at(tmp_path / "lake")


def _never(*args):
    pytest.fail("nothing should have been launched")


def test_training_evaluates_on_gold_and_keeps_gold_out_of_training(trained, tiny_rm_config_file):
    lake, summary = trained
    assert (summary.name, summary.version, summary.status, summary.eval_set) == ("baseline", "v001", "trained", "gold")
    assert summary.eval_pairs == N_GOLD and summary.train_pairs == N_PAIRS - N_GOLD
    assert summary.skipped_pairs == {"in_gold_pairs": N_GOLD}
    train_ids = set(pq.read_table(summary.version_dir / "data" / "train.parquet")["pair_id"].to_pylist())
    gold_ids = {r["pair_id"] for r in rows(lake, "gold_pairs", order="pair_id")}
    assert not train_ids & gold_ids
    assert summary.metrics["best"]["accuracy"] >= 0.9
    ref = rm_models.resolve(lake, "baseline")
    assert ref.path == summary.best and ref.spec["eval_set"] == "gold"
    # the same pairs and settings again: the finished version is reused, nothing is launched
    again = train_reward_model(lake, "baseline", PAIRS_SQL, load_config(tiny_rm_config_file), launch=CPU,
                               run=_never, log=lambda msg: None)
    assert (again.version, again.status) == ("v001", "unchanged")


def test_other_settings_make_a_new_version_and_a_killed_run_resumes(lake_copy, tiny_rm_config_file, tmp_path):
    """Real training (the tiny encoder, DeepSpeed on the CPU) of new settings, SIGKILLed after
    its first checkpoint: no model, an unfinished version; the next run with the same settings
    resumes that version from the saved step instead of starting again or making another."""
    config = load_config(tiny_rm_config_file, learning_rate=5e-4, max_steps=12, save_every=4, eval_every=4)
    killed: list[tuple[str, int]] = []

    def killed_after_a_checkpoint(command, env):
        out = Path(command[command.index("--out") + 1])
        with (tmp_path / "killed.log").open("w") as log:
            run = subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        killed.append((out.name, kill_after_a_checkpoint(run, out, tmp_path / "killed.log")))

    with pytest.raises(RuntimeError, match="without a complete model"):
        train_reward_model(lake_copy, "baseline", PAIRS_SQL, config, launch=CPU, run=killed_after_a_checkpoint,
                           log=lambda msg: None)
    [(version, saved)] = killed
    assert version == "v002" and saved in (4, 8)  # a checkpoint of an unfinished run (12 steps)
    assert [v.name for v in rm_models.versions(lake_copy, "baseline")] == ["v001", "v002"]
    assert rm_models.resolve(lake_copy, "baseline").version == "v001"  # the latest complete one
    assert rm_models.list_models(lake_copy) == [("baseline", "v001", True), ("baseline", "v002", False)]

    lines: list[str] = []
    resumed = train_reward_model(lake_copy, "baseline", PAIRS_SQL, config, launch=CPU, log=lines.append)
    assert (resumed.version, resumed.status) == ("v002", "resumed")  # not duplicated as v003
    assert [v.name for v in rm_models.versions(lake_copy, "baseline")] == ["v001", "v002"]
    assert any(line.startswith(f"resumed from step {saved}:") for line in lines)
    log = [json.loads(line) for line in (resumed.version_dir / "train_log.jsonl").read_text().splitlines()]
    starts = [e for e in log if e["event"] == "start"]
    assert [s["resumed_from"] for s in starts] == [0, saved]
    trained_again = [e["step"] for e in log if e["event"] == "train" and e["time"] > starts[1]["time"]]
    assert trained_again and trained_again[0] > saved and trained_again[-1] == 12  # from the checkpoint on
    assert resumed.metrics["resumed_from"] == saved and resumed.metrics["steps"] == 12
    assert rm_models.resolve(lake_copy, "baseline").version == "v002"


def test_without_gold_a_seeded_share_is_held_out(lake_copy, tiny_rm_config_file):
    gold = lake_copy.table_files("gold_pairs")[0]
    pq.write_table(pq.read_table(gold).slice(0, 0), gold)  # an empty gold_pairs counts as none
    held = {}
    for seed in (0, 0, 1):
        name = f"holdout-{seed}-{len(held)}"
        with pytest.raises(RuntimeError):
            train_reward_model(lake_copy, name, PAIRS_SQL, load_config(tiny_rm_config_file, seed=seed),
                               holdout_fraction=0.2, launch=CPU, run=lambda c, e: None, log=lambda msg: None)
        version_dir = rm_models.versions(lake_copy, name)[0]
        assert json.loads((version_dir / "spec.json").read_text())["eval_set"] == "holdout"
        ids = pq.read_table(version_dir / "data" / "eval.parquet")["pair_id"].to_pylist()
        train = pq.read_table(version_dir / "data" / "train.parquet")["pair_id"].to_pylist()
        assert len(ids) + len(train) == N_PAIRS and not set(ids) & set(train)
        assert 0.1 * N_PAIRS < len(ids) < 0.3 * N_PAIRS
        held[len(held)] = set(ids)
    assert held[0] == held[1] != held[2]  # seeded: the same seed holds out the same pairs


@pytest.mark.parametrize("pairs,error", [
    ("select pair_id, chosen from silver_pairs", "lack columns"),
    ("delete from silver_pairs", "read-only"),
    ("/no/such/file.parquet", "no training pairs file"),
])
def test_bad_training_input_is_a_clear_error(trained, tiny_rm_config_file, pairs, error):
    with pytest.raises(Exception, match=error):
        train_reward_model(trained[0], "bad", pairs, load_config(tiny_rm_config_file), run=_never)
    with pytest.raises(ValueError, match="bad reward-model name"):
        train_reward_model(trained[0], "a--b", PAIRS_SQL, load_config(tiny_rm_config_file), run=_never)


def test_empty_fields_are_counted_not_trained_on(lake_copy, tiny_rm_config_file):
    sql = ("select pair_id, conversation, case when pair_id = (select min(pair_id) from silver_pairs) then '' "
           "else chosen end as chosen, rejected, source from silver_pairs")
    with pytest.raises(RuntimeError):
        train_reward_model(lake_copy, "empties", sql, load_config(tiny_rm_config_file), launch=CPU,
                           run=lambda c, e: None, log=lambda msg: None)
    spec = json.loads((rm_models.versions(lake_copy, "empties")[0] / "spec.json").read_text())
    assert spec["skipped"] == {"missing_or_empty_field": 1, "in_gold_pairs": N_GOLD}
    assert spec["train"]["rows"] == N_PAIRS - N_GOLD - 1


def test_rm_eval_on_gold_overall_by_group_calibration_and_checkpoints(lake_copy):
    ref = rm_models.resolve(lake_copy, "baseline")
    summary = evaluate_reward_model(lake_copy, ref, lambda: Scorer(ref.path))
    assert (summary.eval_set, summary.pairs) == ("gold", N_GOLD) and summary.accuracy >= 0.9
    got = rows(lake_copy, "rm_eval", order="breakdown, group_value")
    assert {(r["model"], r["model_version"], r["eval_set"]) for r in got} == {("baseline", "v001", "gold")}
    by = {}
    for r in got:
        by.setdefault(r["breakdown"], {})[r["group_value"]] = r
    assert set(by) == {"overall", "source", "task_category", "objectivity", "confidence_bin", "checkpoint"}
    for breakdown in ("source", "task_category", "objectivity", "confidence_bin"):
        assert sum(r["pairs"] for r in by[breakdown].values()) == N_GOLD, breakdown
    assert set(by["source"]) <= {"a", "b"} and set(by["task_category"]) <= {"factual_qa", "advice"}
    # the per-pair scores are in rm_eval_pairs; the SQL's figures agree with numpy on them
    predictions = rows(lake_copy, "rm_eval_pairs", order="pair_id")
    assert {p["pairs_table"] for p in predictions} == {"eval_gold"} and len(predictions) == N_GOLD
    rc = np.array([p["reward_chosen"] for p in predictions])
    rr = np.array([p["reward_rejected"] for p in predictions])
    p = np.array([p["p_chosen"] for p in predictions])
    overall = by["overall"]["all"]
    assert overall["accuracy"] == pytest.approx(np.mean(rc > rr))
    assert overall["mean_margin"] == pytest.approx(np.mean(rc - rr))
    assert overall["brier"] == pytest.approx(np.mean((1 - p) ** 2))
    confidence = np.maximum(p, 1 - p)
    bins = np.minimum(np.floor((confidence - 0.5) * 10), 4)
    ece = sum(abs(np.sum(rc[bins == b] > rr[bins == b]) - np.sum(confidence[bins == b])) for b in set(bins)) / len(p)
    assert overall["ece"] == pytest.approx(ece)
    # the accuracy of every evaluated checkpoint, from the training log
    evals = [json.loads(line) for line in (ref.version_dir / "train_log.jsonl").read_text().splitlines()]
    steps = sorted(e["step"] for e in evals if e["event"] == "eval")
    assert list(by["checkpoint"]) == [f"step-{s:06d}" for s in steps]
    # evaluated again: the version's part is replaced, not duplicated
    evaluate_reward_model(lake_copy, ref, lambda: Scorer(ref.path))
    assert len(rows(lake_copy, "rm_eval", order="breakdown")) == len(got)


def test_rm_predictions_shard_by_shard_reconcile_and_resume(lake_copy):
    ref = rm_models.resolve(lake_copy, "baseline")
    loads = []

    def make_scorer():
        loads.append(1)
        return Scorer(ref.path)

    logs: list[str] = []
    summaries = [score_shard(lake_copy, ref, s, make_scorer, chunk_pairs=7, log=logs.append)
                 for s in range(N_SHARDS)]
    assert sum(s.rows for s in summaries) == N_PAIRS and not any(s.skipped for s in summaries)
    assert len(logs) > N_SHARDS  # streamed in chunks of 7 pairs, not whole shards
    predictions = rows(lake_copy, "rm_predictions", order="pair_id")
    silver = {r["pair_id"] for r in rows(lake_copy, "silver_pairs", order="pair_id")}
    assert sorted(p["pair_id"] for p in predictions) == sorted(silver)  # every pair once
    assert np.mean([p["p_chosen"] > 0.5 for p in predictions]) >= 0.9  # the model learned the signal
    # a rerun skips every shard without loading the model; a lost shard is scored alone
    assert all(score_shard(lake_copy, ref, s, _never).skipped for s in range(N_SHARDS))
    lost = part_path(lake_copy, ref, "silver_pairs", shard_key(3))
    lost.unlink()
    (lost.parent / f".{lost.name}.tmp-deadbeef").write_bytes(b"half a file from a killed run")
    loads.clear()
    again = [score_shard(lake_copy, ref, s, make_scorer) for s in range(N_SHARDS)]
    assert [s.shard for s in again if not s.skipped] == [3] and len(loads) == 1
    assert len(rows(lake_copy, "rm_predictions", order="pair_id")) == N_PAIRS


def test_pool_scores_take_each_fold_model_on_its_own_fold_then_the_filter_decides(lake_copy):
    """One model standing in for every fold (the in-sample baseline's path): each pair is scored
    once, by the member of its fold, and the part records the members and the gold RM."""
    from synpref.rm.crossfit import CrossFitSettings, fold_of
    from synpref.filtered.filtering import FilterSettings, filter_shard
    from synpref.filtered.stage2 import FOLD_MODELS, score_pool_shard

    ref = rm_models.resolve(lake_copy, "baseline")
    scorer = Scorer(ref.path)
    evaluate_reward_model(lake_copy, ref, lambda: scorer)  # eval_gold scores of the same pair_ids, in rm_eval_pairs
    settings, members = CrossFitSettings(folds=3, repeats=1), [(k, 0, ref) for k in range(3)]
    scored = [score_pool_shard(lake_copy, s, members, ref, lambda r: scorer, settings) for s in range(N_SHARDS)]
    assert sum(s.pairs for s in scored) == N_PAIRS and not any(s.reused for s in scored)
    pool = {r["pair_id"]: r for r in rows(lake_copy, "pool_scores", order="pair_id")}
    # Stage 2's own model scores are pool_model_scores (a second output of the pool scoring), not rm_predictions
    predicted = {r["pair_id"]: r["p_chosen"] for r in rows(lake_copy, "pool_model_scores", order="pair_id")
                 if r["pairs_table"] == "silver_pairs"}
    assert len(pool) == N_PAIRS and all(r["p_best"] == predicted[pid] == r["p_gold"] for pid, r in pool.items())
    assert all(r["fold"] == fold_of(pid, 3, 0) and r["members"] == 1 and r["p_best_spread"] == 0
               for pid, r in pool.items())
    assert all(r["needs_judges"] == (r["p_best"] <= 0.5) for r in pool.values())
    assert {(r["best_model"], r["gold_model"], r["gold_version"]) for r in pool.values()} == \
        {(FOLD_MODELS, "baseline", ref.version)}
    again = [score_pool_shard(lake_copy, s, members, ref, lambda r: pytest.fail("no model to load"), settings)
             for s in range(N_SHARDS)]
    assert all(s.reused for s in again)
    decided = [filter_shard(lake_copy, s, FilterSettings()) for s in range(N_SHARDS)]
    assert sum(d.pairs for d in decided) == N_PAIRS


# ---------------------------------------------------------------- suites

@pytest.fixture(scope="module")
def scored(trained, tmp_path_factory):
    """The trained lake with rm_eval and two shards of rm_predictions (copied per test: tests tamper)."""
    lake = Lake.at(tmp_path_factory.mktemp("scored") / "lake")
    shutil.copytree(trained[0].root, lake.root, symlinks=True)
    ref = rm_models.resolve(lake, "baseline")
    scorer = Scorer(ref.path)
    evaluate_reward_model(lake, ref, lambda: scorer)
    for s in SCORED_SHARDS:
        score_shard(lake, ref, s, lambda: scorer)
    return lake


@pytest.fixture
def scored_copy(scored, tmp_path):
    shutil.copytree(scored.root, tmp_path / "lake", symlinks=True)
    return Lake.at(tmp_path / "lake")


@pytest.mark.parametrize("table", ["rm_predictions", "rm_eval", "rm_eval_pairs"])
def test_model_tables_pass_their_suites(scored_copy, table):
    v = validate_table(scored_copy, table, batch_rows=50, build_docs=False)
    assert v.rows > 0 and v.success and not v.failed(blocking=False), v.outcomes


VIOLATIONS = [
    ("rm_predictions", "select * from {t} union all (select * from {t} limit 2)",
     "expect_column_values_to_be_unique(prediction_key)", True),
    ("rm_predictions", "select * replace (p_chosen + 0.25 as p_chosen) from {t}",
     "expect_column_values_to_be_in_set(p_inconsistent)", True),
    ("rm_predictions", "select * replace ('nan'::double as reward_chosen) from {t}",
     "expect_column_values_to_be_in_set(reward_not_finite)", True),
    ("rm_predictions", "select * replace (null as model_version) from {t}",
     "expect_column_values_to_not_be_null(model_version)", True),
    ("rm_predictions", "select * replace (1000.0 as reward_chosen, -1000.0 as reward_rejected, 1.0 as p_chosen) "
                       "from {t}", "expect_column_values_to_be_in_set(p_saturated)", False),
    ("rm_eval", "select * replace (accuracy * 2 as accuracy) from {t}",
     "expect_column_values_to_be_between(accuracy)", True),
    ("rm_eval", "select * replace ('train' as eval_set) from {t}",
     "expect_column_values_to_be_in_set(own_eval_set)", True),
    # gold rows passed off as an outside set's: readers could no longer tell the own sets by name
    ("rm_eval", "select * replace ('gold.jsonl' as pairs_file) from {t}",
     "expect_column_values_to_be_in_set(outside_set_named_like_own)", True),
    ("rm_eval", "select * from {t} union all (select * from {t} where breakdown = 'overall')",
     "expect_column_values_to_be_unique(eval_key)", True),
    ("rm_eval", "select * replace (0 as pairs) from {t}", "expect_column_values_to_be_between(pairs)", True),
    ("rm_eval", "select * replace (case when breakdown = 'overall' then 0.4 else accuracy end as accuracy) from {t}",
     "expect_column_values_to_be_in_set(overall_at_or_below_chance)", False),
]


@violations_parametrized(VIOLATIONS)
def test_each_planted_violation_fails_its_expectation(scored_copy, table, select, expectation, blocking):
    assert_violation_fails(scored_copy, table, select, expectation, blocking)


# ---------------------------------------------------------------- the command line

def test_score_command_on_a_lake_table_and_on_a_pairs_file(scored_copy, tmp_path):
    lake = str(scored_copy.root)
    done = sum(r["pairs_table"] == "silver_pairs" for r in rows(scored_copy, "rm_predictions", order="pair_id"))
    assert done > 0
    result = CliRunner().invoke(main, ["score", "--model", "baseline", "--pairs", "silver_pairs", "--lake", lake])
    assert result.exit_code == 0, result.output
    assert f"{N_PAIRS:,} pairs of silver_pairs in rm_predictions ({done:,} were scored already)" in result.output
    pairs_file = write_jsonl(tmp_path / "pairs.jsonl", toy_preference_records(12, seed=9))
    best = rm_models.resolve(scored_copy, "baseline").path
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(main, ["score", "--model", str(best), "--pairs", str(pairs_file), "--out", str(out)])
    assert result.exit_code == 0, result.output
    scores = pq.read_table(out).to_pylist()
    assert len(scores) == 12 and [s["pair_id"] for s in scores[:2]] == ["row-1", "row-2"]
    assert {s["pairs_table"] for s in scores} == {"pairs.jsonl"} and scores[0]["model_version"].startswith("ext-")
    assert np.mean([s["p_chosen"] > 0.5 for s in scores]) >= 0.9
    (tmp_path / "bad.jsonl").write_text('{"prompt": "q", "chosen": "a"}\n')
    bad = CliRunner().invoke(main, ["score", "--model", str(best), "--pairs", str(tmp_path / "bad.jsonl")])
    assert bad.exit_code == 1 and "need columns ['rejected']" in bad.output
    missing = CliRunner().invoke(main, ["score", "--model", "nobody", "--pairs", "silver_pairs", "--lake", lake])
    assert missing.exit_code == 1 and "no complete reward model 'nobody'" in missing.output


def _benchmark_file(path: Path) -> Path:
    """An outside benchmark's pairs: an id, a category, and in category `flipped` the labels
    swapped, so a model that learnt the toy signal gets those wrong and the others right."""
    pairs = []
    for i, r in enumerate(toy_preference_records(12, seed=11)):
        flipped = i % 3 == 0
        pairs.append({"id": f"b-{i}", "category": "flipped" if flipped else "straight", "prompt": r["prompt"],
                      "chosen": r["rejected"] if flipped else r["chosen"],
                      "rejected": r["chosen"] if flipped else r["rejected"]})
    return write_jsonl(path, pairs)


def _printed_accuracy(output: str, by: str) -> tuple[str, dict[str, tuple[int, float]]]:
    """(the overall accuracy line, {group: (pairs, accuracy)}) from the accuracy a command printed."""
    lines = output.splitlines()
    overall = next(line for line in lines if line.startswith("accuracy (p_chosen > 0.5)"))
    header = lines.index(next(line for line in lines if line.split()[:3] == [by, "pairs", "accuracy"]))
    groups = {}
    for line in lines[header + 1:]:
        if not line.strip():
            break
        group, pairs, accuracy = line.split()
        groups[group] = (int(pairs), float(accuracy))
    return overall, groups


def _accuracy_from(scores: list[dict], by: str) -> tuple[str, dict[str, tuple[int, float]]]:
    """The same, computed here from the output's p_chosen (a tie, 0.5, is wrong)."""
    right = [s["p_chosen"] > 0.5 for s in scores]
    groups = {}
    for value in {s[by] for s in scores}:
        mine = [r for r, s in zip(right, scores) if s[by] == value]
        groups[value] = (len(mine), round(float(np.mean(mine)), 4))
    return f"accuracy (p_chosen > 0.5) {np.mean(right):.4f} on {len(scores):,} pairs", groups


def test_score_keeps_a_pairs_files_columns_and_prints_accuracy_by_a_column(scored, tmp_path):
    bench = _benchmark_file(tmp_path / "bench.jsonl")
    out = tmp_path / "scores.parquet"
    lake = ["--lake", str(scored.root)]
    result = CliRunner().invoke(main, ["score", "--model", "baseline", "--pairs", str(bench), "--out", str(out),
                                       "--by", "category", *lake])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.column_names == ["pair_id", "id", "category", "prompt", "chosen", "rejected", *[
        c for c in schemas.RM_PREDICTIONS.names if c != "pair_id"]]
    scores = table.to_pylist()
    given = [json.loads(line) for line in bench.read_text().splitlines()]
    assert [{k: s[k] for k in given[0]} for s in scores] == given  # every column and value, in the file's order
    assert [s["pair_id"] for s in scores] == [f"row-{i}" for i in range(1, 13)]
    overall, groups = _printed_accuracy(result.output, "category")
    assert (overall, groups) == _accuracy_from(scores, "category")
    assert groups["straight"][1] >= 0.9 and groups["flipped"][1] <= 0.1  # the breakdown follows the labels
    # a column the file lacks: refused before any scoring
    missing = CliRunner().invoke(main, ["score", "--model", "baseline", "--pairs", str(bench), "--out",
                                        str(tmp_path / "none.parquet"), "--by", "topic", *lake])
    assert missing.exit_code == 1 and "bench.jsonl has no column 'topic'" in missing.output
    assert not (tmp_path / "none.parquet").exists()


def test_eval_writes_an_outside_set_beside_gold_that_a_rerun_replaces(scored_copy, tmp_path):
    bench = _benchmark_file(tmp_path / "bench.jsonl")
    lake = ["--lake", str(scored_copy.root)]
    order = "eval_set, breakdown, group_value"
    gold = rows(scored_copy, "rm_eval", order=order)
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(main, ["eval", "--model", "baseline", "--pairs", str(bench), "--by", "category",
                                       "--out", str(out), *lake])
    assert result.exit_code == 0, result.output
    got = rows(scored_copy, "rm_eval", order=order)
    assert [r for r in got if r["eval_set"] == "gold"] == gold  # gold's rows untouched
    outside = [r for r in got if r["eval_set"] != "gold"]
    assert {(r["model"], r["model_version"], r["eval_set"], r["pairs_file"]) for r in outside} == {
        ("baseline", "v001", "bench", "bench.jsonl")}
    assert {r["breakdown"] for r in outside} == {"overall", "category", "confidence_bin"}
    overall, groups = _accuracy_from(pq.read_table(out).to_pylist(), "category")
    assert overall in result.output and _printed_accuracy(result.output, "category")[1] == groups
    by = {(r["breakdown"], r["group_value"]): r for r in outside}
    assert {g: (by["category", g]["pairs"], round(by["category", g]["accuracy"], 4)) for g in groups} == groups
    assert by["overall", "all"]["pairs"] == 12
    assert validate_table(scored_copy, "rm_eval", batch_rows=50, build_docs=False).success
    # the lake's views show it beside gold
    listed = CliRunner().invoke(main, ["sql", "select distinct eval_set from rm_eval order by 1", *lake])
    assert listed.exit_code == 0 and "bench" in listed.output and "gold" in listed.output
    # and so does the rm_eval asset's metadata (its table of every version's accuracy per set)
    assert [(r["eval_set"], r["pairs"]) for r in accuracy_by_set(scored_copy)] == [("gold", N_GOLD), ("bench", 12)]
    # again, without --by: the set's rows replaced, not added to
    again = CliRunner().invoke(main, ["eval", "--model", "baseline", "--pairs", str(bench), *lake])
    assert again.exit_code == 0, again.output
    outside = [r for r in rows(scored_copy, "rm_eval", order=order) if r["eval_set"] == "bench"]
    assert {r["breakdown"] for r in outside} == {"overall", "confidence_bin"}
    assert len(rows(scored_copy, "rm_eval", order=order)) == len(gold) + len(outside)
    # an outside set does not pass for the version's evaluation: without gold rows it still waits for one
    assert evaluated(scored_copy) == {("baseline", "v001")}
    (scored_copy.table_dir("rm_eval") / "baseline--v001.parquet").unlink()
    assert evaluated(scored_copy) == set()
    taken = CliRunner().invoke(main, ["eval", "--model", "baseline", "--pairs", str(bench), "--eval-set", "gold",
                                      *lake])
    assert taken.exit_code == 1 and "names the lake's own evaluation set" in taken.output


def test_train_and_models_commands(scored_copy, tiny_rm_config_file):
    lake = str(scored_copy.root)
    result = CliRunner().invoke(main, ["train", "--config", str(tiny_rm_config_file), "--lake", lake])
    assert result.exit_code == 0, result.output
    assert "already trained on these pairs with these settings" in result.output  # reused, not retrained
    assert "baseline v001 (unchanged)" in result.output and "overall" in result.output
    listed = CliRunner().invoke(main, ["models", "--lake", lake])
    assert "baseline" in listed.output and "complete" in listed.output
    bad = CliRunner().invoke(main, ["train", "--set", "learning_rate", "--lake", lake])
    assert bad.exit_code != 0 and "KEY=VALUE" in bad.output
