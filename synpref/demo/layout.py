"""The files the demo writes: one source file per supported shape, and the sources.yaml that reads them."""

from __future__ import annotations

from dataclasses import dataclass

SOURCES_FILE = "sources.yaml"
BENCHMARK_FILE = "benchmark_prompts.jsonl"
TRUTH_FILE = "truth.parquet"


@dataclass(frozen=True)
class FileSpec:
    source: str
    file: str
    shape: str
    share: float  # of all records
    max_user_turns: int = 1
    malformed_kinds: tuple[str, ...] = ()  # split MALFORMED_RATE evenly between these


FILES = (
    FileSpec("demo_chat", "chat.jsonl.gz", "conversational", 0.40, max_user_turns=3,
             malformed_kinds=("malformed_json", "missing_field", "unknown_role")),
    FileSpec("demo_hh", "hh.jsonl", "hh_transcript", 0.20, max_user_turns=2,
             malformed_kinds=("malformed_json", "missing_field")),
    FileSpec("demo_labelled", "labelled.json", "labelled_outputs", 0.15),
    FileSpec("demo_prompts", "prompts.parquet", "prompt_chosen_rejected", 0.25),
)

SOURCES_YAML = f"""\
# Generated demo data (synpref.demo.generate_demo): synthetic preference pairs with
# planted defects; {TRUTH_FILE} beside this file records the true labels and defects.
sources:
  - {{name: demo_chat, path: chat.jsonl.gz, shape: conversational}}
  - {{name: demo_hh, path: hh.jsonl, shape: hh_transcript}}
  - {{name: demo_labelled, path: labelled.json, shape: labelled_outputs, columns: {{prompt: input}}}}
  - {{name: demo_prompts, path: prompts.parquet, shape: prompt_chosen_rejected, \
columns: {{prompt: question.text, chosen: chosen.answer, rejected: rejected.answer}}}}
decontamination:
  benchmark_prompts: [{BENCHMARK_FILE}]
  field: prompt
  ngram: 13
"""
