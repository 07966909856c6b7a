"""The curated export as a `datasets` folder that TRL's RewardTrainer trains on as it is.

Which of TRL's preference forms fits depends on the reward model's tokenizer:

- ``conversational`` (the tokenizer has a chat template: a chat model): the curated export's
  rows unchanged, `prompt` the conversation and `chosen` / `rejected` one assistant message
  each; TRL renders every pair with the model's own template.
- ``tokenized`` (no chat template: an encoder such as BERT or MiniLM): TRL 1.16 cannot read
  text for these. Messages need a chat template, and to plain text it appends an eos token
  these tokenizers lack. So the pairs come as token ids (`chosen_ids`, `rejected_ids`, TRL's
  processed form, which it trains on without tokenizing again), encoded the way the project's
  own reward model reads them: `[CLS] conversation [SEP] response [SEP]`, the conversation as
  "role: content" lines, cut to `max_length` keeping the response (models/reward_model.py).
  The text stays beside the ids in TRL's standard form (`prompt`, `chosen`, `rejected`
  strings), for reading.

Either way the provenance columns ride along (pair_id, source, status, reason, meta): TRL's
trainer drops the columns it does not use. `synpref_export.json` in the folder says how it
was made.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from synpref.filtered.export import export_path, save_dataset_folder
from synpref.lake import Lake, scratch

FORMS = ("conversational", "tokenized")
INFO_FILE = "synpref_export.json"
ENCODER_MAX_LENGTH = 512  # BERT-family position embeddings; an encoder's tokenizer may not say
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
CHECKED_ROWS = 100  # pairs rendered with a chat template at export time, so a template error shows here


@dataclass
class TrlExport:
    path: str
    form: str
    tokenizer: str
    rows: int
    max_length: int | None = None


def default_trl_dir(lake: Lake) -> Path:
    return lake.home / "export" / "trl_dataset"


def export_for_trl(lake: Lake, tokenizer: str, out: Path | None = None, max_length: int | None = None) -> TrlExport:
    """Write the curated export to `out` (default <lake>/export/trl_dataset) for TRL with the
    tokenizer of `tokenizer` (a local model folder, or "minilm")."""
    from datasets import Dataset

    from models.reward_model import input_format

    source = export_path(lake)
    if not source.exists():
        raise FileNotFoundError(f"no curated export under {lake.root}: run `synpref stage2` (its last job, "
                                f"export, writes it) first")
    tok = _load_tokenizer(tokenizer)
    out = Path(out) if out else default_trl_dir(lake)
    cache = lake.tmp_dir / f"trl-cache.tmp-{scratch.tag()}"
    try:
        dataset = Dataset.from_parquet(str(lake.local_copy(source)), cache_dir=str(cache))
        if input_format(tok) == "chat_template":
            _check_template(tok, dataset)
            info = TrlExport(str(out), "conversational", tokenizer, len(dataset))
        else:
            max_length = max_length or min(tok.model_max_length, ENCODER_MAX_LENGTH)
            dataset = _tokenized(dataset, tok, max_length)
            info = TrlExport(str(out), "tokenized", tokenizer, len(dataset), max_length)
        save_dataset_folder(dataset, out, files={INFO_FILE: json.dumps(asdict(info), indent=2)})
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return info


def _load_tokenizer(name: str):
    from models.reward_model import load_tokenizer, resolve_backbone

    path = resolve_backbone(name)  # FileNotFoundError for anything but a local folder or "minilm"
    if not any((Path(path) / f).is_file() for f in TOKENIZER_FILES):
        raise FileNotFoundError(f"no tokenizer in {path} (none of {', '.join(TOKENIZER_FILES)}): give the "
                                f"reward model's backbone folder")
    try:
        return load_tokenizer(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"no tokenizer in {path}: {e}") from e


def _check_template(tokenizer, dataset) -> None:
    for row in dataset.select(range(min(CHECKED_ROWS, len(dataset)))):
        try:
            tokenizer.apply_chat_template(row["prompt"] + row["chosen"], tokenize=False)
        except Exception as e:  # jinja's own errors (raise_exception in a template) included
            raise ValueError(f"the tokenizer's chat template cannot render pair {row['pair_id']}: {e}") from e


def _tokenized(dataset, tokenizer, max_length: int):
    from models.reward_model import PairEncoder, conversation_text

    encoder = PairEncoder(tokenizer, max_length, fmt="pair_text")

    def encode(batch: dict) -> dict:
        chosen = [messages[0]["content"] for messages in batch["chosen"]]
        rejected = [messages[0]["content"] for messages in batch["rejected"]]
        chosen_ids, rejected_ids = encoder.encode_pairs(batch["prompt"], chosen, rejected)
        return {"prompt": [conversation_text(c) for c in batch["prompt"]], "chosen": chosen, "rejected": rejected,
                "chosen_ids": [ids.tolist() for ids in chosen_ids.ids],
                "rejected_ids": [ids.tolist() for ids in rejected_ids.ids]}

    return dataset.map(encode, batched=True, batch_size=256, desc="tokenizing for TRL")
