"""Preference attributes of a pair (the paper's 5-tuple), annotated by an LLM.

For each pair the annotator is asked, with a versioned prompt, for its task category,
objectivity, controversiality, desired attributes and an annotation guideline, decoding
forced to ATTRIBUTES_SCHEMA. Outputs are still checked (an answer cut at max_tokens is not
JSON; a server may ignore the constraint): invalid ones are retried, and a pair that never
gets a valid answer is recorded as failed with the reason, never dropped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from models.annotator import generate_isolating_rejects


PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"

TASK_CATEGORIES = ["math", "coding", "factual_qa", "advice", "creative_writing", "safety", "reasoning",
                   "summarization", "classification", "other"]

# Small maxLengths on purpose: they bound the answer to about 620 characters of JSON, so it
# fits max_tokens even from a model that never closes a string of its own accord (a random
# one fills every string to its maxLength).
ATTRIBUTES_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["task_category", "objectivity", "controversiality", "desired_attributes", "annotation_guideline"],
    "properties": {
        "task_category": {"type": "string", "enum": TASK_CATEGORIES},
        "objectivity": {"type": "string", "enum": ["objective", "subjective"]},
        "controversiality": {"type": "string", "enum": ["low", "medium", "high"]},
        "desired_attributes": {"type": "array", "minItems": 1, "maxItems": 5,
                               "items": {"type": "string", "minLength": 1, "maxLength": 32}},
        "annotation_guideline": {"type": "string", "minLength": 1, "maxLength": 300},
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(ATTRIBUTES_SCHEMA)

# Reasons a pair's annotation failed (AttributeResult.error).
INVALID_JSON = "invalid_json"
SCHEMA_VIOLATION = "schema_violation"
BACKEND_ERROR = "backend_error"

TRUNCATED = "[...]"  # marks where a text was cut to its budget


@dataclass(frozen=True)
class PromptTemplate:
    version: str
    system: str
    user: str  # str.format template with {conversation}, {response_a}, {response_b}
    conversation_chars: int
    response_chars: int

    def render(self, pair: dict) -> list[dict]:
        """Chat messages for one pair. Chosen and rejected are shown as Response A and B in
        an order fixed by their content, so the annotator cannot tell which was chosen."""
        chosen, rejected = clip_head(pair["chosen"], self.response_chars), clip_head(pair["rejected"], self.response_chars)
        response_a, response_b = (chosen, rejected) if _chosen_is_a(pair) else (rejected, chosen)
        user = self.user.format(conversation=clip_tail(format_transcript(pair["conversation"]), self.conversation_chars),
                                response_a=response_a, response_b=response_b)
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


@dataclass
class AttributeResult:
    pair_id: str
    status: str  # "ok" | "failed"
    attempts: int
    task_category: str | None = None
    objectivity: str | None = None
    controversiality: str | None = None
    desired_attributes: list[str] | None = None
    annotation_guideline: str | None = None
    error: str | None = None  # INVALID_JSON | SCHEMA_VIOLATION | BACKEND_ERROR when failed
    raw_output: str | None = None  # the last attempt's raw text (None when the backend failed)


def load_prompt(version: str = "attributes-v1") -> PromptTemplate:
    """The prompt `version` from models/prompts/<version with - as _>.yaml."""
    path = PROMPTS_DIR / f"{version.replace('-', '_')}.yaml"
    if not path.is_file():
        known = sorted(p.stem.replace("_", "-") for p in PROMPTS_DIR.glob("*.yaml"))
        raise ValueError(f"unknown prompt version {version!r}; known: {known}")
    doc = yaml.safe_load(path.read_text())
    if doc["version"] != version:
        raise ValueError(f"{path} declares version {doc['version']!r}, not {version!r}")
    return PromptTemplate(version=version, system=doc["system"].strip(), user=doc["user"].strip(),
                          conversation_chars=doc["max_chars"]["conversation"],
                          response_chars=doc["max_chars"]["response"])


def annotate(annotator, pairs: list[dict], prompt: PromptTemplate, max_attempts: int = 3) -> list[AttributeResult]:
    """One AttributeResult per pair, in order. Each attempt sends every pair still without a
    valid answer, in one batch; after max_attempts the rest are recorded as failed."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    messages = [prompt.render(pair) for pair in pairs]
    results: list[AttributeResult | None] = [None] * len(pairs)
    pending = list(range(len(pairs)))
    for attempt in range(1, max_attempts + 1):
        if not pending:
            break
        texts = generate_isolating_rejects(lambda batch: annotator.generate_json(batch, ATTRIBUTES_SCHEMA),
                                           [messages[i] for i in pending])
        for i, text in zip(pending, texts):
            results[i] = _checked(pairs[i]["pair_id"], text, attempt)
        pending = [i for i in pending if results[i].status != "ok"]
    return results


def _checked(pair_id: str, text: str | None, attempt: int) -> AttributeResult:
    if text is None:
        return AttributeResult(pair_id, "failed", attempt, error=BACKEND_ERROR)
    try:
        # strict=False: a raw control character inside a string (a small model may emit one;
        # the grammar lets it through) is harmless here; the schema still decides validity
        answer = json.loads(text, strict=False)
    except json.JSONDecodeError:
        return AttributeResult(pair_id, "failed", attempt, error=INVALID_JSON, raw_output=text)
    if not _VALIDATOR.is_valid(answer):
        return AttributeResult(pair_id, "failed", attempt, error=SCHEMA_VIOLATION, raw_output=text)
    return AttributeResult(pair_id, "ok", attempt, raw_output=text, **answer)


def format_transcript(conversation: list[dict]) -> str:
    return "\n\n".join(f"{m['role'].capitalize()}: {m['content']}" for m in conversation)


def _chosen_is_a(pair: dict) -> bool:
    digest = hashlib.md5(f"{pair['chosen']}\x00{pair['rejected']}".encode()).digest()
    return digest[0] % 2 == 0


def clip_head(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]} {TRUNCATED}"


def clip_tail(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{TRUNCATED} {text[-limit:]}"
