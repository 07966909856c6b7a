"""The judge's prompt, the shown order and its mapping back, vote aggregation and merging."""

from __future__ import annotations

from dataclasses import replace

import pytest

from models.judge import (AGREE, BACKEND_ERROR, FLIPPED, UNDECIDED, Judge, JudgePanel, ModelVotes, check_panel,
                          chosen_position, judge_pairs, load_judge_prompt, load_panel, merge, tally)
from models.annotator import AnnotatorConfig

CHOICES = ("Candidate 1", "Candidate 2")


class AlwaysFirst:
    """A judge with the strongest position bias: every answer is the first candidate."""

    def __init__(self):
        self.conversations: list[list[dict]] = []

    def generate_choice(self, conversations, choices, n=1):
        self.conversations += conversations
        return [[choices[0]] * n for _ in conversations]

    def close(self):
        pass


def _pair(i: int) -> dict:
    return {"pair_id": f"pair-{i:04d}", "conversation": [{"role": "user", "content": f"What is {i} + {i}?"}],
            "chosen": f"It is {2 * i}.", "rejected": f"It is {2 * i + 1}."}


@pytest.fixture(scope="module")
def prompt():
    return load_judge_prompt("judge-v1")


def _judge(samples: int = 1, name: str = "j") -> Judge:
    return Judge(name=name, annotator=AnnotatorConfig(model="m"), samples=samples)


# ---------------------------------------------------------------- prompt and order

def test_prompt_holds_guideline_attributes_examples_and_both_candidates(prompt):
    pair = _pair(3)
    examples = [{**_pair(100 + i), "attributes": {"task_category": "math", "objectivity": "objective",
                                                   "controversiality": "low", "desired_attributes": ["exact sum"]}}
                for i in range(10)]
    attributes = {"task_category": "math", "objectivity": "objective", "controversiality": "low",
                  "desired_attributes": ["correct final answer"], "annotation_guideline": "Check the sum."}
    system, user = prompt.render(pair, attributes, examples, chosen_position=2)
    assert "Correctness first" in system["content"]  # the guideline document
    text = user["content"]
    assert text.count("Solved example") == prompt.max_examples == 8  # at most 8 of the 10
    assert "Guideline for this pair: Check the sum." in text and "correct final answer" in text
    # shown as Candidate 2 when chosen_position is 2
    assert text.index("Candidate 1:\nIt is 7.") < text.index("Candidate 2:\nIt is 6.")
    _, flipped = prompt.render(pair, attributes, examples, chosen_position=1)
    assert flipped["content"].index("Candidate 1:\nIt is 6.") < flipped["content"].index("Candidate 2:\nIt is 7.")


def test_prompt_without_attributes_or_examples_says_so(prompt):
    _, user = prompt.render(_pair(1), None, [], chosen_position=1)
    assert "attributes unknown" in user["content"] and "Solved example" not in user["content"]
    with pytest.raises(ValueError, match="1 or 2"):
        prompt.render(_pair(1), None, [], chosen_position=0)


def test_shown_order_is_a_seeded_balanced_coin():
    ids = [f"pair-{i}" for i in range(2000)]
    positions = [chosen_position(p, seed=0) for p in ids]
    assert positions == [chosen_position(p, seed=0) for p in ids]  # stable across runs
    assert 0.45 < positions.count(1) / len(ids) < 0.55
    other_seed = [chosen_position(p, seed=1) for p in ids]
    assert 0.4 < sum(a != b for a, b in zip(positions, other_seed)) / len(ids) < 0.6


def test_a_judge_always_answering_candidate_1_comes_out_half_agree_half_flipped(prompt):
    pairs = [_pair(i) for i in range(400)]
    judge = AlwaysFirst()
    votes = judge_pairs(judge, _judge(samples=3), prompt, pairs, order_seed=0)
    decisions = [v.decision for v in votes]
    assert set(decisions) == {AGREE, FLIPPED}
    assert 0.4 < decisions.count(AGREE) / len(pairs) < 0.6
    for pair, v in zip(pairs, votes):
        # agree exactly where the chosen response was the one shown first
        assert (v.decision == AGREE) == (chosen_position(pair["pair_id"], 0) == 1)
        assert (v.agree, v.flip, v.confidence) == ((3, 0, 1.0) if v.decision == AGREE else (0, 3, 1.0))
    # and the prompts really showed the chosen response where the mapping assumed
    for pair, messages in zip(pairs, judge.conversations):
        first = messages[1]["content"].split("Candidate 1:\n")[1].split("\n")[0]
        assert (first == pair["chosen"]) == (chosen_position(pair["pair_id"], 0) == 1)


# ---------------------------------------------------------------- self-consistency

