"""Benchmark: LLM annotation throughput, vLLM offline against transformers' generate.

    .venv/bin/python benchmarks/annotation_throughput.py --task attributes --pairs 64 --hf-batch-sizes 1 8 32
    .venv/bin/python benchmarks/annotation_throughput.py --task judge --pairs 64 --hf-batch-sizes 1 8

Tasks: `attributes` (the attributes-v1 prompt, decoding forced to ATTRIBUTES_SCHEMA) and
`judge` (the judge-v1 prompt with 8 solved examples per pair, decoding forced to the two
choices). Both engines run the same tiny local model (models/tiny_llm.py) on the same prompts
over seeded demo pairs, greedy, with the same max_tokens, and both decode forced with
xgrammar: vLLM through its structured outputs, transformers through xgrammar's
LogitsProcessor for `generate` (compact JSON, as vLLM is configured).
Each engine runs in a fresh process with the same torch thread count: start-up (engine
build) is timed apart from the annotation, which follows one small warm-up batch.
vLLM goes through the pipeline's own path (`models.attributes.annotate`, checks included;
`models.judge.judge_pairs`);
transformers through batched `generate` (left padding), at each batch size asked for, checked
the same way; the fastest batch size is the baseline. Output tokens are the answers
re-tokenized, counted the same way for both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

WARMUP_PAIRS = 4


def demo_pairs(n: int) -> list[dict]:
    """n fresh pairs from the seeded demo generator, as silver pairs look."""
    from synpref.demo.benchmark import benchmark_prompts
    from synpref.demo.pairs import PairMaker
    from synpref.demo.people import Personas

    maker = PairMaker(random.Random(0), Personas(0), benchmark_prompts())
    return [_as_silver_pair(maker.pair(i, max_user_turns=3, with_system=True), i) for i in range(n)]


def _as_silver_pair(pair, i: int) -> dict:
    conversation = [{"role": "system", "content": pair.system}] if pair.system else []
    for user, assistant in pair.history:
        conversation += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    conversation.append({"role": "user", "content": pair.prompt})
    return {"pair_id": f"bench-{i:05d}", "conversation": conversation, "chosen": pair.chosen,
            "rejected": pair.rejected}


class AttributesTask:
    """The pair_attributes stage's request: attributes-v1, forced to ATTRIBUTES_SCHEMA."""

    name = "attributes"

    def __init__(self, model_dir: str, pairs: list[dict]):
        from models.annotator import default_config_path, load_config
        from models.attributes import load_prompt

        self.config = replace(load_config(default_config_path()), model=model_dir)
        self.prompt, self.pairs = load_prompt(self.config.prompt_version), pairs

    def messages(self) -> list[list[dict]]:
        return [self.prompt.render(p) for p in self.pairs]

    def annotate(self, annotator, pairs: list[dict]) -> list[str | None]:
        from models.attributes import annotate

        return [r.raw_output if r.status == "ok" else None for r in annotate(annotator, pairs, self.prompt,
                                                                             max_attempts=1)]

    def grammar(self, compiler):
        """ATTRIBUTES_SCHEMA compiled as vLLM compiles it (compact JSON: no free whitespace)."""
        from models.attributes import ATTRIBUTES_SCHEMA

        return compiler.compile_json_schema(json.dumps(ATTRIBUTES_SCHEMA), any_whitespace=False,
                                            separators=(",", ":"))

    def valid(self, text: str) -> bool:
        """The check annotate applies: JSON, and valid against the schema."""
        import jsonschema

        from models.attributes import ATTRIBUTES_SCHEMA

        try:
            return jsonschema.Draft202012Validator(ATTRIBUTES_SCHEMA).is_valid(json.loads(text, strict=False))
        except json.JSONDecodeError:
            return False


