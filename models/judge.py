"""Preference-aware LLM judging (Skywork-Reward-V2): silver labels from retrieved human examples.

The judge sees the annotation guideline (a document kept in models/guidelines/), the
pair's own attributes, up to `max_examples` human-labelled pairs retrieved for it, and the
target pair with its responses shown as "Candidate 1" / "Candidate 2" in a seeded random
order. Decoding is forced to the prompt's choices. Each judge model answers `samples`
times (self-consistency, majority vote); the models' decisions are then merged. Every
answer is mapped back from the shown position to the pair's original label, so a verdict
says whether the judges agree with the original chosen/rejected or flip it.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from models.annotator import (AnnotatorConfig, config_from_dict, default_config_path, generate_isolating_rejects,
                              load_config)
from models.attributes import PROMPTS_DIR, clip_head, clip_tail, format_transcript

GUIDELINES_DIR = Path(__file__).resolve().parent / "guidelines"

AGREE, FLIPPED, UNDECIDED = "agree", "flipped", "undecided"
VERDICTS = (AGREE, FLIPPED, UNDECIDED)
MERGE_METHODS = ("majority", "weighted")
BACKEND_ERROR = "backend_error"


# ---------------------------------------------------------------- the prompt

@dataclass(frozen=True)
class JudgePrompt:
    version: str
    system: str  # the guideline document already in place
    example: str  # str.format template of one solved example
    user: str  # str.format template of the request
    choices: tuple[str, ...]  # choices[i] names the response shown at position i + 1
    max_examples: int
    max_chars: dict[str, int]

    def render(self, pair: dict, attributes: dict | None, examples: list[dict], chosen_position: int) -> list[dict]:
        """Chat messages judging `pair` (conversation, chosen, rejected). `examples` are
        human-labelled pairs (their `chosen` is the preferred response), each with its
        `attributes`; at most max_examples are shown. chosen_position (1 or 2) is where the
        original chosen response is shown."""
        if chosen_position not in (1, 2):
            raise ValueError(f"chosen_position must be 1 or 2, got {chosen_position!r}")
        c = self.max_chars
        chosen, rejected = clip_head(pair["chosen"], c["response"]), clip_head(pair["rejected"], c["response"])
        first, second = (chosen, rejected) if chosen_position == 1 else (rejected, chosen)
        shown = [self.example.format(
            number=i, attributes=describe(example.get("attributes")),
            conversation=clip_tail(format_transcript(example["conversation"]), c["example_conversation"]),
            preferred=clip_head(example["chosen"], c["example_response"]),
            other=clip_head(example["rejected"], c["example_response"]),
        ).strip() for i, example in enumerate(examples[: self.max_examples], start=1)]
        user = self.user.format(
            examples="\n\n".join(shown) + "\n" if shown else "",
            attributes=describe(attributes),
            pair_guideline=(attributes or {}).get("annotation_guideline") or "none given",
            conversation=clip_tail(format_transcript(pair["conversation"]), c["conversation"]),
            candidate_1=first, candidate_2=second,
        )
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user.strip()}]


def describe(attributes: dict | None) -> str:
    """A pair's attributes on one line, for the prompt."""
    if not attributes or not attributes.get("task_category"):
        return "attributes unknown"
    wanted = ", ".join(attributes.get("desired_attributes") or []) or "none given"
    return (f"task: {attributes['task_category']}; {attributes.get('objectivity')}; "
            f"controversiality {attributes.get('controversiality')}; desired: {wanted}")


def load_judge_prompt(version: str = "judge-v1") -> JudgePrompt:
    """The judge prompt `version` from models/prompts/, with its guideline document."""
    path = PROMPTS_DIR / f"{version.replace('-', '_')}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown judge prompt version {version!r} (no {path.name} in {PROMPTS_DIR})")
    doc = yaml.safe_load(path.read_text())
    if doc["version"] != version:
        raise ValueError(f"{path} declares version {doc['version']!r}, not {version!r}")
    choices = tuple(doc["choices"])
    if len(choices) != 2 or len(set(choices)) != 2:
        raise ValueError(f"{path}: choices must be two distinct strings, got {choices!r}")
    guideline = (GUIDELINES_DIR / doc["guideline"]).read_text().strip()
    return JudgePrompt(version=version, system=doc["system"].strip().format(guideline=guideline),
                       example=doc["example"], user=doc["user"], choices=choices,
                       max_examples=int(doc["max_examples"]), max_chars=dict(doc["max_chars"]))


