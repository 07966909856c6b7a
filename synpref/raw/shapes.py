"""Shape mappers: one decoded record -> the normalised pair, or a quarantine reason.

The normalised pair is ``conversation`` (list of {role, content}), ``chosen`` and
``rejected`` (the two final assistant turns) and, for shapes that carry two whole
conversations, ``rejected_conversation`` when it differs from ``conversation``
(the silver stage decides whether the difference is real).
"""

from __future__ import annotations

import re
from typing import Any

from synpref.raw import reasons
from synpref.raw.sources import Source

ROLES = frozenset({"system", "user", "assistant", "tool"})
_MISSING = object()
_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):[ ]?")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


class Reject(Exception):
    """A record that cannot become a pair; carries the quarantine reason."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def dig(record: Any, dotted: str) -> Any:
    """Follow a dotted path (``chosen.answer``, ``messages.0.content``) into nested data."""
    value = record
    for part in dotted.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _field(record: dict, source: Source, canonical: str, *, optional: bool = False) -> Any:
    path = source.column(canonical)
    value = dig(record, path)
    if value is _MISSING:
        if optional:
            return None
        raise Reject(reasons.MISSING_FIELD, f"field {path!r} ({canonical}) is missing")
    return value


def _text(value: Any, what: str, source: Source) -> str:
    if value is None:
        raise Reject(reasons.NULL_CONTENT, f"{what} is null")
    if not isinstance(value, str):
        raise Reject(reasons.WRONG_TYPE, f"{what} is a {type(value).__name__}, expected a string")
    if len(value) > source.max_field_chars:
        raise Reject(reasons.FIELD_TOO_LARGE,
                     f"{what} has {len(value):,} chars, over the limit of {source.max_field_chars:,}")
    try:  # JSON's \ud800 escapes decode to lone surrogates, which no UTF-8 column can hold
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise Reject(reasons.INVALID_UNICODE,
                     f"{what} holds a lone surrogate U+{ord(value[e.start]):04X} at char {e.start}") from None
    return value


def _messages(value: Any, what: str, source: Source) -> list[dict]:
    if value is None:
        raise Reject(reasons.NULL_CONTENT, f"{what} is null")
    if isinstance(value, str):  # a bare prompt string is one user turn
        return [{"role": "user", "content": _text(value, what, source)}]
    if not isinstance(value, list):
        raise Reject(reasons.WRONG_TYPE, f"{what} is a {type(value).__name__}, expected a list of messages")
    messages = []
    for i, msg in enumerate(value):
        if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
            raise Reject(reasons.BAD_CONVERSATION, f"{what}[{i}] is not a {{role, content}} message")
        role = msg["role"]
        if not isinstance(role, str):
            raise Reject(reasons.WRONG_TYPE, f"{what}[{i}].role is a {type(role).__name__}, expected a string")
        if role not in ROLES:
            raise Reject(reasons.UNKNOWN_ROLE, f"{what}[{i}] has role {role!r}; known: {sorted(ROLES)}")
        messages.append({"role": role, "content": _text(msg["content"], f"{what}[{i}].content", source)})
    return messages


def _split_final(messages: list[dict], what: str) -> tuple[list[dict], str]:
    if not messages:
        raise Reject(reasons.BAD_CONVERSATION, f"{what} has no messages")
    if messages[-1]["role"] != "assistant":
        raise Reject(reasons.BAD_CONVERSATION, f"{what} does not end with an assistant turn")
    return messages[:-1], messages[-1]["content"]


def _pair(conversation, chosen, rejected, rejected_conversation=None) -> dict:
    if not conversation:
        raise Reject(reasons.BAD_CONVERSATION, "the pair has no conversation before the responses")
    return {
        "conversation": conversation,
        "chosen": chosen,
        "rejected": rejected,
        "rejected_conversation": rejected_conversation if rejected_conversation != conversation else None,
    }


def parse_transcript(text: str) -> list[dict]:
    """Split an hh-rlhf transcript ("\\n\\nHuman: ... \\n\\nAssistant: ...") into turns."""
    marks = list(_TURN.finditer(text))
    if not marks or marks[0].start() != 0 and text[: marks[0].start()].strip():
        raise Reject(reasons.BAD_TRANSCRIPT, "no leading 'Human:' / 'Assistant:' turn marker")
    turns = []
    for m, nxt in zip(marks, marks[1:] + [None]):
        end = nxt.start() if nxt else len(text)
        turns.append({"role": _HH_ROLES[m.group(1)], "content": text[m.end():end]})
    return turns


def map_prompt_chosen_rejected(rec: dict, source: Source) -> dict:
    conversation = []
    system = _field(rec, source, "system", optional=True)
    if system is not None:
        conversation.append({"role": "system", "content": _text(system, "system", source)})
    conversation.append({"role": "user", "content": _text(_field(rec, source, "prompt"), "prompt", source)})
    return _pair(conversation, _text(_field(rec, source, "chosen"), "chosen", source),
                 _text(_field(rec, source, "rejected"), "rejected", source))


def map_conversational(rec: dict, source: Source) -> dict:
    prompt = _field(rec, source, "prompt", optional=True)
    prefix = _messages(prompt, "prompt", source) if prompt is not None else []
    conv_c, chosen = _split_final(prefix + _messages(_field(rec, source, "chosen"), "chosen", source), "chosen")
    conv_r, rejected = _split_final(
        prefix + _messages(_field(rec, source, "rejected"), "rejected", source), "rejected")
    return _pair(conv_c, chosen, rejected, conv_r)


def map_hh_transcript(rec: dict, source: Source) -> dict:
    chosen_text = _text(_field(rec, source, "chosen"), "chosen", source)
    rejected_text = _text(_field(rec, source, "rejected"), "rejected", source)
    conv_c, chosen = _split_final(parse_transcript(chosen_text), "chosen transcript")
    conv_r, rejected = _split_final(parse_transcript(rejected_text), "rejected transcript")
    return _pair(conv_c, chosen, rejected, conv_r)


def map_labelled_outputs(rec: dict, source: Source) -> dict:
    conversation = _messages(_field(rec, source, "prompt"), "prompt", source)
    out1 = _text(_field(rec, source, "output_1"), "output_1", source)
    out2 = _text(_field(rec, source, "output_2"), "output_2", source)
    label = _field(rec, source, "label")
    if isinstance(label, bool) or not isinstance(label, (int, float)) or label not in (1, 2):
        raise Reject(reasons.INVALID_LABEL, f"label is {label!r}; expected 1 or 2 (the better output)")
    chosen, rejected = (out1, out2) if label == 1 else (out2, out1)
    return _pair(conversation, chosen, rejected)


MAPPERS = {
    "prompt_chosen_rejected": map_prompt_chosen_rejected,
    "conversational": map_conversational,
    "hh_transcript": map_hh_transcript,
    "labelled_outputs": map_labelled_outputs,
}


def to_pair(value: Any, source: Source) -> dict:
    if not isinstance(value, dict):
        raise Reject(reasons.NOT_AN_OBJECT, f"record is a JSON {type(value).__name__}, expected an object")
    return MAPPERS[source.shape](value, source)