class JudgeTask:
    """The silver_labels stage's request: judge-v1 with 8 solved examples (other demo pairs)
    and their attributes, forced to the two choices; the repo panel's greedy judge."""

    name = "judge"
    ATTRIBUTES = {"task_category": "advice", "objectivity": "subjective", "controversiality": "low",
                  "desired_attributes": ["helpful", "accurate", "polite"],
                  "annotation_guideline": "Prefer the response that answers the request correctly and politely."}

    def __init__(self, model_dir: str, pairs: list[dict]):
        from models.judge import load_judge_prompt, load_panel

        panel = load_panel()
        greedy = next(j for j in panel.judges if j.annotator.sampling.temperature == 0)
        self.judge = replace(greedy, annotator=replace(greedy.annotator, model=model_dir))
        self.config, self.order_seed = self.judge.annotator, panel.order_seed
        self.prompt, self.pairs = load_judge_prompt(panel.prompt_version), pairs
        n = len(pairs)
        self.attributes = {p["pair_id"]: self.ATTRIBUTES for p in pairs}
        self.examples = {p["pair_id"]: [{**pairs[(i + k) % n], "attributes": self.ATTRIBUTES}
                                        for k in range(1, 1 + self.prompt.max_examples)]
                         for i, p in enumerate(pairs)}

    def messages(self) -> list[list[dict]]:
        from models.judge import chosen_position

        return [self.prompt.render(p, self.attributes[p["pair_id"]], self.examples[p["pair_id"]],
                                   chosen_position(p["pair_id"], self.order_seed)) for p in self.pairs]

    def annotate(self, annotator, pairs: list[dict]) -> list[str | None]:
        from models.judge import judge_pairs

        votes = judge_pairs(annotator, self.judge, self.prompt, pairs, self.order_seed, self.attributes,
                            self.examples)
        return [v.answers[0] if v.answers and not v.invalid else None for v in votes]

    def grammar(self, compiler):
        """The choice list as vLLM compiles it: an alternation of the literal strings."""
        return compiler.compile_grammar("root ::= " + " | ".join(json.dumps(c) for c in self.prompt.choices))

    def valid(self, text: str) -> bool:
        return text in self.prompt.choices


TASKS = {"attributes": AttributesTask, "judge": JudgeTask}


def run_vllm(task) -> tuple[float, list[str | None]]:
    """Seconds to annotate the pairs and the valid answers (None where failed), after start-up."""
    from models.annotator import load_annotator

    annotator = load_annotator(task.config)
    try:
        task.annotate(annotator, task.pairs[:WARMUP_PAIRS])
        start = time.perf_counter()
        answers = task.annotate(annotator, task.pairs)
        seconds = time.perf_counter() - start
    finally:
        annotator.close()
    return seconds, answers


def run_transformers(task, batch_size: int) -> tuple[float, list[str | None]]:
    import torch
    import xgrammar as xgr
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = task.config
    tokenizer = AutoTokenizer.from_pretrained(config.model, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(config.model, dtype=_torch_dtype(config.dtype)).eval()
    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=model.config.vocab_size))
    grammar = task.grammar(compiler)
    messages = task.messages()
    with torch.inference_mode():
        _generate(model, tokenizer, grammar, messages[:WARMUP_PAIRS], config.sampling.max_tokens)
        start = time.perf_counter()
        texts = [text for i in range(0, len(messages), batch_size)
                 for text in _generate(model, tokenizer, grammar, messages[i:i + batch_size],
                                       config.sampling.max_tokens)]
        seconds = time.perf_counter() - start
    return seconds, [text if task.valid(text) else None for text in texts]


def _torch_dtype(dtype: str):
    import torch

    return "auto" if dtype == "auto" else getattr(torch, dtype)


def _generate(model, tokenizer, grammar, messages: list[list[dict]], max_tokens: int) -> list[str]:
    from xgrammar.contrib.hf import LogitsProcessor

    batch = tokenizer.apply_chat_template(messages, add_generation_prompt=True, padding=True, return_tensors="pt",
                                          return_dict=True)
    out = model.generate(**batch, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                         logits_processor=[LogitsProcessor(grammar)])  # one processor per generate call
    return tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)