def chosen_position(pair_id: str, seed: int) -> int:
    """Where the original chosen response is shown (1 or 2): a seeded coin per pair, the
    same for every judge and sample, so a rerun shows every pair as before."""
    return 1 + hashlib.sha256(f"{seed}:{pair_id}".encode()).digest()[0] % 2


# ---------------------------------------------------------------- votes

@dataclass
class ModelVotes:
    """One judge's answers on one pair, mapped back to the original label."""

    judge: str
    answers: list[str]  # as given, e.g. "Candidate 2"
    agree: int  # answers for the original chosen response
    flip: int  # answers for the original rejected response
    invalid: int  # answers outside the choices (a server ignoring the constraint)
    decision: str  # AGREE | FLIPPED | UNDECIDED (a tie, or no valid answer)
    confidence: float  # share of valid answers behind the decision; 0 when undecided
    error: str | None = None  # BACKEND_ERROR when the judge gave no answers

    @property
    def valid(self) -> int:
        return self.agree + self.flip


def tally(judge: str, answers: list[str] | None, chosen_at: int, choices: tuple[str, ...]) -> ModelVotes:
    """Self-consistency: the majority of one judge's samples; a tie is undecided."""
    if answers is None:
        return ModelVotes(judge, [], 0, 0, 0, UNDECIDED, 0.0, error=BACKEND_ERROR)
    chosen_answer, rejected_answer = choices[chosen_at - 1], choices[2 - chosen_at]
    agree = sum(a == chosen_answer for a in answers)
    flip = sum(a == rejected_answer for a in answers)
    decision, backing = _side(agree, flip)
    return ModelVotes(judge, list(answers), agree, flip, len(answers) - agree - flip, decision,
                      round(backing / (agree + flip), 6) if decision != UNDECIDED else 0.0)


def _side(agree: float, flip: float) -> tuple[str, float]:
    if agree > flip:
        return AGREE, agree
    if flip > agree:
        return FLIPPED, flip
    return UNDECIDED, 0.0


@dataclass
class Verdict:
    verdict: str  # AGREE | FLIPPED | UNDECIDED
    confidence: float  # 0..1, 0 when undecided
    votes: list[ModelVotes] = field(default_factory=list)


def merge(votes: list[ModelVotes], method: str = "majority", weights: dict[str, float] | None = None) -> Verdict:
    """Several judges' decisions on one pair, merged.

    majority: one vote per judge that decided; undecided judges abstain; a tie (or no
    decided judge) is undecided. Confidence: the share of the voting judges behind the verdict.
    weighted: each judge adds weight x (agree - flip) / valid answers; the sign decides,
    0 is undecided. Confidence: the weighted share of answers behind the verdict.
    """
    weights = weights or {}
    if method == "majority":
        decided = Counter(v.decision for v in votes if v.decision != UNDECIDED)
        verdict, backing = _side(decided[AGREE], decided[FLIPPED])
        voting = decided[AGREE] + decided[FLIPPED]
        return Verdict(verdict, round(backing / voting, 6) if verdict != UNDECIDED else 0.0, votes)
    if method == "weighted":
        answered = [v for v in votes if v.valid]
        agree = sum(weights.get(v.judge, 1.0) * v.agree / v.valid for v in answered)
        flip = sum(weights.get(v.judge, 1.0) * v.flip / v.valid for v in answered)
        verdict, backing = _side(round(agree, 9), round(flip, 9))
        return Verdict(verdict, round(backing / (agree + flip), 6) if verdict != UNDECIDED else 0.0, votes)
    raise ValueError(f"unknown merge method {method!r}; known: {', '.join(MERGE_METHODS)}")