@pytest.mark.parametrize("answers, chosen_at, expected", [
    (["Candidate 1"] * 3, 1, (AGREE, 3, 0, 0, 1.0)),
    (["Candidate 1"] * 3, 2, (FLIPPED, 0, 3, 0, 1.0)),
    (["Candidate 1", "Candidate 2", "Candidate 2"], 2, (AGREE, 2, 1, 0, 0.666667)),
    (["Candidate 1", "Candidate 2"], 1, (UNDECIDED, 1, 1, 0, 0.0)),  # a tie
    (["Candidate 1", "Candidate 2", "maybe"], 1, (UNDECIDED, 1, 1, 1, 0.0)),  # invalid answers do not vote
    (["maybe", "Candidate 2"], 1, (FLIPPED, 0, 1, 1, 1.0)),
    ([], 1, (UNDECIDED, 0, 0, 0, 0.0)),
])
def test_tally(answers, chosen_at, expected):
    v = tally("j", answers, chosen_at, CHOICES)
    assert (v.decision, v.agree, v.flip, v.invalid, v.confidence) == expected
    assert v.error is None


def test_no_answers_from_the_backend_is_undecided_with_the_reason():
    v = tally("j", None, 1, CHOICES)
    assert (v.decision, v.error, v.answers) == (UNDECIDED, BACKEND_ERROR, [])


# ---------------------------------------------------------------- merging judges

def _votes(judge: str, agree: int, flip: int) -> ModelVotes:
    return tally(judge, ["Candidate 1"] * agree + ["Candidate 2"] * flip, 1, CHOICES)


@pytest.mark.parametrize("votes, expected", [
    ([_votes("a", 3, 0), _votes("b", 2, 1), _votes("c", 0, 3)], (AGREE, 0.666667)),
    ([_votes("a", 3, 0), _votes("b", 0, 3)], (UNDECIDED, 0.0)),  # one each: a tie
    ([_votes("a", 2, 0), _votes("b", 1, 1)], (AGREE, 1.0)),  # b is undecided and abstains
    ([_votes("a", 1, 1), _votes("b", 1, 1)], (UNDECIDED, 0.0)),  # nobody decided
    ([_votes("a", 0, 1), tally("b", None, 1, CHOICES)], (FLIPPED, 1.0)),  # a failed judge abstains
    ([], (UNDECIDED, 0.0)),
])
def test_majority_merge(votes, expected):
    merged = merge(votes, "majority")
    assert (merged.verdict, merged.confidence) == expected
    assert merged.votes == votes  # every judge's votes kept


def test_weighted_merge_weighs_judges_by_their_share_of_samples():
    votes = [_votes("strong", 3, 0), _votes("weak-1", 0, 3), _votes("weak-2", 1, 2)]
    # majority: two judges flip, one agrees
    assert merge(votes, "majority").verdict == FLIPPED
    # weighted: 3.0 x 1 against 1 x 1 + 1 x 2/3 (plus 1 x 1/3 for agree)
    merged = merge(votes, "weighted", {"strong": 3.0, "weak-1": 1.0, "weak-2": 1.0})
    assert merged.verdict == AGREE
    assert merged.confidence == pytest.approx((3 + 1 / 3) / 5, abs=1e-6)
    # equal weight on opposite certainties: a tie
    assert merge([_votes("a", 2, 0), _votes("b", 0, 4)], "weighted").verdict == UNDECIDED
    # a judge whose answers were all invalid or missing carries no weight
    assert merge([_votes("a", 0, 1), tally("b", None, 1, CHOICES)], "weighted", {"b": 10.0}).verdict == FLIPPED
    with pytest.raises(ValueError, match="merge method"):
        merge(votes, "mean")


# ---------------------------------------------------------------- the panel config

def test_repo_panel_loads_with_its_judges():
    panel = load_panel()
    assert panel.prompt_version == "judge-v1" and panel.merge in ("majority", "weighted")
    assert len(panel.judges) >= 2
    sampled = [j for j in panel.judges if j.samples > 1]
    assert sampled and all(j.annotator.sampling.temperature > 0 for j in sampled)
    keys = {j.config_key(panel.prompt_version, panel.order_seed) for j in panel.judges}
    assert len(keys) == len(panel.judges)


def test_panel_config_errors_are_clear(tmp_path):
    bad = tmp_path / "judges.yaml"
    bad.write_text("judges:\n  - {name: a, annotator: {model: m, temprature: 1}}\n")
    with pytest.raises(ValueError, match="unknown keys"):
        load_panel(bad)
    bad.write_text("merge: mean\njudges:\n  - {name: a, annotator: {model: m}}\n")
    with pytest.raises(ValueError, match="merge must be"):
        load_panel(bad)
    judge = _judge()
    with pytest.raises(ValueError, match="unique"):
        check_panel(JudgePanel(judges=(judge, judge)))
    with pytest.raises(ValueError, match="no judges"):
        check_panel(JudgePanel(judges=()))


def test_config_key_changes_with_what_decides_the_answers():
    judge = _judge(samples=3)
    key = judge.config_key("judge-v1", 0)
    assert key == _judge(samples=3).config_key("judge-v1", 0)
    assert key != judge.config_key("judge-v2", 0)
    assert key != judge.config_key("judge-v1", 1)
    assert key != replace(judge, samples=5).config_key("judge-v1", 0)
    hotter = replace(judge, annotator=replace(judge.annotator,
                                              sampling=replace(judge.annotator.sampling, temperature=0.9)))
    assert key != hotter.config_key("judge-v1", 0)
