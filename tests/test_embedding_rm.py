"""The embedding reward model (a BT head on frozen MiniLM embeddings): it learns the toy signal
through the lake's trainer in seconds, embeds each text once (the lake's cache), scores like any
reward model, and cross-fitting keeps every fold model's own fold out of its training pairs."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from synpref.lake.duck import lit
from conftest import toy_pairs_table
from models.embedding_rm import EmbeddingScorer, is_embedding_rm, lake_cache_dir
from models.scorer import make_scorer
from models.train_config import make_config
from synpref.rm import crossfit, rm_models
from synpref.rm.rm_training import train_reward_model


@pytest.fixture
def toy_file(tmp_path):
    path = tmp_path / "pairs.parquet"
    pq.write_table(toy_pairs_table(160, seed=1), path)
    return path


def _accuracy(scorer, table) -> float:
    pairs = table.to_pydict()
    _, _, p = scorer.score(pairs["conversation"], pairs["chosen"], pairs["rejected"])
    return float((p > 0.5).mean())


@pytest.mark.parametrize("head", ["linear", "mlp"])
def test_it_learns_the_toy_signal_as_a_lake_model_version(lake, toy_file, head):
    config = make_config(backbone="embedding", head=head, head_l2=1.0)
    summary = train_reward_model(lake, "emb", toy_file, config, eval_set="holdout", holdout_fraction=0.2)
    assert summary.status == "trained" and summary.metrics["status"] == "complete"
    ref = rm_models.resolve(lake, "emb")
    # the same layout as a DeepSpeed run: frozen data, best/, metrics; the pairs it trained on are on disk
    trained_on = pq.read_table(ref.version_dir / "data" / "train.parquet")["pair_id"].to_pylist()
    assert len(trained_on) == summary.train_pairs and summary.train_pairs + summary.eval_pairs == 160
    assert is_embedding_rm(ref.path) and summary.metrics["best"]["accuracy"] >= 0.9
    scorer = make_scorer(ref.path)
    assert isinstance(scorer, EmbeddingScorer)
    assert scorer.cache.folder.parent == lake.root / "models" / "embedding_cache"
    assert _accuracy(scorer, toy_pairs_table(40, seed=2)) >= 0.9
    # the same pairs and settings: the version is reused, nothing retrained
    assert train_reward_model(lake, "emb", toy_file, config, eval_set="holdout", holdout_fraction=0.2).status == \
        "unchanged"


def test_each_text_is_embedded_once_across_models(lake, toy_file):
    config = make_config(backbone="embedding")
    first = train_reward_model(lake, "a", toy_file, config, eval_set="holdout", holdout_fraction=0.2)
    assert first.metrics["texts_embedded"] > 0
    second = train_reward_model(lake, "b", toy_file, make_config(config, head_l2=0.5), eval_set="holdout",
                                holdout_fraction=0.2)
    assert second.metrics["texts_embedded"] == 0  # every text came from the lake's cache
    scorer = make_scorer(rm_models.resolve(lake, "b").path)
    _accuracy(scorer, pq.read_table(toy_file))
    assert scorer.cache.embedded == 0
    parts = list(lake_cache_dir(rm_models.resolve(lake, "b").path).rglob("*.parquet"))
    with duckdb.connect() as con:
        keys = con.execute("select count(*), count(distinct key) from read_parquet($files)",
                           {"files": [str(p) for p in parts]}).fetchone()
    assert keys[0] == keys[1] == first.metrics["texts_embedded"]


def test_a_fold_model_never_trains_on_its_own_fold(lake, toy_file):
    settings = crossfit.CrossFitSettings(folds=3, repeats=2)
    ids = pq.read_table(toy_file)["pair_id"].to_pylist()
    con = duckdb.connect()
    for repeat in range(settings.repeats):
        for fold in range(settings.folds):
            sql = crossfit.member_training_sql(f"select * from read_parquet({lit(toy_file)})", fold, repeat,
                                               settings.folds)
            trained = {pid for (pid,) in con.execute(f"select pair_id from ({sql})").fetchall()}
            held = {pid for pid in ids if crossfit.fold_of(pid, settings.folds, repeat) == fold}
            assert trained == set(ids) - held and held  # SQL and Python agree on the fold
    # a repeat is a different split, and folds are roughly even
    assert [crossfit.fold_of(p, 3, 0) for p in ids] != [crossfit.fold_of(p, 3, 1) for p in ids]
    counts = np.bincount([crossfit.fold_of(p, 3, 0) for p in ids], minlength=3)
    assert counts.min() > 30


def test_the_embedding_head_settings_do_not_change_other_models_fingerprints(lake):
    """Adding the embedding head's fields to TrainConfig must not retrain every existing model:
    a spec recorded with or without them has one fingerprint; for the embedding backbone they count."""
    from synpref.rm.rm_training import _fingerprint, _fingerprinted

    minilm = make_config(backbone="minilm")
    spec = {"name": "round-1", "train": {"rows": 10}, "config": _fingerprinted(minilm, lake)}
    assert "head" not in spec["config"]
    recorded_with_head = {**spec, "config": {**spec["config"], "head": "linear", "head_l2": 1.0}}
    assert _fingerprint(recorded_with_head) == _fingerprint(spec)
    a, b = (_fingerprinted(make_config(backbone="embedding", head_l2=c), lake) for c in (0.03, 1.0))
    assert _fingerprint({**spec, "config": a}) != _fingerprint({**spec, "config": b})
