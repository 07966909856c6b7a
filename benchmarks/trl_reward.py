"""TRL's RewardTrainer on pre-tokenized pairs: the baseline of benchmarks/rm_throughput.py.

    PYTHONPATH=. .venv/bin/python benchmarks/trl_reward.py --tokens pairs_tokens.parquet --batch-size 8 --out m.json

The pairs come already tokenized (columns chosen_ids, rejected_ids, made by the project's
PairEncoder): TRL 1.16 cannot tokenize raw text with the MiniLM tokenizer (it appends an
EOS token that tokenizer lacks) and drops, rather than truncates, pairs over max_length.
Settings match the project's run: fp32 (TRL defaults to bf16), no gradient checkpointing
(TRL defaults to it), dropout kept as in the model (TRL disables it by default), constant
learning rate, one process. The time is the training loop's (on_train_begin to on_train_end);
tokens are the non-padding tokens the collator fed, as TRL counts them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=Path, required=True)
    parser.add_argument("--backbone", default="minilm")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=3e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    import pyarrow.parquet as pq
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import RewardConfig, RewardTrainer
    from trl.trainer.reward_trainer import DataCollatorForPreference

    from models.reward_model import load_reward_model, resolve_backbone
    from models.scorer import cpu_threads

    torch.set_num_threads(cpu_threads())
    torch.manual_seed(args.seed)
    model, tokenizer = load_reward_model(resolve_backbone(args.backbone))
    dataset = Dataset.from_dict(pq.read_table(args.tokens, columns=["chosen_ids", "rejected_ids"]).to_pydict())

    class CountingCollator(DataCollatorForPreference):
        padded = 0

        def torch_call(self, examples):
            batch = super().torch_call(examples)
            CountingCollator.padded += batch["input_ids"].numel()
            return batch

    class Timer(TrainerCallback):
        start = end = 0.0

        def on_train_begin(self, *a, **k):
            Timer.start = time.perf_counter()

        def on_train_end(self, *a, **k):
            Timer.end = time.perf_counter()

    config = RewardConfig(
        output_dir=str(args.out.parent / "trl-output"), per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=1, num_train_epochs=1, learning_rate=args.learning_rate,
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0, bf16=False, fp16=False,
        gradient_checkpointing=False, disable_dropout=False, max_length=None, use_cpu=True, save_strategy="no",
        report_to=[], logging_steps=1_000_000, disable_tqdm=True, dataloader_num_workers=0, seed=args.seed)
    trainer = RewardTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                            data_collator=CountingCollator(pad_token_id=tokenizer.pad_token_id), callbacks=[Timer()])
    trainer.train()
    seconds = Timer.end - Timer.start
    tokens = int(trainer._total_train_tokens)
    result = {"trainer": "trl", "tokens": tokens, "padded_tokens": CountingCollator.padded,
              "padding_share": 1 - tokens / CountingCollator.padded, "seconds": seconds, "tokens_per_s": tokens / seconds,
              "steps": trainer.state.global_step, "pairs": len(dataset),
              "final_loss": trainer.state.log_history[-1].get("train_loss")}
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