# ---------------------------------------------------------------- the panel of judges

@dataclass(frozen=True)
class Judge:
    name: str  # the cache key of its votes, with config_key
    annotator: AnnotatorConfig
    samples: int = 1  # answers per pair (self-consistency)
    weight: float = 1.0  # in weighted merging

    def config_key(self, prompt_version: str, order_seed: int) -> str:
        """What decides this judge's answers besides the pair: a changed key means new votes."""
        s = self.annotator.sampling
        text = (f"{self.annotator.model}|{prompt_version}|n={self.samples}|t={s.temperature}|p={s.top_p}"
                f"|seed={s.seed}|order={order_seed}")
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class JudgePanel:
    judges: tuple[Judge, ...]
    prompt_version: str = "judge-v1"
    merge: str = "majority"
    order_seed: int = 0

    def weights(self) -> dict[str, float]:
        return {j.name: j.weight for j in self.judges}


def default_panel_path() -> Path:
    return Path(__file__).resolve().parent / "config" / "judges.yaml"


def load_panel(path: str | Path | None = None) -> JudgePanel:
    """The judges from YAML. Each judge's `annotator` mapping overrides the annotator config
    (models/config/annotator.yaml, or `annotator_config` relative to the file)."""
    path = Path(path or default_panel_path())
    doc = yaml.safe_load(path.read_text()) or {}
    known = {"prompt_version", "merge", "order_seed", "judges", "annotator_config"}
    if unknown := set(doc) - known:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    base_file = path.parent / doc["annotator_config"] if doc.get("annotator_config") else default_config_path()
    base = load_config(base_file)
    judges = []
    for i, entry in enumerate(doc.get("judges") or []):
        if unknown := set(entry) - {"name", "samples", "weight", "annotator"}:
            raise ValueError(f"{path}: judge {i}: unknown keys {sorted(unknown)}")
        config = config_from_dict(entry.get("annotator") or {}, f"{path}: judge {i}", base=base)
        judges.append(Judge(name=entry["name"], annotator=config, samples=int(entry.get("samples", 1)),
                            weight=float(entry.get("weight", 1.0))))
    panel = JudgePanel(judges=tuple(judges), prompt_version=doc.get("prompt_version", "judge-v1"),
                       merge=doc.get("merge", "majority"), order_seed=int(doc.get("order_seed", 0)))
    check_panel(panel, str(path))
    return panel


def check_panel(panel: JudgePanel, where: str = "judge panel") -> None:
    names = [j.name for j in panel.judges]
    if not names:
        raise ValueError(f"{where}: no judges")
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: judge names must be unique, got {names}")
    if panel.merge not in MERGE_METHODS:
        raise ValueError(f"{where}: merge must be one of {MERGE_METHODS}, got {panel.merge!r}")
    for j in panel.judges:
        if j.samples < 1 or j.weight <= 0:
            raise ValueError(f"{where}: judge {j.name}: samples must be >= 1 and weight > 0")


# ---------------------------------------------------------------- judging a batch

def judge_pairs(annotator, judge: Judge, prompt: JudgePrompt, pairs: list[dict], order_seed: int,
                attributes: dict[str, dict] | None = None,
                examples: dict[str, list[dict]] | None = None) -> list[ModelVotes]:
    """One judge's votes on each pair (in order): `samples` answers each, in one batch.
    A pair the backend fails on gets no answers (undecided, error BACKEND_ERROR)."""
    attributes, examples = attributes or {}, examples or {}
    positions = [chosen_position(p["pair_id"], order_seed) for p in pairs]
    messages = [prompt.render(p, attributes.get(p["pair_id"]), examples.get(p["pair_id"], []), at)
                for p, at in zip(pairs, positions)]
    answers = generate_isolating_rejects(
        lambda batch: annotator.generate_choice(batch, list(prompt.choices), n=judge.samples), messages)
    return [tally(judge.name, a, at, prompt.choices) for a, at in zip(answers, positions)]
