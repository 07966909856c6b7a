"""The reward model's pieces in-process: pair rendering for encoders and chat models, length
batching, the learning-rate schedule, settings, and the scorer against plain forwards."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml

from models.batching import length_grouped_micro_batches, rank_micro_batches, token_budget_batches
from models.reward_model import (PairEncoder, collate, concat, conversation_text, load_reward_model, load_tokenizer,
                                 resolve_backbone, save_reward_model)
from models.scorer import Scorer, ScorerConfig, sigmoid
from models.train_config import TrainConfig, deepspeed_config, load_config, lr_factor, make_config, parse_value

CONVERSATION = [{"role": "user", "content": "How do I bake bread?"},
                {"role": "assistant", "content": "Mix flour and water."},
                {"role": "user", "content": "And then what?"}]


@pytest.fixture(scope="module")
def minilm_tokenizer():
    return load_tokenizer(resolve_backbone("minilm"))


def test_pair_text_is_the_tokenizers_own_pair_encoding(minilm_tokenizer):
    encoder = PairEncoder(minilm_tokenizer, max_length=256)
    assert encoder.format == "pair_text"
    chosen, rejected = encoder.encode_pairs([CONVERSATION], ["Let it rise, then bake it."], ["No idea."])
    for encoded, response in ((chosen, "Let it rise, then bake it."), (rejected, "No idea.")):
        reference = minilm_tokenizer(conversation_text(CONVERSATION), response)
        assert encoded.ids[0].tolist() == reference["input_ids"]
        assert encoded.types[0].tolist() == reference["token_type_ids"]


def test_pair_text_truncation_keeps_the_latest_turns_and_the_response_start(minilm_tokenizer):
    long_conversation = [{"role": "user", "content": " ".join(f"word{i}" for i in range(300)) + " finale"}]
    response = "start " + " ".join(f"tail{i}" for i in range(300))
    encoder = PairEncoder(minilm_tokenizer, max_length=64)
    (encoded, _) = encoder.encode_pairs([long_conversation], [response], ["short"])
    ids, types = encoded.ids[0], encoded.types[0]
    assert len(ids) == 64
    assert types.sum() >= (64 - 3) // 2  # the response keeps at least half the room
    prompt_text = minilm_tokenizer.decode(ids[types == 0], skip_special_tokens=True)
    response_text = minilm_tokenizer.decode(ids[types == 1], skip_special_tokens=True)
    assert prompt_text.endswith("finale") and "word0 " not in prompt_text  # the latest part of the conversation
    assert response_text.startswith("start tail0")  # the response's start
    # a short response leaves the room to the conversation
    (short, _) = encoder.encode_pairs([long_conversation], ["ok"], ["no"])
    assert len(short.ids[0]) == 64 and short.types[0].sum() == 2  # "ok" and its [SEP]


def test_chat_template_for_a_causal_lm(tiny_model):
    tokenizer = load_tokenizer(str(tiny_model))
    encoder = PairEncoder(tokenizer, max_length=4096)
    assert encoder.format == "chat_template"
    (chosen, _) = encoder.encode_pairs([CONVERSATION], ["Let it rise."], ["No."])
    text = tokenizer.apply_chat_template(CONVERSATION + [{"role": "assistant", "content": "Let it rise."}],
                                         tokenize=False)
    assert chosen.ids[0].tolist() == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert chosen.types is None
    # too long: the first token (bos) and the end stay, where a causal model reads the reward
    short = PairEncoder(tokenizer, max_length=12)
    (cut, _) = short.encode_pairs([CONVERSATION], ["Let it rise."], ["No."])
    assert len(cut.ids[0]) == 12
    assert cut.ids[0][0] == tokenizer.bos_token_id == chosen.ids[0][0]
    assert cut.ids[0][1:].tolist() == chosen.ids[0][-11:].tolist()


def test_length_grouped_micro_batches_pad_less_and_repeat_per_seed():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 500, size=1003)
    grouped = length_grouped_micro_batches(lengths, 8, seed=1, epoch=0)
    plain = length_grouped_micro_batches(lengths, 8, seed=1, epoch=0, grouped=False)
    for batches in (grouped, plain):
        used = np.concatenate(batches)
        assert len(batches) == 1003 // 8 and all(len(b) == 8 for b in batches)
        assert len(np.unique(used)) == len(used)  # each pair at most once an epoch
    padded = lambda batches: sum(int(lengths[b].max()) * len(b) for b in batches)  # noqa: E731
    assert padded(grouped) < 0.7 * padded(plain)
    again = length_grouped_micro_batches(lengths, 8, seed=1, epoch=0)
    assert all((a == b).all() for a, b in zip(grouped, again))  # a resumed run sees the same order
    other = length_grouped_micro_batches(lengths, 8, seed=1, epoch=1)
    assert any((a != b).any() for a, b in zip(grouped, other))


def test_each_step_splits_among_ranks_without_overlap():
    batches = [np.array([i]) for i in range(24)]
    step = [rank_micro_batches(batches, 1, rank, world_size=3, accumulation=2) for rank in range(3)]
    seen = [int(b[0]) for rank in step for b in rank]
    assert sorted(seen) == list(range(6, 12))


def test_token_budget_batches_hold_every_row_once_within_budget():
    rng = np.random.default_rng(0)
    lengths = np.concatenate([rng.integers(1, 300, size=500), [900]])  # one row over the budget
    batches = token_budget_batches(lengths, max_tokens=512, max_batch=32)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 32 and (len(b) == 1 or lengths[b].max() * len(b) <= 512)
    assert batches[0].tolist() == [500]  # the longest first, alone


def test_learning_rate_schedules():
    constant = TrainConfig(warmup_steps=4)
    assert [lr_factor(s, constant, 100) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    linear = TrainConfig(lr_schedule="linear", warmup_steps=0)
    assert lr_factor(0, linear, 10) == 1.0 and lr_factor(5, linear, 10) == 0.5 and lr_factor(10, linear, 10) == 0.0


def test_settings_defaults_overrides_and_errors(tmp_path):
    paper = TrainConfig()
    assert (paper.learning_rate, paper.global_batch_size, paper.max_length, paper.epochs, paper.zero_config) == \
        (3e-6, 10_240, 16_384, 1, "zero1")
    path = tmp_path / "rm.yaml"
    path.write_text(yaml.safe_dump({"learning_rate": 1e-5, "global_batch_size": 64}))
    config = load_config(path, micro_batch_size=4, epochs=None)
    assert (config.learning_rate, config.global_batch_size, config.micro_batch_size, config.epochs) == (1e-5, 64, 4, 1)
    assert config.accumulation_steps(world_size=2) == 8
    ds = deepspeed_config(config, world_size=2, use_bf16=False)
    assert (ds["train_batch_size"], ds["gradient_accumulation_steps"], ds["zero_optimization"]["stage"]) == (64, 8, 1)
    assert ds["optimizer"]["params"]["torch_adam"] is True  # no JIT-built fused Adam
    with pytest.raises(ValueError, match="not a multiple"):
        make_config(global_batch_size=10, micro_batch_size=4).accumulation_steps(1)
    with pytest.raises(ValueError, match="unknown training settings"):
        make_config(lr=1)
    with pytest.raises(ValueError, match="lr_schedule"):
        make_config(lr_schedule="cosine")
    assert parse_value("max_steps", "none") is None and parse_value("length_grouped", "false") is False
    assert parse_value("global_batch_size", "1e3") == 1000 and parse_value("adam_betas", "0.9,0.95") == (0.9, 0.95)


@pytest.fixture(scope="module")
def tiny_rm_dir(tiny_encoder, tmp_path_factory):
    model, tokenizer = load_reward_model(str(tiny_encoder))
    out = tmp_path_factory.mktemp("rm") / "tiny-rm"
    save_reward_model(model, tokenizer, out, {"input_format": "pair_text", "max_length": 128})
    return out


def _forward_one_by_one(model_dir, conversations, responses) -> np.ndarray:
    """Rewards of each sequence alone (no padding), straight from transformers."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tokenizer = load_tokenizer(str(model_dir))
    encoder = PairEncoder(tokenizer, 128)
    (encoded, _) = encoder.encode_pairs(conversations, responses, responses)
    with torch.inference_mode():
        return np.array([float(model(**collate(encoded, np.array([i]), tokenizer.pad_token_id)).logits[0, 0])
                         for i in range(len(responses))])


