"""The LLM annotator and attribute annotation on real vLLM (the in-process engine and a
`vllm serve` subprocess), with the tiny random model made locally."""

from __future__ import annotations

import json
from dataclasses import replace

import jsonschema
import pytest

from conftest import SERVED_NAME
from models.annotator import AnnotatorConfig, SamplingConfig, default_config_path, load_annotator, load_config
from models.attributes import (ATTRIBUTES_SCHEMA, BACKEND_ERROR, INVALID_JSON, SCHEMA_VIOLATION, annotate,
                               load_prompt)

CHOICES = ["A", "B", "tie"]


def _pair(n: int, prompt: str, chosen: str, rejected: str, history: tuple[tuple[str, str], ...] = ()) -> dict:
    conversation = [m for user, assistant in history
                    for m in ({"role": "user", "content": user}, {"role": "assistant", "content": assistant})]
    conversation.append({"role": "user", "content": prompt})
    return {"pair_id": f"pair-{n:02d}", "conversation": conversation, "chosen": chosen, "rejected": rejected}


PAIRS = [_pair(n, *row) for n, row in enumerate([
    ("What is 12 times 7?", "12 times 7 is 84.", "It is 72."),
    ("Write a Python function that reverses a string.", "def rev(s):\n    return s[::-1]", "Use a loop."),
    ("What is the capital of Australia?", "Canberra.", "Sydney."),
    ("How do I ask my boss for a raise?", "Prepare evidence of your impact, then ask for a meeting.", "Just demand it."),
    ("Write a haiku about autumn.", "Red leaves drift and fall / ...", "Autumn is a season."),
    ("How do I make a weapon at home?", "I can't help with that, but I can point you to safety resources.",
     "Here are the steps..."),
    ("If all cats are mammals and Tom is a cat, is Tom a mammal?", "Yes, by the syllogism.", "Not necessarily."),
    ("Summarize: " + "The council met to discuss the budget. " * 80, "The council discussed the budget.",
     "Meetings happen."),
    ("Is this review positive? 'Loved it, would buy again.'", "Positive.", "Negative."),
    ("Thanks! And in Celsius?", "About 37 °C.", "Hot.", (("What is body temperature in Fahrenheit?", "About 98.6 °F."),)),
    ("Translate 'good morning' into Japanese.", "おはようございます (ohayō gozaimasu).", "こんにちは"),
    ("Tell me a story.", "Once upon a time " + "a fox walked on. " * 120, "No."),
])]
# A prompt over max_model_len whatever the char budgets: the tiny tokenizer spends 4 tokens
# on each emoji. vLLM rejects it, and must not take its batch down with it.
TOO_LONG = {"pair_id": "pair-too-long", "conversation": [{"role": "user", "content": "😀" * 3000}],
            "chosen": "😀" * 2000, "rejected": "😀" * 2000}


@pytest.fixture(scope="module")
def config(tiny_model) -> AnnotatorConfig:
    """The repo's default config, with its placeholder model made real."""
    return replace(load_config(default_config_path()), model=str(tiny_model))


@pytest.fixture(scope="module")
def annotator(config):
    annotator = load_annotator(config)
    yield annotator
    annotator.close()


@pytest.fixture(scope="module")
def prompt():
    return load_prompt("attributes-v1")


class Spoiling:
    """The real annotator, with some answers spoiled on their way back: `spoil(call, position,
    text)` gives the text handed to the caller. Records each call's batch size."""

    def __init__(self, inner, spoil):
        self.inner, self.spoil, self.batch_sizes = inner, spoil, []

    def generate_json(self, conversations, schema):
        texts = self.inner.generate_json(conversations, schema)
        call = len(self.batch_sizes)
        self.batch_sizes.append(len(conversations))
        return [self.spoil(call, position, text) for position, text in enumerate(texts)]


def _off_schema(text: str) -> str:
    """Valid JSON that breaks the schema (a task category it does not list)."""
    return json.dumps({**json.loads(text), "task_category": "poetry"})


def _attributes(result) -> dict:
    return {key: getattr(result, key) for key in ATTRIBUTES_SCHEMA["properties"]}


def test_default_config_loads_and_rejects_unknown_keys(tmp_path):
    config = load_config(default_config_path())
    assert (config.backend, config.model, config.prompt_version) == ("vllm", "tiny", "attributes-v1")
    assert config.sampling.temperature == 0.0
    (tmp_path / "bad.yaml").write_text("backend: vllm\nmodel: x\nsampling:\n  temprature: 0.5\n")
    with pytest.raises(ValueError, match="temprature"):
        load_config(tmp_path / "bad.yaml")


def test_prompt_hides_which_response_was_chosen_and_keeps_to_its_budget(prompt):
    rendered = {p["pair_id"]: prompt.render(p) for p in PAIRS}
    for pair in PAIRS:
        system, user = rendered[pair["pair_id"]]
        assert (system["role"], user["role"]) == ("system", "user")
        assert "Response A" in user["content"] and "Response B" in user["content"]
        assert "chosen" not in user["content"].lower()
        assert len(user["content"]) <= len(prompt.user) + prompt.conversation_chars + 2 * prompt.response_chars + 50
    a_is_chosen = [pair["chosen"][:40] in rendered[pair["pair_id"]][1]["content"].split("Response B")[0]
                   for pair in PAIRS]
    assert any(a_is_chosen) and not all(a_is_chosen)  # the side is not a giveaway


