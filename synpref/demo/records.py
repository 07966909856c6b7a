"""Encoding: a pair -> one record of a source file, in its shape, with any structural defect."""

from __future__ import annotations

import json
import random

from synpref.demo.pairs import Pair


def _messages(pair: Pair, final: str) -> list[dict]:
    msgs = [{"role": "system", "content": pair.system}] if pair.system else []
    for user, assistant in pair.history:
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    return msgs + [{"role": "user", "content": pair.prompt}, {"role": "assistant", "content": final}]


def _transcript(pair: Pair, final: str) -> str:
    turns = [f"\n\nHuman: {u}\n\nAssistant: {a}" for u, a in pair.history]
    return "".join(turns) + f"\n\nHuman: {pair.prompt}\n\nAssistant: {final}"


def to_record(pair: Pair, shape: str, rng: random.Random) -> dict:
    if shape == "conversational":
        return {"chosen": _messages(pair, pair.chosen), "rejected": _messages(pair, pair.rejected)}
    if shape == "hh_transcript":
        return {"chosen": _transcript(pair, pair.chosen), "rejected": _transcript(pair, pair.rejected)}
    if shape == "labelled_outputs":
        chosen_first = rng.random() < 0.5
        first, second = (pair.chosen, pair.rejected) if chosen_first else (pair.rejected, pair.chosen)
        return {"input": pair.prompt, "output_1": first, "output_2": second, "label": 1 if chosen_first else 2}
    return {"question": {"text": pair.prompt}, "chosen": {"answer": pair.chosen},
            "rejected": {"answer": pair.rejected}}


def break_record(record: dict, defect: str, rng: random.Random) -> dict:
    """Defects in the record's structure, which ingest must quarantine."""
    if defect == "missing_field":
        return {k: v for k, v in record.items() if k != "rejected"}
    if defect == "unknown_role":
        messages = [dict(m) for m in record["rejected"]]
        rng.choice(messages)["role"] = rng.choice(("robot", "bot", "human"))
        return {**record, "rejected": messages}
    if defect == "invalid_label":
        return {**record, "label": rng.choice((0, 3))}
    return record


def _chat_json(pair: Pair) -> str:
    """json.dumps of the conversational record, encoding the shared turns only once."""
    shared = json.dumps(_messages(pair, "")[:-1], ensure_ascii=False)[1:-1]

    def side(final: str) -> str:
        return f"[{shared}, {json.dumps({'role': 'assistant', 'content': final}, ensure_ascii=False)}]"
    return f'{{"chosen": {side(pair.chosen)}, "rejected": {side(pair.rejected)}}}'


def encode(pair: Pair, shape: str, defect: str, rng: random.Random) -> str | dict:
    """One record of a source file: a JSON text, or a row dict for Parquet."""
    if shape == "conversational" and defect not in ("missing_field", "unknown_role"):
        text = _chat_json(pair)
    else:
        record = break_record(to_record(pair, shape, rng), defect, rng)
        if shape == "prompt_chosen_rejected":
            return record
        text = json.dumps(record, ensure_ascii=False)
    if defect == "malformed_json":  # a line cut short: no prefix of an object is valid JSON
        text = text[: rng.randint(len(text) // 3, 2 * len(text) // 3)]
    return text