@pytest.mark.parametrize("kind", ["encoder", "causal_lm"])
def test_bucketed_scores_equal_fixed_batches_and_plain_forwards(kind, tiny_rm_dir, tiny_model, tmp_path):
    from conftest import toy_preference_records

    if kind == "causal_lm":  # a Llama with a new reward head: last-token pooling over right padding
        model, tokenizer = load_reward_model(str(tiny_model))
        model_dir = tmp_path / "llama-rm"
        save_reward_model(model, tokenizer, model_dir, {"input_format": "chat_template", "max_length": 128})
    else:
        model_dir = tiny_rm_dir
    records = toy_preference_records(40, seed=3)
    conversations = [[{"role": "user", "content": r["prompt"]}] for r in records]
    chosen, rejected = [r["chosen"] for r in records], [r["rejected"] for r in records]
    scorer = Scorer(model_dir, ScorerConfig(max_tokens=600, max_batch=16))
    rc, rr, p = scorer.score(conversations, chosen, rejected)
    assert scorer.stats.batches > 2 and scorer.stats.sequences == 80
    frc, frr, _ = scorer.score(conversations, chosen, rejected, bucketed=False)
    np.testing.assert_allclose(rc, frc, atol=1e-5)
    np.testing.assert_allclose(rr, frr, atol=1e-5)
    np.testing.assert_allclose(p, sigmoid(rc - rr), atol=1e-12)
    alone = _forward_one_by_one(model_dir, conversations[:5], chosen[:5])
    np.testing.assert_allclose(rc[:5], alone, atol=1e-5)
    assert scorer.score([], [], [])[0].size == 0 and math.isclose(float(sigmoid(np.array([0.0]))[0]), 0.5)


def test_collate_pads_right_with_the_pad_id(minilm_tokenizer):
    encoder = PairEncoder(minilm_tokenizer, 64)
    chosen, rejected = encoder.encode_pairs([CONVERSATION], ["a much longer response than the other"], ["no"])
    batch = collate(concat(chosen, rejected), np.array([0, 1]), minilm_tokenizer.pad_token_id)
    mask = batch["attention_mask"]
    assert mask[0].all() and mask[1].sum() < mask.shape[1]
    assert (batch["input_ids"][1][mask[1] == 0] == minilm_tokenizer.pad_token_id).all()
    assert (batch["token_type_ids"][1][mask[1] == 0] == 0).all()