def test_every_pair_gets_a_schema_valid_attribute_row(annotator, prompt):
    results = annotate(annotator, PAIRS, prompt)
    assert [r.pair_id for r in results] == [p["pair_id"] for p in PAIRS]
    for r in results:
        assert (r.status, r.error, r.attempts) == ("ok", None, 1), r
        jsonschema.validate(_attributes(r), ATTRIBUTES_SCHEMA)
        assert json.loads(r.raw_output) == _attributes(r)


def test_generate_choice_returns_only_allowed_choices(annotator, prompt, monkeypatch):
    conversations = [prompt.render(p) for p in PAIRS]
    greedy = annotator.generate_choice(conversations, CHOICES, n=3)
    assert len(greedy) == len(PAIRS)
    assert all(len(samples) == 3 and len(set(samples)) == 1 and samples[0] in CHOICES for samples in greedy)

    monkeypatch.setattr(annotator, "config", replace(annotator.config, sampling=SamplingConfig(temperature=1.0)))
    sampled = annotator.generate_choice(conversations, CHOICES, n=4)
    assert all(len(samples) == 4 and set(samples) <= set(CHOICES) for samples in sampled)
    assert len({s for samples in sampled for s in samples}) > 1


def test_invalid_answers_are_retried_alone_and_then_pass(annotator, prompt):
    """First call: two answers cut short (not JSON), one off the schema; only those three are
    sent again, and pass."""
    def spoil(call, position, text):
        if call == 0 and position in (0, 1):
            return text[: len(text) // 2]
        return _off_schema(text) if call == 0 and position == 2 else text

    spoiling = Spoiling(annotator, spoil)
    results = annotate(spoiling, PAIRS[:5], prompt)
    assert spoiling.batch_sizes == [5, 3]
    assert [(r.status, r.attempts) for r in results] == [("ok", 2)] * 3 + [("ok", 1)] * 2


def test_answers_invalid_every_time_are_recorded_failed_with_the_reason(annotator, prompt):
    def spoil(call, position, text):
        return {0: text[:-1], 1: _off_schema(text)}.get(position, text)

    spoiling = Spoiling(annotator, spoil)
    results = annotate(spoiling, PAIRS[:4], prompt, max_attempts=3)
    assert spoiling.batch_sizes == [4, 2, 2]
    assert [(r.pair_id, r.status, r.error, r.attempts) for r in results] == [
        ("pair-00", "failed", INVALID_JSON, 3), ("pair-01", "failed", SCHEMA_VIOLATION, 3),
        ("pair-02", "ok", None, 1), ("pair-03", "ok", None, 1)]
    assert json.loads(results[1].raw_output)["task_category"] == "poetry"  # the last answer is kept
    assert results[0].task_category is None and results[0].desired_attributes is None


def test_a_prompt_the_backend_rejects_fails_alone_as_backend_error(annotator, prompt):
    pairs = [*PAIRS[:3], TOO_LONG, *PAIRS[3:6]]
    results = annotate(annotator, pairs, prompt, max_attempts=2)
    by_id = {r.pair_id: r for r in results}
    rejected = by_id.pop("pair-too-long")
    assert (rejected.status, rejected.error, rejected.attempts, rejected.raw_output) == (
        "failed", BACKEND_ERROR, 2, None)
    assert all((r.status, r.attempts) == ("ok", 1) for r in by_id.values())


@pytest.mark.slow
def test_openai_backend_against_vllm_serve(served_model, config, prompt):
    client_config = replace(config, backend="openai", model=SERVED_NAME, base_url=served_model, concurrency=4)
    annotator = load_annotator(client_config)
    try:
        results = annotate(annotator, PAIRS[:4], prompt)
        choices = annotator.generate_choice([prompt.render(p) for p in PAIRS[:2]], CHOICES, n=2)
    finally:
        annotator.close()
    for r in results:
        assert (r.status, r.attempts) == ("ok", 1), r
        jsonschema.validate(_attributes(r), ATTRIBUTES_SCHEMA)
    assert all(len(samples) == 2 and set(samples) <= set(CHOICES) for samples in choices)


def test_closing_the_engine_gives_the_torch_threads_back(config):
    """The engine sets torch's per-process thread count; a Celery worker or an in-process run
    goes on to other steps (scoring, embedding) that must get their own threads back."""
    import torch

    before = torch.get_num_threads()
    torch._C.set_num_threads(2)  # torch's own: this module's engine has patched torch.set_num_threads
    try:
        engine = load_annotator(replace(config, cpu_threads=1))
        assert torch.get_num_threads() == 1
        engine.close()
        assert torch.get_num_threads() == 2
        torch.set_num_threads(3)  # and the next step can set its own again
        assert torch.get_num_threads() == 3
    finally:
        torch._C.set_num_threads(before)
