"""The generator: writes the chunks, benchmark prompts, sources.yaml and truth.parquet into a folder."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq

from synpref.demo.benchmark import benchmark_prompts
from synpref.demo.chunks import TRUTH_SCHEMA, auto_workers, chunk_jobs, made_chunks
from synpref.demo.defects import DEFECTS
from synpref.demo.layout import BENCHMARK_FILE, FILES, SOURCES_FILE, SOURCES_YAML, TRUTH_FILE
from synpref.demo.people import PERSONA_SPACE
from synpref.demo.sinks import open_sink

MIN_PAIRS = 10  # below this some source file would be empty


@dataclass
class DemoSummary:
    out_dir: Path
    sources_file: Path
    truth_file: Path
    records: int  # written across all files, defective ones included
    defects: dict[str, int]  # records per defect kind ("none" included)
    files: dict[str, int]  # records per file name


def _write_setup(out_dir: Path) -> Path:
    with (out_dir / BENCHMARK_FILE).open("w", encoding="utf-8") as f:
        f.writelines(json.dumps({"prompt": p}, ensure_ascii=False) + "\n" for p in benchmark_prompts())
    sources_file = out_dir / SOURCES_FILE
    sources_file.write_text(SOURCES_YAML, encoding="utf-8")
    return sources_file


def generate_demo(out_dir: Path, pairs: int = 2000, seed: int = 0,
                  progress: Callable[[int, int], None] | None = None,
                  workers: int | None = None) -> DemoSummary:
    """Write the demo sources, benchmark prompts, sources.yaml and truth.parquet into ``out_dir``.

    ``workers`` processes make chunks in parallel (default: one per CPU, up to MAX_WORKERS, for
    large runs); the files are byte-identical whatever the number of workers.
    """
    if not MIN_PAIRS <= pairs <= PERSONA_SPACE:
        raise ValueError(f"pairs must be between {MIN_PAIRS} and {PERSONA_SPACE:,}, got {pairs:,}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sources_file = _write_setup(out_dir)
    jobs = chunk_jobs(pairs, seed)
    defects: Counter[str] = Counter()
    files: Counter[str] = Counter()
    sink, sink_file = None, None
    with pq.ParquetWriter(out_dir / TRUTH_FILE, TRUTH_SCHEMA, compression="zstd") as truth_writer:
        try:
            for result in made_chunks(jobs, auto_workers(len(jobs)) if workers is None else workers):
                spec = FILES[result.job.file_index]
                if spec.file != sink_file:
                    if sink:
                        sink.close()
                    sink, sink_file = open_sink(out_dir / spec.file, spec.shape), spec.file
                sink.write(result.payload)
                truth_writer.write_table(result.truth.table(spec))
                defects.update(result.truth.defect)
                files[spec.file] += result.job.end - result.job.start
                if progress:
                    progress(files.total(), pairs)
        finally:
            if sink:
                sink.close()
    return DemoSummary(out_dir=out_dir, sources_file=sources_file, truth_file=out_dir / TRUTH_FILE,
                       records=files.total(), defects={k: defects[k] for k in DEFECTS}, files=dict(files))
