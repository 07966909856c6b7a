"""Pairs: a conversation plus the written chosen/rejected, and the content defects planted in them."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from synpref.demo.defects import MALFORMED
from synpref.demo.people import Personas
from synpref.demo.tasks import TASKS

SYSTEM_PROMPTS = (
    "You are a helpful assistant.",
    "You are a friendly, concise assistant. Answer clearly.",
    "You are a patient tutor who shows your reasoning.",
    "You are an assistant for a community help desk. Be accurate and kind.",
)
FOLLOW_UPS = ("Thanks! One more thing:", "Great, that helps. Another question:", "Perfect. Next,",
              "Thank you. Different topic:", "Got it.")


@dataclass(slots=True)
class Pair:
    task: str
    pair_key: str
    history: tuple[tuple[str, str], ...]  # earlier (user, assistant) turns, shared by both sides
    prompt: str  # the final user turn
    chosen: str
    rejected: str
    system: str | None = None
    true_better: str | None = "chosen"  # None where no side is meaningfully better


class PairMaker:
    """Fresh clean pairs; the persona of each comes from its record's position among all records,
    so no two fresh pairs are ever the same by accident."""

    def __init__(self, rng: random.Random, personas: Personas, benchmark: list[str]):
        self.rng = rng
        self.personas = personas
        self.benchmark = benchmark

    def pair(self, position: int, max_user_turns: int, with_system: bool) -> Pair:
        rng = self.rng
        draw = rng.random()
        turns = min(max_user_turns, 1 + (draw >= 0.6) + (draw >= 0.9))  # 60% one turn, 30% two, 10% three
        tasks = [rng.choice(TASKS)(rng) for _ in range(turns)]
        prompts = [f"{self.personas.intro(position, rng)} {tasks[0].prompt}"]
        prompts += [f"{rng.choice(FOLLOW_UPS)} {t.prompt}" for t in tasks[1:]]
        final = tasks[-1]
        return Pair(task=final.kind, pair_key=f"pair-{position + 1:08d}",
                    history=tuple((p, t.better) for p, t in zip(prompts[:-1], tasks)),
                    prompt=prompts[-1], chosen=final.better, rejected=final.worse,
                    system=rng.choice(SYSTEM_PROMPTS) if with_system and rng.random() < 0.3 else None)

    def plant(self, pair: Pair, defect: str) -> Pair:
        """Apply a content defect (one the data itself shows, not its encoding)."""
        rng = self.rng
        if defect == "flipped":
            return replace(pair, chosen=pair.rejected, rejected=pair.chosen, true_better="rejected")
        if defect == "empty_response":
            blank = rng.choice(("", " ", "\n", "  \n "))
            side = {"chosen": blank} if rng.random() < 0.5 else {"rejected": blank}
            return replace(pair, **side, true_better=None)
        if defect == "identical_responses":
            return replace(pair, rejected=pair.chosen, true_better=None)
        if defect == "contaminated":
            lead = rng.choice(("Question from a friend:", "Also, this came up in class:", "And one more:"))
            return replace(pair, prompt=f"{pair.prompt}\n\n{lead} {rng.choice(self.benchmark)}")
        if defect in MALFORMED:
            return replace(pair, true_better=None)
        return pair


def whitespace_variant(pair: Pair) -> Pair:
    """The same pair with extra inner spaces and trailing whitespace (equal after normalising)."""
    def spaced(text: str) -> str:
        return text.replace(" ", "  ", 2) + "  "

    return replace(pair, history=tuple((spaced(u), spaced(a)) for u, a in pair.history),
                   prompt=spaced(pair.prompt), chosen=spaced(pair.chosen), rejected=spaced(pair.rejected))