def child(task_name: str, engine: str, model_dir: str, n: int, batch_size: int) -> None:
    """Run one engine; print its figures as JSON (in its own process)."""
    task = TASKS[task_name](model_dir, demo_pairs(n))
    config = task.config
    if config.cpu_threads:
        import torch

        torch.set_num_threads(config.cpu_threads)
    start = time.perf_counter()
    seconds, answers = run_vllm(task) if engine == "vllm" else run_transformers(task, batch_size)
    total = time.perf_counter() - start
    print(json.dumps({"engine": engine, "seconds": seconds, "startup_s": total - seconds,
                      "valid": sum(a is not None for a in answers), "output_tokens": _tokens(model_dir, answers),
                      "prompt_tokens": _prompt_tokens(model_dir, task.messages()),
                      "threads": config.cpu_threads, "max_tokens": config.sampling.max_tokens, "answers": answers}))


def _prompt_tokens(model_dir: str, messages: list[list[dict]]) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return sum(len(tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=True,
                                                 return_dict=True)["input_ids"]) for m in messages)


def _tokens(model_dir: str, answers: list[str | None]) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return sum(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers if a)


def run_engine(task: str, engine: str, model_dir: Path, n: int, batch_size: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    out = subprocess.run([sys.executable, __file__, "--child", task, engine, str(model_dir), str(n), str(batch_size)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{engine} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def render(task: str, n: int, results: list[dict]) -> str:
    """The table; speeds are relative to the fastest transformers batch size."""
    base = min((r for r in results if r["engine"] == "transformers"), key=lambda r: r["seconds"])
    lines = [f"Task {task}: {n} pairs, tiny model, greedy, max_tokens {base['max_tokens']}, "
             f"{base['prompt_tokens'] / n:,.0f} prompt tokens per pair, torch threads {base['threads']}; "
             f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.", "",
             "| engine | start-up (s) | annotate (s) | pairs/s | output tokens/s | valid | speed vs transformers |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        label = ("vLLM offline (continuous batching)" if r["engine"] == "vllm"
                 else f"transformers generate (batch {r['batch_size']})")
        lines.append(f"| {label} | {r['startup_s']:.1f} | {r['seconds']:.1f} | {n / r['seconds']:.2f} | "
                     f"{r['output_tokens'] / r['seconds']:,.0f} | {r['valid']}/{n} | "
                     f"{base['seconds'] / r['seconds']:.2f}x |")
    same = sum(a == b for a, b in zip(results[0]["answers"], base["answers"]))
    lines += ["", f"Start-up: engine build plus a {WARMUP_PAIRS}-pair warm-up batch. Identical answers from "
                  f"vLLM and transformers (batch {base['batch_size']}): {same}/{n}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=sorted(TASKS), default="attributes")
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--hf-batch-sizes", type=int, nargs="+", default=[1, 8, 32],
                    help="transformers generate batch sizes, each run on its own")
    ap.add_argument("--work", type=Path, default=HERE / "_work" / "annotation")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        task, engine, model_dir, n, batch_size = args.child
        child(task, engine, model_dir, int(n), int(batch_size))
        return

    from models.tiny_llm import make_tiny_llm

    model_dir = make_tiny_llm(args.work / "tiny-llm")
    results = []
    for engine, batch_size in [("vllm", 0)] + [("transformers", b) for b in args.hf_batch_sizes]:
        print(f"{engine} {batch_size or ''}...", flush=True)
        results.append({**run_engine(args.task, engine, model_dir, args.pairs, batch_size),
                        "batch_size": batch_size})
        print(f"  {results[-1]['seconds']:.1f} s, {results[-1]['valid']}/{args.pairs} valid", flush=True)
    print("\n" + render(args.task, args.pairs, results))


if __name__ == "__main__":
    main()
