"""Write models/config/embedder_calibration.json: the texts the int8 embedder is calibrated on.

    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python scripts/make_embedder_calibration.py

Post-training int8 quantisation (NNCF) sets each activation's int8 range from the activations
these texts produce, so they are shaped like what the embeddings stage embeds: `pair_text` of
conversations (the demo generator's: one to three user turns, about half with an attribute
header), bare short requests, and prose of the project's annotation and judging guidelines
(longer texts, up to the 256-token cut). No text of ../shared/data is used, so the figures the
benchmark measures on those real pairs are out of sample. Deterministic: the same file every
run. The file's content is part of the cache key of the quantised model (models/embedder_openvino.py),
so editing it makes the next load quantise again.
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.embedder import pair_text  # noqa: E402
from synpref.demo.benchmark import benchmark_prompts  # noqa: E402
from synpref.demo.pairs import PairMaker  # noqa: E402
from synpref.demo.people import Personas  # noqa: E402

OUT = ROOT / "models" / "config" / "embedder_calibration.json"
SEED = 0
CONVERSATIONS, REQUESTS, PROSE = 160, 64, 32

CATEGORIES = ("math", "coding", "factual_qa", "advice", "creative_writing", "safety", "reasoning",
              "summarization", "classification", "other")
DESIRED = ("correct final answer", "working code", "polite refusal", "concise", "shows reasoning",
           "practical steps", "accurate facts", "warm tone", "follows the requested format", "safe advice")


def attributes(rng: random.Random) -> dict:
    return {"task_category": rng.choice(CATEGORIES), "objectivity": rng.choice(("objective", "subjective")),
            "controversiality": rng.choice(("low", "medium", "high")),
            "desired_attributes": rng.sample(DESIRED, rng.randint(1, 4))}


def conversations(rng: random.Random, n: int) -> list[str]:
    maker = PairMaker(rng, Personas(SEED), benchmark_prompts())
    texts = []
    for i in range(n):
        pair = maker.pair(i, 3, with_system=False)
        turns = []
        for user, assistant in pair.history:
            turns += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        turns.append({"role": "user", "content": pair.prompt})
        texts.append(pair_text(turns, attributes(rng) if i % 2 else None))
    return texts


def requests(rng: random.Random, n: int) -> list[str]:
    """Short texts: a request without the persona's introduction, some cut to a few words."""
    from synpref.demo.tasks import TASKS

    texts = []
    for i in range(n):
        prompt = rng.choice(TASKS)(rng).prompt
        if i % 4 == 0:
            prompt = " ".join(prompt.split()[:rng.randint(1, 4)])
        texts.append(pair_text([{"role": "user", "content": prompt}]))
    return texts


def prose(rng: random.Random, n: int) -> list[str]:
    """Runs of consecutive sentences of the guidelines, as a user turn and an assistant reply."""
    text = " ".join((ROOT / "models" / "guidelines" / name).read_text()
                    for name in ("annotation_v1.md", "judging_v1.md"))
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", " ".join(text.replace("#", " ").split())) if s]
    texts = []
    for _ in range(n):
        start = rng.randrange(len(sentences))
        ask = " ".join(sentences[start:start + rng.randint(1, 6)])
        reply = " ".join(sentences[start + 6:start + 6 + rng.randint(0, 8)])
        turns = [{"role": "user", "content": ask}] + ([{"role": "assistant", "content": reply}] if reply else [])
        texts.append(pair_text(turns))
    return texts


def main() -> None:
    rng = random.Random(SEED)
    texts = conversations(rng, CONVERSATIONS) + requests(rng, REQUESTS) + prose(rng, PROSE)
    OUT.write_text(json.dumps({
        "about": "Calibration texts of the int8 embedder; made by scripts/make_embedder_calibration.py "
                 "from the demo generator and models/guidelines (no ../shared/data).",
        "texts": texts}, indent=0, ensure_ascii=False) + "\n")
    print(f"{OUT.relative_to(ROOT)}: {len(texts)} texts, {sum(map(len, texts)):,} characters")


if __name__ == "__main__":
    main()
