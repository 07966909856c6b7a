"""The embedder's CPU backend: the transformer of a sentence-transformers folder run by OpenVINO.

Only the transformer runs in OpenVINO. The tokenizer (max_seq_length, lower-casing), the
pooling and any later module (Dense, Normalize) are the folder's own sentence-transformers
modules, called as `SentenceTransformer.encode` calls them, so the vectors differ from the
PyTorch path's only by the transformer's arithmetic. Texts are batched by token count (not by
characters, as sentence-transformers does), which pads less; padding never changes a vector.

precision "int8": NNCF post-training quantisation (static int8 activations and weights, its
transformer preset, SmoothQuant at SMOOTH_QUANT_ALPHA) calibrated on
models/config/embedder_calibration.json. Int8 is kept only where it holds quality: every
calibration text's vector must have cosine >= AGREEMENT_FLOOR with the fp32 one, else the
feed-forward down-projections (whose inputs carry the outliers that int8 loses most on) stay
fp32 one more at a time from the first layer (one, two, three, all), and if none of these
passes the fp32 model is used. precision "fp32": the converted model as is.

The converted (and quantised) model is made once and cached in $SYNPREF_CACHE/embedder/<key>
(default ~/.cache/synpref), the key a hash of the model folder's files, the precision, the
calibration texts and the versions of the libraries that made it. A cache entry is written in a
temporary folder and renamed into place, under a file lock: concurrent loads make it once, and a
killed export leaves nothing that a later load would read.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import sys
import time
import uuid
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

RECIPE = 2  # bump when the conversion or quantisation changes, to leave old cache entries unused
CALIBRATION_FILE = Path(__file__).resolve().parent / "config" / "embedder_calibration.json"
AGREEMENT_FLOOR = 0.99  # min cosine, int8 vs fp32, over the calibration texts
# SmoothQuant's migration strength for MatMuls (NNCF's transformer default is 0.95): measured on
# the real pairs of ../shared/data, all-int8 MiniLM, cosine with fp32 min / p1 / mean: 0.95
# 0.9889 / 0.9933 / 0.9969, 0.85 0.9934 / 0.9955 / 0.9978, 0.7 0.9931 / 0.9959 / 0.9977,
# 0.6 0.9815 / 0.9904 / 0.9954
SMOOTH_QUANT_ALPHA = 0.85
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
LIBRARIES = ("openvino", "nncf", "torch", "transformers", "sentence-transformers")


def cache_root() -> Path:
    return Path(os.environ.get("SYNPREF_CACHE") or "~/.cache/synpref").expanduser() / "embedder"


def available() -> bool:
    """Whether openvino and nncf are installed (the `cpu` and `gpu` extras have them)."""
    from importlib.util import find_spec

    return find_spec("openvino") is not None and find_spec("nncf") is not None


def without_telemetry() -> None:
    """OpenVINO's model converter and NNCF send usage events to Google Analytics unless a consent
    file under ~/intel says no (package openvino-telemetry, imported by `import openvino`; importing
    NNCF writes a client id under ~/intel). With that module unimportable both use their no-op
    stubs. Must run before openvino and nncf are imported."""
    if "openvino_telemetry" not in sys.modules:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]


class OpenVINOEncoder:
    """Sentence embeddings of texts: `st`'s preprocessing, an OpenVINO transformer, `st`'s pooling."""

    def __init__(self, st, model, threads: int | None = None):
        """`model`: an OpenVINO model or the path of its .xml."""
        without_telemetry()
        import openvino as ov

        self.st = st
        # f32: on a CPU with AVX512_BF16 OpenVINO's default runs the float parts in bf16
        properties = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            properties["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = ov.Core().compile_model(model, "CPU", properties)
        self.request = self.compiled.create_infer_request()
        self.input_names = [port.get_any_name() for port in self.compiled.inputs]
        self.sort_by = "tokens"  # or "chars", as sentence-transformers (a benchmark's comparison)

    def encode(self, texts: list[str], batch_size: int, normalize: bool) -> np.ndarray:
        """One float32 row per text, in the order given. Batches hold texts of about the same
        number of tokens, longest first: sentence-transformers sorts by characters, which pads
        the real pairs' batches by a quarter to two thirds (code, URLs, other scripts)."""
        import torch

        order = np.argsort([-n for n in self.token_counts(texts)], kind="stable")
        out = np.empty((len(texts), 0), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = order[start:start + batch_size]
                vectors = self._batch([texts[i] for i in batch], normalize)
                if not out.shape[1]:
                    out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
                out[batch] = vectors
        return out

    def token_counts(self, texts: list[str], chunk: int = 4096) -> list[int]:
        """Tokens per text after truncation (the sort key only: characters where the model has
        no Hugging Face tokenizer; the batches themselves are `st.preprocess`'s)."""
        if self.sort_by != "tokens" or not callable(getattr(self.st, "tokenizer", None)):
            return [len(text) for text in texts]
        counts: list[int] = []
        for start in range(0, len(texts), chunk):
            ids = self.st.tokenizer(texts[start:start + chunk], truncation=True,
                                    max_length=self.st.max_seq_length)["input_ids"]
            counts += [len(row) for row in ids]
        return counts

    def _batch(self, texts: list[str], normalize: bool) -> np.ndarray:
        import torch

        features = self.st.preprocess(texts)
        hidden = self.request.infer({name: features[name].numpy() for name in self.input_names},
                                    share_inputs=True, share_outputs=True)[0]
        # hidden is the request's own output buffer, which the next batch overwrites: pooled before that
        features["token_embeddings"] = torch.from_numpy(hidden)
        for module in list(self.st)[1:]:
            features = module(features)
        vectors = features["sentence_embedding"]
        if normalize:
            vectors = torch.nn.functional.normalize(vectors, p=2, dim=1)
        return vectors.float().numpy()


def load(st, folder: str | Path, precision: str = "int8", threads: int | None = None,
         max_seq_length: int = 256) -> tuple[OpenVINOEncoder, dict, bool]:
    """The encoder of `st` (whose max_seq_length is set) from the cache, made there first if
    missing: (encoder, the entry's meta.json, whether this call made it)."""
    if precision not in ("int8", "fp32"):
        raise ValueError(f"precision must be int8 or fp32, not {precision!r}")
    entry, meta, exported = ensure_exported(st, folder, precision, max_seq_length)
    return OpenVINOEncoder(st, entry / "model.xml", threads), meta, exported


# ---------------------------------------------------------------- the cache


def cache_key(folder: str | Path, precision: str, max_seq_length: int) -> str:
    """A hash of what the cached model depends on: the folder's files (content, not dates), the
    precision, the calibration texts (int8), the recipe and the versions of the libraries."""
    digest = hashlib.sha256()
    folder = Path(folder)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0")
        with open(path, "rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    versions = {name: _version(name) for name in LIBRARIES}
    digest.update(json.dumps({"recipe": RECIPE, "precision": precision, "max_seq_length": max_seq_length,
                              "versions": versions}, sort_keys=True).encode())
    if precision == "int8":
        digest.update(CALIBRATION_FILE.read_bytes())
    return digest.hexdigest()[:24]


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def ensure_exported(st, folder: str | Path, precision: str, max_seq_length: int) -> tuple[Path, dict, bool]:
    """(the cache entry's folder, its meta.json, whether this call made it)."""
    from filelock import FileLock

    root = cache_root()
    key = cache_key(folder, precision, max_seq_length)
    entry = root / key
    if (entry / "meta.json").is_file():
        return entry, _read_meta(entry), False
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f".{key}.lock")):
        if (entry / "meta.json").is_file():  # another process made it while this one waited
            return entry, _read_meta(entry), False
        shutil.rmtree(entry, ignore_errors=True)  # not complete (no meta.json): never read
        staging = root / f".{key}.tmp-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            log.info("embedder: converting %s to OpenVINO (%s), once; cached in %s", folder, precision, entry)
            meta = export(st, staging, precision)
            meta.update(key=key, model_folder=str(folder), max_seq_length=max_seq_length,
                        versions={name: _version(name) for name in LIBRARIES}, recipe=RECIPE)
            (staging / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
            try:
                staging.rename(entry)
            except OSError:
                if not (entry / "meta.json").is_file():  # not a writer that skipped the lock
                    raise
                return entry, _read_meta(entry), False
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    log.info("embedder: %s model ready in %.1f s (%s)", meta["precision"], meta["export_seconds"], entry)
    return entry, meta, True


def _read_meta(entry: Path) -> dict:
    return json.loads((entry / "meta.json").read_text())


# ---------------------------------------------------------------- conversion and quantisation


def export(st, out: Path, precision: str) -> dict:
    """Convert `st`'s transformer to an OpenVINO model in `out`/model.xml, int8 where it holds
    quality; returns what was done (precision, the layers kept fp32, agreement, seconds)."""
    without_telemetry()
    import openvino as ov

    start = time.perf_counter()
    model = convert(st)
    meta: dict = {"precision": "fp32", "fp32_layers": [], "min_cosine_calibration": 1.0}
    if precision == "int8":
        meta.update(quantize(st, model))
        model = meta.pop("model")
    ov.save_model(model, out / "model.xml", compress_to_fp16=False)
    meta["export_seconds"] = round(time.perf_counter() - start, 1)
    return meta


def _traceable(model, names: list[str]):
    """The Hugging Face model called by keyword with `names`, its token embeddings out."""
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            given = dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return self.model(**{name: given[name] for name in names}).last_hidden_state

    return LastHiddenState().eval()


def convert(st):
    """The transformer of `st` as an OpenVINO model with dynamic batch and sequence axes."""
    import openvino as ov
    import torch

    transformer = st[0]
    hf_model = getattr(transformer, "auto_model", None) or transformer.model
    example = st.preprocess(["A short text.", "A somewhat longer text, to trace with a padded batch."])
    names = [name for name in INPUT_NAMES if name in example]
    if names[:2] != ["input_ids", "attention_mask"]:
        raise NotImplementedError(f"the OpenVINO embedder needs input_ids and attention_mask, not {list(example)}")
    with torch.no_grad(), _quiet():
        return ov.convert_model(_traceable(hf_model, names),
                                example_input={name: example[name] for name in names},
                                input=[(name, [-1, -1], ov.Type.i64) for name in names])


def down_projections(model) -> list[str]:
    """The feed-forward down-projections (MatMuls with a constant weight at least twice as wide
    in as out), in graph order: the first is the first layer's."""
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "MatMul":
            continue
        weight = op.input_value(1).get_node()
        while weight.get_type_name() == "Convert":
            weight = weight.input_value(0).get_node()
        if weight.get_type_name() != "Constant" or len(weight.get_output_shape(0)) != 2:
            continue
        rows, cols = weight.get_output_shape(0)
        inputs, outputs = (cols, rows) if op.get_attributes().get("transpose_b") else (rows, cols)
        if inputs >= 2 * outputs:
            names.append(op.get_friendly_name())
    return names


@contextlib.contextmanager
def _quiet():
    """A one-off conversion says so in this module's log, not in the tracer's warnings, the
    transformers logger or NNCF's log and progress bars (rich, on sys.stdout)."""
    from transformers.utils import logging as transformers_logging

    nncf_logger = logging.getLogger("nncf")
    levels = nncf_logger.level, transformers_logging.get_verbosity()
    nncf_logger.setLevel(logging.ERROR)
    transformers_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        nncf_logger.setLevel(levels[0])
        transformers_logging.set_verbosity(levels[1])


def calibration_texts() -> list[str]:
    return json.loads(CALIBRATION_FILE.read_text())["texts"]


def quantize(st, model) -> dict:
    """NNCF int8 of `model` with the fewest fp32 down-projections that keep every calibration
    text's vector within AGREEMENT_FLOOR of fp32; the fp32 model when none does."""
    import nncf
    from nncf.quantization.advanced_parameters import (AdvancedQuantizationParameters,
                                                       AdvancedSmoothQuantParameters)

    texts = calibration_texts()
    names = [port.get_any_name() for port in model.inputs]
    samples = []
    for text in texts:  # one text per sample: no padding in the activation ranges
        features = st.preprocess([text])
        samples.append({name: features[name].numpy() for name in names})
    reference = _vectors(st, model, texts)
    down = down_projections(model)
    kept_options = [down[:k] for k in (0, 1, 2, 3)] + ([down] if len(down) > 3 else [])
    advanced = AdvancedQuantizationParameters(smooth_quant_alphas=AdvancedSmoothQuantParameters(
        matmul=SMOOTH_QUANT_ALPHA))
    best = None
    for kept in dict.fromkeys(tuple(k) for k in kept_options):  # no down-projection found: all int8, once
        with _quiet():
            quantized = nncf.quantize(model.clone(), nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER,
                                      subset_size=len(samples), advanced_parameters=advanced,
                                      ignored_scope=nncf.IgnoredScope(names=list(kept), validate=False))
        agreement = float(np.min(np.sum(_vectors(st, quantized, texts) * reference, axis=1)))
        log.info("embedder: int8 with %d fp32 down-projection(s): min cosine %.4f on %d calibration texts",
                 len(kept), agreement, len(texts))
        best = agreement if best is None else max(best, agreement)
        if agreement >= AGREEMENT_FLOOR:
            return {"model": quantized, "precision": "int8", "fp32_layers": list(kept),
                    "min_cosine_calibration": round(agreement, 5)}
    log.warning("embedder: int8 does not hold quality (best min cosine %.4f < %.2f): fp32 model kept",
                best, AGREEMENT_FLOOR)
    return {"model": model, "precision": "fp32", "fp32_layers": [], "min_cosine_calibration": 1.0,
            "int8_rejected_min_cosine": round(best or 0.0, 5)}


def _vectors(st, model, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """Normalised vectors of `texts` through an OpenVINO model (for the agreement check)."""
    return OpenVINOEncoder(st, model).encode(texts, batch_size, normalize=True)
