"""Train a Bradley-Terry reward model under DeepSpeed (ZeRO-1 by default, as the paper did).

Run from the repository root. Pairs are Parquet files with columns pair_id, conversation
(a list of {role, content}), chosen, rejected; --eval picks the best checkpoint.

One process (the CPU, or one GPU):

    python -m models.train_rm --train train.parquet --eval eval.parquet --out runs/rm

Two processes on the CPU, data parallel over gloo, through the DeepSpeed launcher (or torchrun):

    DS_ACCELERATOR=cpu deepspeed --num_gpus 2 --module models.train_rm --train train.parquet --eval eval.parquet --out runs/rm
    DS_ACCELERATOR=cpu torchrun --nproc_per_node 2 -m models.train_rm --train train.parquet --eval eval.parquet --out runs/rm

Eight GPUs, a causal LM backbone, the paper's hyper-parameters (bf16 on GPUs by default):

    deepspeed --num_gpus 8 --module models.train_rm --backbone /models/Qwen3-8B --micro_batch_size 4 \
        --train train.parquet --eval gold.parquet --out runs/rm-8b

Every field of models/train_config.TrainConfig is a flag (--learning_rate 3e-6 --global_batch_size 256);
--config FILE (YAML or JSON) sets several at once and the flags win over it.

Writes under --out: checkpoints/ (DeepSpeed, every --save_every steps; a rerun with the same
--out resumes from the latest one), best/ (the checkpoint with the best eval accuracy, a
folder AutoModelForSequenceClassification.from_pretrained loads), train_log.jsonl (one JSON
object per logged step, evaluation and checkpoint) and metrics.json (written at the end).
Under Dagster Pipes (DAGSTER_PIPES_CONTEXT set) rank 0 also sends its log lines to the run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from models.batching import length_grouped_micro_batches, rank_micro_batches
from models.launch import free_port
from models.reward_model import (LAKE_PREFIX, Encoded, PairEncoder, bt_loss, collate, concat,
                                 freeze_bottom_layers, input_format, lake_root_of, load_reward_model,
                                 recorded_backbone, resolve_backbone, rewards, save_reward_model)
from models.scorer import cpu_threads, score_encoded
from models.train_config import (RunPaths, TrainConfig, deepspeed_config, load_config, lr_factor, make_config,
                                 parse_value, steps_per_epoch, total_steps)

PAIR_COLUMNS = ("pair_id", "conversation", "chosen", "rejected")


# ---------------------------------------------------------------- arguments

def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, TrainConfig]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True, help="training pairs (Parquet)")
    parser.add_argument("--eval", default=None, help="evaluation pairs (Parquet); picks best/")
    parser.add_argument("--out", required=True, help="output folder (resumed if it holds checkpoints)")
    parser.add_argument("--config", default=None, help="YAML/JSON file of TrainConfig fields")
    parser.add_argument("--local_rank", type=int, default=None, help=argparse.SUPPRESS)  # the deepspeed launcher's
    for f in fields(TrainConfig):
        parser.add_argument(f"--{f.name}", default=None, metavar=f.name.upper(),
                            type=lambda text, name=f.name: parse_value(name, text), help=f"(default {f.default!r})")
    args = parser.parse_args(argv)
    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    base = load_config(args.config) if args.config else TrainConfig()
    return args, make_config(base, **overrides)


# ---------------------------------------------------------------- processes

@dataclass
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: object  # torch.device
    on_cpu: bool

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Dist:
    """Join the process group the launcher made (or a group of one): gloo on the CPU, nccl on GPUs."""
    if "RANK" not in os.environ:  # plain `python -m models.train_rm`: a group of one
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=os.environ.get("MASTER_PORT") or str(free_port()))
    import torch

    on_cpu = os.environ.get("DS_ACCELERATOR") == "cpu" or not torch.cuda.is_available()
    if on_cpu:
        os.environ["DS_ACCELERATOR"] = "cpu"  # read when deepspeed is imported
    import deepspeed

    if on_cpu:
        # DeepSpeed JIT-compiles a shared-memory all-reduce for the CPU on first use (minutes);
        # gloo's own all-reduce is enough here.
        sys.modules["deepspeed.comm.torch"].build_shm_op = lambda: None
    deepspeed.init_distributed(dist_backend="gloo" if on_cpu else "nccl")
    rank, world, local_rank = (int(os.environ[k]) for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if on_cpu:  # share the cores among the processes of this machine
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        torch.set_num_threads(max(1, cpu_threads() // local_world))
        device = torch.device("cpu")
    else:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    return Dist(rank, world, local_rank, device, on_cpu)


# ---------------------------------------------------------------- reporting

class Reporter:
    """Rank 0's log: stdout, train_log.jsonl and, under Dagster Pipes, the Dagster run's log."""

    def __init__(self, dist: Dist, log_path: Path):
        self.on = dist.main
        self.log_path = log_path
        self.pipes = None
        if self.on and os.environ.get("DAGSTER_PIPES_CONTEXT"):
            from dagster_pipes import open_dagster_pipes

            self.pipes = open_dagster_pipes()

    def info(self, message: str) -> None:
        if self.on:
            print(message, flush=True)
            if self.pipes is not None:
                self.pipes.log.info(message)

    def record(self, event: str, **values) -> None:
        if self.on:
            line = {"event": event, "time": datetime.now(timezone.utc).isoformat(), **values}
            with self.log_path.open("a") as f:
                f.write(json.dumps(line) + "\n")

    def close(self) -> None:
        if self.pipes is not None:
            self.pipes.close()


# ---------------------------------------------------------------- data

@dataclass
class Pairs:
    pair_ids: list[str]
    both: Encoded  # the chosen sequences, then the rejected ones

    @property
    def n(self) -> int:
        return len(self.pair_ids)

    def pair_lengths(self) -> np.ndarray:
        lengths = self.both.lengths
        return np.maximum(lengths[:self.n], lengths[self.n:])

    def rows(self, pairs: np.ndarray) -> np.ndarray:
        """The sequence rows of some pairs: their chosen rows, then their rejected rows."""
        return np.concatenate([pairs, pairs + self.n])


def load_pairs(path: str, encoder: PairEncoder) -> Pairs:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=list(PAIR_COLUMNS))
    records = table.to_pydict()
    chosen, rejected = encoder.encode_pairs(records["conversation"], records["chosen"], records["rejected"])
    return Pairs(records["pair_id"], concat(chosen, rejected))


# ---------------------------------------------------------------- evaluation and the best model

def evaluate(model, pairs: Pairs, pad_id: int, device, max_tokens: int) -> dict:
    import torch

    was_training = model.training
    model.eval()
    try:
        scores = score_encoded(model, pairs.both, pad_id, device, max_tokens, max_batch=256)
    finally:
        model.train(was_training)
    margin = scores[:pairs.n] - scores[pairs.n:]
    loss = float(torch.nn.functional.softplus(-torch.from_numpy(margin)).mean())  # the BT loss
    return {"accuracy": float((margin > 0).mean()), "mean_margin": float(margin.mean()), "loss": loss,
            "pairs": pairs.n}


def read_best(paths: RunPaths) -> dict | None:
    info = paths.best / "rm_info.json"
    return json.loads(info.read_text()).get("eval") if info.exists() else None


def better(result: dict, best: dict | None) -> bool:
    """Higher accuracy wins; on a tie the lower eval loss."""
    return best is None or (result["accuracy"], -result["loss"]) > (best["accuracy"], -best["loss"])


def save_best(model, tokenizer, paths: RunPaths, info: dict) -> None:
    """Write the model to hf/step-N, then point best at it (a symlink swapped atomically), then
    remove the older ones: a kill at any moment leaves best/ a complete model."""
    hf = paths.out / "hf"
    name = f"step-{info['step']:06d}"
    staging = hf / f".{name}.tmp-{uuid.uuid4().hex[:8]}"
    save_reward_model(model, tokenizer, staging, info)
    shutil.rmtree(hf / name, ignore_errors=True)
    staging.rename(hf / name)
    link = paths.out / f".best.tmp-{uuid.uuid4().hex[:8]}"
    link.symlink_to(Path("hf") / name)
    os.replace(link, paths.best)
    for old in hf.iterdir():
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- checkpoints

def resume(engine, paths: RunPaths) -> int:
    """Load the latest DeepSpeed checkpoint if there is one; the optimizer step it was taken at."""
    if not (paths.checkpoints / "latest").exists():
        return 0
    loaded, client_state = engine.load_checkpoint(str(paths.checkpoints))
    if loaded is None:
        raise RuntimeError(f"could not load the latest checkpoint under {paths.checkpoints}")
    return int(client_state["step"])


def save_checkpoint(engine, paths: RunPaths, step: int, keep: int, dist: Dist) -> None:
    import torch.distributed as torch_dist

    engine.save_checkpoint(str(paths.checkpoints), tag=f"step-{step:06d}", client_state={"step": step})
    torch_dist.barrier()
    if dist.main:  # DeepSpeed moved `latest` to this tag: older ones can go
        tags = sorted(p for p in paths.checkpoints.glob("step-*") if p.is_dir())
        for old in tags[:-keep]:
            shutil.rmtree(old, ignore_errors=True)


def _due(step: int, every: int, last: int) -> bool:
    return step == last or (every > 0 and step % every == 0)


# ---------------------------------------------------------------- training

@dataclass
class Window:
    """Sums over the steps since the last log line."""

    loss: float = 0.0
    correct: int = 0
    pairs: int = 0
    micro_batches: int = 0
    tokens: int = 0
    padded: int = 0
    seconds: float = 0.0

    def values(self):
        return [self.loss, self.correct, self.pairs, self.micro_batches, self.tokens, self.padded]


def all_reduce_sum(values: list[float]) -> list[float]:
    import torch
    import torch.distributed as torch_dist

    t = torch.tensor(values, dtype=torch.float64)
    torch_dist.all_reduce(t)
    return t.tolist()


def train(args: argparse.Namespace, config: TrainConfig) -> dict:
    import torch.distributed as torch_dist

    dist = setup_distributed()
    paths = RunPaths(args.out)
    paths.out.mkdir(parents=True, exist_ok=True)
    reporter = Reporter(dist, paths.log)
    try:
        return _train(args, config, dist, paths, reporter)
    finally:
        reporter.close()
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def _train(args, config: TrainConfig, dist: Dist, paths: RunPaths, reporter: Reporter) -> dict:
    import deepspeed
    import torch

    started = time.perf_counter()
    torch.manual_seed(config.seed)  # the new reward head's initialisation
    # a backbone under the lake (another of its models) is read and recorded relative to the lake
    # root above --out, so the lake can be moved or copied, even between a kill and the resume
    lake_root = lake_root_of(paths.out)
    backbone = resolve_backbone(config.backbone, lake_root)
    recorded = recorded_backbone(backbone, lake_root)
    if recorded.startswith(LAKE_PREFIX):
        config = replace(config, backbone=recorded)
    model, tokenizer = load_reward_model(backbone)
    trainable = freeze_bottom_layers(model, config.freeze_layers)
    encoder = PairEncoder(tokenizer, config.max_length)
    train_pairs = load_pairs(args.train, encoder)
    eval_pairs = load_pairs(args.eval, encoder) if args.eval else None
    accumulation = config.accumulation_steps(dist.world_size)
    per_epoch = steps_per_epoch(train_pairs.n, config, dist.world_size)
    if per_epoch == 0:
        raise SystemExit(f"{train_pairs.n} training pairs do not fill one global batch of "
                         f"{config.global_batch_size} pairs: lower global_batch_size")
    total = total_steps(config, per_epoch)
    use_bf16 = config.precision == "bf16" or (config.precision == "auto" and not dist.on_cpu)
    engine, _, _, _ = deepspeed.initialize(
        model=model, model_parameters=[p for p in model.parameters() if p.requires_grad],
        config=deepspeed_config(config, dist.world_size, use_bf16),
        lr_scheduler=lambda optimizer: torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, config, total)))
    step = resumed_from = resume(engine, paths)
    pad_id = tokenizer.pad_token_id
    lengths = train_pairs.pair_lengths()
    info = {"input_format": encoder.format, "max_length": config.max_length, "backbone": recorded}
    best = read_best(paths)
    reporter.info(f"{'resumed from step ' + str(step) if step else 'starting'}: {train_pairs.n:,} training pairs, "
                  f"{eval_pairs.n if eval_pairs else 0:,} eval pairs, {total:,} steps of {config.global_batch_size} "
                  f"pairs ({dist.world_size} processes x {config.micro_batch_size} pairs x {accumulation} "
                  f"accumulation), {'bf16' if use_bf16 else 'fp32'}, {type(engine.optimizer).__name__}, "
                  f"{trainable:,} weights trained"
                  + (f" (embeddings and {config.freeze_layers} bottom layers frozen)" if config.freeze_layers else ""))
    reporter.record("start", step=step, resumed_from=resumed_from, world_size=dist.world_size,
                    total_steps=total, train_pairs=train_pairs.n, config=config.to_dict())
    run_tokens = run_padded = 0
    train_seconds = 0.0
    window, epoch_batches, history = Window(), {}, []
    engine.train()
    while step < total:
        epoch, in_epoch = divmod(step, per_epoch)
        if epoch not in epoch_batches:
            epoch_batches = {epoch: length_grouped_micro_batches(
                lengths, config.micro_batch_size, config.seed, epoch, config.mega_batch_factor, config.length_grouped)}
        t0 = time.perf_counter()
        for pairs in rank_micro_batches(epoch_batches[epoch], in_epoch, dist.rank, dist.world_size, accumulation):
            rows = train_pairs.rows(pairs)
            batch = collate(train_pairs.both, rows, pad_id, dist.device)
            chosen, rejected = rewards(engine, batch).chunk(2)
            loss = bt_loss(chosen, rejected)
            engine.backward(loss)
            engine.step()
            tokens, padded = int(batch["attention_mask"].sum()), batch["attention_mask"].numel()
            window.loss += float(loss.detach())
            window.correct += int((chosen > rejected).sum())
            window.pairs += len(pairs)
            window.micro_batches += 1
            window.tokens += tokens
            window.padded += padded
        if not dist.on_cpu:
            torch.cuda.synchronize()
        window.seconds += time.perf_counter() - t0
        step += 1
        if _due(step, config.log_every, total):
            loss_sum, correct, n_pairs, micro, tokens, padded = all_reduce_sum(window.values())
            seconds = max(all_reduce_sum([window.seconds])[0] / dist.world_size, 1e-9)
            run_tokens, run_padded = run_tokens + int(tokens), run_padded + int(padded)
            train_seconds += seconds
            line = {"step": step, "epoch": epoch, "loss": loss_sum / micro, "accuracy": correct / n_pairs,
                    "lr": engine.get_lr()[0], "tokens": int(tokens), "padding_share": 1 - tokens / padded,
                    "tokens_per_s": tokens / seconds}
            reporter.record("train", **line)
            reporter.info(f"step {step}/{total} loss {line['loss']:.4f} acc {line['accuracy']:.3f} "
                          f"lr {line['lr']:.2e} {line['tokens_per_s']:,.0f} tokens/s")
            history.append(line)
            window = Window()
        if eval_pairs is not None and _due(step, config.eval_every, total):
            if dist.main:
                result = {"step": step, **evaluate(engine.module, eval_pairs, pad_id, dist.device,
                                                   config.eval_max_tokens)}
                is_best = better(result, best)
                if is_best:
                    best = result
                    save_best(engine.module, tokenizer, paths, {**info, "step": step, "eval": result})
                reporter.record("eval", best=is_best, **result)
                reporter.info(f"eval at step {step}: accuracy {result['accuracy']:.4f} margin "
                              f"{result['mean_margin']:.3f}{' (best so far)' if is_best else ''}")
            torch.distributed.barrier()
        if _due(step, config.save_every, total):
            save_checkpoint(engine, paths, step, config.keep_checkpoints, dist)
            reporter.record("checkpoint", step=step)
    if eval_pairs is None and dist.main and not paths.best.exists():  # no eval set: the last model is the best
        save_best(engine.module, tokenizer, paths, {**info, "step": step, "eval": None})
    metrics = {
        "status": "complete", "steps": total, "world_size": dist.world_size, "accumulation_steps": accumulation,
        "steps_per_epoch": per_epoch, "train_pairs": train_pairs.n, "eval_pairs": eval_pairs.n if eval_pairs else 0,
        "pairs_unused_per_epoch": train_pairs.n - per_epoch * config.global_batch_size,
        "resumed_from": resumed_from, "best": read_best(paths) if dist.main else None,
        "first_loss": history[0]["loss"] if history else None, "final_loss": history[-1]["loss"] if history else None,
        "non_pad_tokens": run_tokens, "padding_share": 1 - run_tokens / run_padded if run_padded else 0.0,
        "train_seconds": round(train_seconds, 3), "tokens_per_s": run_tokens / train_seconds if train_seconds else 0.0,
        "wall_seconds": round(time.perf_counter() - started, 3), "precision": "bf16" if use_bf16 else "fp32",
        "input_format": input_format(tokenizer), "backbone": recorded, "config": config.to_dict(),
        "finished_at": datetime.now(timezone.utc).isoformat(),
    }
    if dist.main:
        tmp = paths.metrics.with_name(f".metrics.json.tmp-{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps(metrics, indent=2))
        os.replace(tmp, paths.metrics)
        reporter.record("end", **{k: v for k, v in metrics.items() if k != "config"})
        reporter.info(f"done: {total} steps, best eval accuracy "
                      f"{metrics['best']['accuracy'] if metrics['best'] else float('nan'):.4f}, "
                      f"{metrics['tokens_per_s']:,.0f} non-padding tokens/s")
    return metrics


def main(argv: list[str] | None = None) -> None:
    args, config = parse_args(argv)
    train(args, config)


if __name__ == "__main__":
    main()
