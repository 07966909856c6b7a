"""Chunks: made independently (in any process, seeded on their own), yielded in order."""

from __future__ import annotations

import multiprocessing
import os
import random
import sys
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Iterator

import pyarrow as pa

from synpref.demo.benchmark import benchmark_prompts
from synpref.demo.defects import CLEAN, DUPLICATES, chunk_plan, file_rates
from synpref.demo.layout import FILES, FileSpec
from synpref.demo.pairs import Pair, PairMaker, whitespace_variant
from synpref.demo.people import Personas
from synpref.demo.records import encode
from synpref.demo.sinks import pack

CHUNK = 10_000  # records made, written and reported at a time
MAX_WORKERS = 8  # each holds about one chunk in memory
DUPLICATE_POOL = 512  # recent clean records a planted duplicate may repeat


TRUTH_SCHEMA = pa.schema([
    ("source", pa.string()), ("file", pa.string()), ("source_row", pa.int64()), ("task", pa.string()),
    ("defect", pa.string()), ("true_better", pa.string()), ("pair_key", pa.string()),
])


@dataclass
class TruthRows:
    """Truth of one chunk, column by column."""
    source_row: list[int] = field(default_factory=list)
    task: list[str] = field(default_factory=list)
    defect: list[str] = field(default_factory=list)
    true_better: list[str | None] = field(default_factory=list)
    pair_key: list[str] = field(default_factory=list)

    def add(self, row: int, pair: Pair, defect: str) -> None:
        self.source_row.append(row)
        self.task.append(pair.task)
        self.defect.append(defect)
        self.true_better.append(pair.true_better)
        self.pair_key.append(pair.pair_key)

    def table(self, spec: FileSpec) -> pa.Table:
        n = len(self.source_row)
        return pa.table({"source": [spec.source] * n, "file": [spec.file] * n, "source_row": self.source_row,
                         "task": self.task, "defect": self.defect, "true_better": self.true_better,
                         "pair_key": self.pair_key}, schema=TRUTH_SCHEMA)


@dataclass(frozen=True)
class ChunkJob:
    seed: int
    file_index: int  # into FILES
    offset: int  # position of the file's first record among all records
    start: int  # rows [start, end) of the file, 0-based
    end: int


@dataclass
class ChunkResult:
    job: ChunkJob
    payload: bytes | str | dict[str, list[str]]  # ready for the file's sink
    truth: TruthRows


class ChunkMaker:
    """The records of one chunk, keeping a pool of its clean records for planted duplicates."""

    def __init__(self, job: ChunkJob):
        self.job = job
        self.spec = FILES[job.file_index]
        # Seeded per chunk, so a chunk's bytes depend on nothing made in other chunks.
        self.rng = random.Random(f"synpref-demo/{job.seed}/{self.spec.file}/{job.start}")
        self.pairs = PairMaker(self.rng, Personas(job.seed), benchmark_prompts())
        self.pool: list[tuple[Pair, str | dict]] = []  # (pair, encoded record)

    def make(self) -> ChunkResult:
        job, items, truth = self.job, [], TruthRows()
        plan = chunk_plan(file_rates(self.spec), job.start, job.end, self.rng)
        for row, defect in enumerate(plan, start=job.start + 1):
            if defect in DUPLICATES:
                pair, item = self.duplicate(defect)
            else:
                pair, item = self.fresh(job.offset + row - 1, defect)
            items.append(item)
            truth.add(row, pair, defect)
        return ChunkResult(job, pack(items, self.spec.shape), truth)

    def fresh(self, position: int, defect: str) -> tuple[Pair, str | dict]:
        spec = self.spec
        pair = self.pairs.plant(self.pairs.pair(position, spec.max_user_turns, spec.shape == "conversational"),
                                defect)
        item = encode(pair, spec.shape, defect, self.rng)
        if defect in CLEAN:
            self.remember(pair, item)
        return pair, item

    def duplicate(self, defect: str) -> tuple[Pair, str | dict]:
        pair, item = self.rng.choice(self.pool)
        if defect == "duplicate":
            return pair, item
        return pair, encode(whitespace_variant(pair), self.spec.shape, defect, self.rng)

    def remember(self, pair: Pair, item: str | dict) -> None:
        if len(self.pool) < DUPLICATE_POOL:
            self.pool.append((pair, item))
        else:
            self.pool[int(self.rng.random() * DUPLICATE_POOL)] = (pair, item)


def make_chunk(job: ChunkJob) -> ChunkResult:
    return ChunkMaker(job).make()


def chunk_jobs(pairs: int, seed: int) -> list[ChunkJob]:
    jobs, offset = [], 0
    for file_index, n in enumerate(_split(pairs)):
        jobs += [ChunkJob(seed, file_index, offset, start, min(n, start + CHUNK))
                 for start in range(0, n, CHUNK)]
        offset += n
    return jobs


def _split(pairs: int) -> list[int]:
    sizes = [round(spec.share * pairs) for spec in FILES[:-1]]
    return sizes + [pairs - sum(sizes)]


def auto_workers(jobs: int) -> int:
    if jobs <= len(FILES):  # one chunk per file: starting processes would cost more than it saves
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cpus, jobs))


def made_chunks(jobs: list[ChunkJob], workers: int) -> Iterator[ChunkResult]:
    """Chunk results in job order; with several workers, made ahead in processes (a bounded window)."""
    if workers <= 1:
        yield from map(make_chunk, jobs)
        return
    # fork where it is safe and cheap (workers run pure Python); spawn elsewhere
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        ahead: deque = deque()
        for job in jobs:
            ahead.append(pool.submit(make_chunk, job))
            if len(ahead) > workers:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()
