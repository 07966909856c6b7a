"""Demo preference data: seeded, realistic-looking pairs with known labels and planted defects.

``generate_demo`` writes one source file per supported shape, a benchmark prompt file, a
``sources.yaml`` that ingests them, and ``truth.parquet``: for every written record, the
defect planted in it (if any) and which side is really better. The pipeline's quarantine
and silver decisions can then be checked against ground truth.

Every fresh pair opens with a persona ("Hi, I'm Amara Okafor, a nurse from Porto.") that no
other record has, so pairs never collide by accident: the only duplicates are the planted
ones. Defects are planted at exact rates, spread evenly through each file. Files are made in
chunks, each seeded on its own (seed, file, first row), so chunks can be made in worker
processes and memory stays bounded; the same seed gives byte-identical files whatever the
number of workers.

Modules, in the order data flows: ``people`` and ``tasks`` (with ``problems``) write the
conversations, ``pairs`` turns them into pairs and plants content defects, ``records``
encodes each pair in its file's shape, ``chunks`` makes rows in seeded chunks (``defects``
decides which defect each row gets), ``sinks`` streams chunks to files and ``writer`` drives it
all. ``layout`` names the files, ``benchmark`` the prompts they must not contain.
"""

# CHUNK is deliberately not re-exported: patch synpref.demo.chunks.CHUNK, where it is read.
from synpref.demo.benchmark import benchmark_prompts
from synpref.demo.defects import DEFECTS
from synpref.demo.layout import BENCHMARK_FILE, FILES, SOURCES_FILE, TRUTH_FILE, FileSpec
from synpref.demo.writer import MIN_PAIRS, DemoSummary, generate_demo

__all__ = ["BENCHMARK_FILE", "DEFECTS", "FILES", "MIN_PAIRS", "SOURCES_FILE", "TRUTH_FILE", "DemoSummary",
           "FileSpec", "benchmark_prompts", "generate_demo"]
