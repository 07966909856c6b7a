"""The LLM annotator: chat conversations in, decoding forced to a JSON schema or a choice list.

Two real backends behind one interface:
- ``vllm``: an in-process ``vllm.LLM`` engine (offline, batched) on a local model folder;
- ``openai``: any OpenAI-compatible server, e.g. ``vllm serve``, with vLLM's structured
  output extension (``structured_outputs`` in the request body), requests sent concurrently.

vLLM is imported only when an offline annotator is built, so the OpenAI client and the
config work without it.
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Callable, Protocol

import yaml

BACKENDS = ("vllm", "openai")
# Compact JSON (no free whitespace): without it a weak model can pad JSON with whitespace
# until it runs out of tokens. xgrammar is the backend that honours the setting.
STRUCTURED_OUTPUTS_ENGINE = {"backend": "xgrammar", "disable_any_whitespace": True}

log = logging.getLogger(__name__)


@dataclass
class SamplingConfig:
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    # Per-request seed. None sends none (the server's own seeding): a CPU `vllm serve` crashes
    # on a seeded request whose long prompt is prefilled over several steps.
    seed: int | None = 0


@dataclass
class AnnotatorConfig:
    backend: str = "vllm"  # "vllm" | "openai"
    model: str = ""  # local model folder for vllm; the served model name for openai
    base_url: str | None = None  # openai only, e.g. http://127.0.0.1:8000/v1
    api_key: str = "EMPTY"
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    prompt_version: str = "attributes-v1"  # the attribute prompt this config is meant for
    # Engine settings (vllm backend); for openai they are the server's business.
    max_model_len: int = 2048
    kv_cache_gib: int = 1
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    dtype: str = "auto"
    enforce_eager: bool = True
    cpu_threads: int | None = None  # vllm on a CPU: torch threads for the in-process engine; None: torch's choice
    # Client settings (openai backend).
    request_timeout_s: float = 120
    concurrency: int = 8


class RequestRejected(ValueError):
    """The backend refused a request as invalid (e.g. a prompt longer than max_model_len),
    as opposed to failing to serve it: retrying the same batch cannot succeed."""


class Annotator(Protocol):
    def generate_json(self, conversations: list[list[dict]], schema: dict) -> list[str]:
        """One raw text per conversation, decoding forced to the JSON schema. Raises
        RequestRejected where the backend refuses one of the requests as invalid."""

    def generate_choice(self, conversations: list[list[dict]], choices: list[str], n: int = 1) -> list[list[str]]:
        """n samples per conversation, each forced to one of the choices."""

    def with_sampling(self, sampling: SamplingConfig) -> "Annotator":
        """The same engine or client, sampling with other settings."""

    def close(self) -> None:
        """Release the engine or client."""


class VLLMOfflineAnnotator:
    """vLLM in this process: one batched ``llm.chat`` call per request list."""

    def __init__(self, config: AnnotatorConfig):
        if config.data_parallel_size > 1:
            raise ValueError("the offline vllm backend runs one engine replica; for data parallelism serve the "
                             "model with `vllm serve --data-parallel-size N` and use the openai backend")
        # Set here, not at import: they must be in place before the engine starts, and a
        # caller's own settings win.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(config.kv_cache_gib))
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        import torch

        # torch's thread count is per process, and vLLM's CPU worker replaces
        # torch.set_num_threads with a no-op for good: both are given back on close, so the
        # steps a worker runs after this one (scoring, embedding) get the threads they had
        self._threads_before = torch.get_num_threads()
        if config.cpu_threads:
            _set_torch_threads(config.cpu_threads)
        from vllm import LLM
        from vllm.platforms import current_platform

        self.config = config
        # A per-request seed gives each request its own torch generator. On the CPU, vLLM
        # cannot rewind one when a long prompt's prefill is split over steps ("CPU Generator
        # does not use offset"), so there sampling is seeded once, by the engine seed below.
        self._per_request_seed = not current_platform.is_cpu()
        self._llm = LLM(
            model=config.model,
            max_model_len=config.max_model_len,
            tensor_parallel_size=config.tensor_parallel_size,
            dtype=config.dtype,
            enforce_eager=config.enforce_eager,
            seed=config.sampling.seed,
            structured_outputs_config=STRUCTURED_OUTPUTS_ENGINE,
        )

    def generate_json(self, conversations: list[list[dict]], schema: dict) -> list[str]:
        outputs = self._chat(conversations, n=1, json=schema)
        return [out.outputs[0].text for out in outputs]

    def generate_choice(self, conversations: list[list[dict]], choices: list[str], n: int = 1) -> list[list[str]]:
        outputs = self._chat(conversations, n=_decoded_samples(self.config.sampling, n), choice=list(choices))
        return [_as_n_samples([sample.text for sample in out.outputs], n) for out in outputs]

    def with_sampling(self, sampling: SamplingConfig) -> "VLLMOfflineAnnotator":
        """A view on this engine that samples with other settings (closing the engine is the
        owner's business). On a CPU the engine's seed stays the owner's: requests carry none."""
        view = copy.copy(self)
        view.config = replace(self.config, sampling=sampling)
        return view

    def close(self) -> None:
        if self._llm is not None:
            self._llm.llm_engine.engine_core.shutdown()
            self._llm = None
            import torch

            torch.set_num_threads = torch._C.set_num_threads  # what torch exports; vLLM patched over it
            torch.set_num_threads(self._threads_before)

    def _chat(self, conversations: list[list[dict]], n: int, **constraint):
        from vllm import SamplingParams
        from vllm.exceptions import VLLMClientError
        from vllm.sampling_params import StructuredOutputsParams

        s = self.config.sampling
        params = SamplingParams(n=n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens,
                                seed=s.seed if self._per_request_seed else None,
                                structured_outputs=StructuredOutputsParams(**constraint))
        try:
            return self._llm.chat(conversations, params, use_tqdm=False)
        except VLLMClientError as exc:  # one bad request fails the whole batch (vLLM aborts the rest)
            raise RequestRejected(str(exc)) from exc


class OpenAICompatibleAnnotator:
    """An OpenAI-compatible server (``vllm serve``): one chat completion per conversation,
    `concurrency` in flight, so the server can batch them."""

    def __init__(self, config: AnnotatorConfig):
        from openai import OpenAI

        if not config.base_url:
            raise ValueError("the openai backend needs base_url (e.g. http://127.0.0.1:8000/v1)")
        self.config = config
        self._client = OpenAI(base_url=config.base_url, api_key=config.api_key, timeout=config.request_timeout_s)

    def generate_json(self, conversations: list[list[dict]], schema: dict) -> list[str]:
        completions = self._complete_all(conversations, n=1, structured_outputs={"json": schema})
        return [c.choices[0].message.content for c in completions]

    def generate_choice(self, conversations: list[list[dict]], choices: list[str], n: int = 1) -> list[list[str]]:
        completions = self._complete_all(conversations, n=_decoded_samples(self.config.sampling, n),
                                         structured_outputs={"choice": list(choices)})
        return [_as_n_samples([c.message.content for c in sorted(completion.choices, key=lambda c: c.index)], n)
                for completion in completions]

    def with_sampling(self, sampling: SamplingConfig) -> "OpenAICompatibleAnnotator":
        view = copy.copy(self)
        view.config = replace(self.config, sampling=sampling)
        return view

    def close(self) -> None:
        self._client.close()

    def _complete_all(self, conversations: list[list[dict]], n: int, structured_outputs: dict):
        """Completions in input order; the first failed request fails the whole call."""
        def complete(messages):
            return self._complete(messages, n, structured_outputs)

        with ThreadPoolExecutor(max_workers=max(1, self.config.concurrency)) as pool:
            return list(pool.map(complete, conversations))

    def _complete(self, messages: list[dict], n: int, structured_outputs: dict):
        from openai import BadRequestError

        s = self.config.sampling
        try:
            return self._client.chat.completions.create(
                model=self.config.model, messages=messages, n=n, temperature=s.temperature, top_p=s.top_p,
                max_tokens=s.max_tokens, **({"seed": s.seed} if s.seed is not None else {}),
                extra_body={"structured_outputs": structured_outputs},  # vLLM's extension to the OpenAI API
            )
        except BadRequestError as exc:
            raise RequestRejected(str(exc)) from exc


def engine_key(config: AnnotatorConfig) -> str:
    """What decides the engine (or client): everything but the sampling settings."""
    return repr(replace(config, sampling=None))


class SharedEngines:
    """One engine per engine key: a panel's judges on one model, differing only in how they
    sample (or in prompt), share it rather than each loading the model again."""

    def __init__(self):
        self._engines: dict[str, Annotator] = {}

    def get(self, config: AnnotatorConfig, make: Callable[[], "Annotator"]) -> "Annotator":
        """The engine for `config` (made by `make` the first time), sampling as `config` says."""
        key = engine_key(config)
        if key not in self._engines:
            self._engines[key] = make()
            return self._engines[key]
        return self._engines[key].with_sampling(config.sampling)

    def close(self) -> None:
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()

    def lend(self, config: AnnotatorConfig, make: Callable[[], "Annotator"]) -> "Annotator":
        """As get(), for a caller that closes what it is given: its close() leaves the engine
        here, for the next step (the pool's owner closes it)."""
        return _Lent(self.get(config, make))

    def __enter__(self) -> "SharedEngines":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Lent:
    """An engine of a pool, lent: everything but close() goes to the engine."""

    def __init__(self, engine: "Annotator"):
        self._engine = engine

    def __getattr__(self, name: str):
        return getattr(self._engine, name)

    def close(self) -> None:
        pass


# The engines of this process, kept from one step to the next: under the in-process executor a
# pool-wide asset's shards run one after another, and loading the model once per shard cost each
# shard an engine start (seconds on a CPU, more on a GPU). The asset's last step closes them
# (vLLM's CPU worker holds torch's threads while it lives), and so does the process's exit.
PROCESS_ENGINES = SharedEngines()


@atexit.register
def _close_process_engines() -> None:
    try:
        PROCESS_ENGINES.close()
    except Exception:  # vLLM's own exit handlers may have stopped the engine first
        log.debug("closing the process's engines at exit", exc_info=True)


def generate_isolating_rejects(generate: Callable[[list], list], conversations: list) -> list:
    """`generate(conversations)`'s outputs, None where it failed. A batch the backend rejects
    as invalid is split in halves until the rejection is pinned to single conversations, so
    one bad prompt (e.g. too long) does not fail its neighbours; any other failure (server
    down, engine dead) fails the whole batch without more calls."""
    try:
        outputs = generate(conversations)
    except RequestRejected:
        if len(conversations) == 1:
            log.warning("annotator rejected a conversation", exc_info=True)
            return [None]
        half = len(conversations) // 2
        return (generate_isolating_rejects(generate, conversations[:half])
                + generate_isolating_rejects(generate, conversations[half:]))
    except Exception:
        log.warning("annotator failed on a batch of %d", len(conversations), exc_info=True)
        return [None] * len(conversations)
    if len(outputs) != len(conversations):
        log.warning("annotator returned %d outputs for %d conversations", len(outputs), len(conversations))
        return [None] * len(conversations)
    return outputs


def _set_torch_threads(threads: int) -> None:
    """Before the engine is built: its CPU kernels keep the thread count they were made with.
    In-process, vLLM does not pin threads as it does for its worker processes, and on a busy
    machine every multi-threaded kernel call can wait for a descheduled thread (on a shared
    2-core machine a tiny model ran 8x slower with 2 threads than with 1). torch's own
    setter: an engine already open in this process has patched torch.set_num_threads."""
    import torch

    torch._C.set_num_threads(threads)


def _decoded_samples(sampling: SamplingConfig, n: int) -> int:
    """Samples to decode for n: greedy decoding gives n identical ones (and vLLM refuses n > 1
    when greedy), so decode one and repeat it."""
    return 1 if sampling.temperature == 0 else n


def _as_n_samples(samples: list[str], n: int) -> list[str]:
    return samples * n if len(samples) == 1 else samples


def load_annotator(config: AnnotatorConfig) -> Annotator:
    if not config.model:
        raise ValueError("annotator config has no model")
    if config.backend == "vllm":
        return VLLMOfflineAnnotator(config)
    if config.backend == "openai":
        return OpenAICompatibleAnnotator(config)
    raise ValueError(f"unknown annotator backend {config.backend!r}; known: {', '.join(BACKENDS)}")


def default_config_path() -> Path:
    return Path(__file__).resolve().parent / "config" / "annotator.yaml"


def load_config(path: str | os.PathLike) -> AnnotatorConfig:
    """The annotator config from YAML (keys as in AnnotatorConfig; `sampling` a mapping)."""
    return config_from_dict(yaml.safe_load(Path(path).read_text()) or {}, str(path))


def config_from_dict(doc: dict, where: str, base: AnnotatorConfig | None = None) -> AnnotatorConfig:
    """An AnnotatorConfig from a mapping; with `base`, the mapping overrides it (sampling key by key)."""
    doc = dict(doc)
    _check_keys(doc, AnnotatorConfig, where)
    sampling = doc.pop("sampling", None) or {}
    _check_keys(sampling, SamplingConfig, f"{where}: sampling")
    if base is None:
        return AnnotatorConfig(**doc, sampling=SamplingConfig(**sampling))
    return replace(base, **doc, sampling=replace(base.sampling, **sampling))


def _check_keys(doc: dict, cls: type, where: str) -> None:
    unknown = set(doc) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
