"""The embedder's backends: OpenVINO int8 (the CPU default) against PyTorch fp32 on the real MiniLM;
the converted-model cache (made once, then reused; written atomically, also by two processes at
once) on a tiny random sentence encoder; the PyTorch path still selectable, also from Dagster.

The MiniLM int8 model comes from the default cache (~/.cache/synpref, or $SYNPREF_CACHE): the
first run on a machine makes it (about 20-30 s, once); the cache tests use their own folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.embedder import Embedder, EmbedderConfig, pair_text, resolve_backend

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
TOPICS = ["baking bread", "fixing a bicycle", "learning french", "planting tomatoes", "saving money",
          "writing a cover letter", "sorting a list in Python", "the causes of the French revolution"]


def _texts() -> list[str]:
    """Three dozen pair texts: one to three turns, with and without attributes, a few words to
    past the 256-token cut, and the empty text."""
    texts = ["", "user: hi", pair_text([{"role": "user", "content": "Divide 45 by 9."}])]
    for i, topic in enumerate(TOPICS):
        ask = {"role": "user", "content": f"How do I get better at {topic}? I have tried for {i + 2} weeks."}
        answer = {"role": "assistant", "content": f"Start small: practise {topic} a little every day. " * (i % 3 + 1)}
        follow = {"role": "user", "content": f"Thanks! And what should I avoid when {topic}?"}
        attributes = {"task_category": "advice", "objectivity": "subjective", "controversiality": "low",
                      "desired_attributes": ["practical steps", "concise"]}
        texts += [pair_text([ask]), pair_text([ask, answer, follow]), pair_text([ask], attributes),
                  pair_text([ask, answer, follow], attributes)]
    texts.append(pair_text([{"role": "user", "content": "Summarise this: " + "The quick brown fox jumps. " * 120}]))
    return texts


TEXTS = _texts()


@pytest.fixture(scope="module")
def torch_minilm() -> Embedder:
    return Embedder(EmbedderConfig(backend="torch", threads=1, batch_size=16))


@pytest.fixture(scope="module")
def int8_minilm() -> Embedder:
    return Embedder(EmbedderConfig(threads=1, batch_size=16))  # auto, on the CPU


def make_tiny_sentence_encoder(folder: Path) -> Path:
    """A sentence-transformers folder: a 2-layer random BERT (hidden 32) with MiniLM's tokenizer,
    mean pooling, normalisation. Made in a second, converted in a few."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Normalize, Pooling, Transformer
    from transformers import AutoTokenizer, BertConfig, BertModel

    from models.embedder import _model_path

    tokenizer = AutoTokenizer.from_pretrained(_model_path(None))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=128, max_position_embeddings=512)).save_pretrained(folder / "hf")
    tokenizer.save_pretrained(folder / "hf")
    SentenceTransformer(modules=[Transformer(str(folder / "hf"), max_seq_length=256), Pooling(32, "mean"),
                                 Normalize()], device="cpu").save(str(folder / "st"))
    return folder / "st"


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory) -> Path:
    return make_tiny_sentence_encoder(tmp_path_factory.mktemp("tiny-encoder"))


def _entries(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "embedder").iterdir() if not p.name.startswith("."))


# ---------------------------------------------------------------- backends


def test_auto_means_openvino_on_the_cpu_and_torch_on_a_gpu():
    assert resolve_backend("auto", "cpu") == "openvino"
    assert resolve_backend("auto", "cuda") == resolve_backend("auto", "cuda:1") == "torch"
    assert resolve_backend("torch", "cpu") == "torch" and resolve_backend("openvino", "cpu") == "openvino"
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("onnx", "cpu")
    with pytest.raises(ValueError, match="backend"):
        EmbedderConfig(backend="onnx")
    with pytest.raises(ValueError, match="precision"):
        EmbedderConfig(precision="int4")


def test_int8_vectors_agree_with_the_torch_fp32_ones(int8_minilm, torch_minilm):
    assert (int8_minilm.backend, int8_minilm.precision) == ("openvino", "int8")
    assert (torch_minilm.backend, torch_minilm.precision, torch_minilm.encoder) == ("torch", "fp32", None)
    quantised, reference = int8_minilm.embed(TEXTS), torch_minilm.embed(TEXTS)
    assert quantised.dtype == np.float32 and quantised.shape == reference.shape == (len(TEXTS), 384)
    assert int8_minilm.dim == torch_minilm.dim == 384
    np.testing.assert_allclose(np.linalg.norm(quantised, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(quantised * reference, axis=1)
    # the empty text (CLS and SEP alone: no tokens to average the error over) agrees least; no
    # pair's text is empty (it has the request at least)
    assert TEXTS[0] == "" and cosine[0] >= 0.97
    assert cosine[1:].min() >= 0.99, (cosine[1:].min(), TEXTS[1 + int(cosine[1:].argmin())][:80])
    # a vector does not depend on the batch it was in (other texts, other padding)
    np.testing.assert_allclose(int8_minilm.embed(TEXTS[::-1])[::-1], quantised, atol=1e-4)
    np.testing.assert_allclose(int8_minilm.embed(TEXTS[5:6]), quantised[5:6], atol=1e-4)
    assert int8_minilm.embed([]).shape == (0, 384)


def test_the_torch_backend_is_sentence_transformers_as_before(torch_minilm):
    from sentence_transformers import SentenceTransformer

    from models.embedder import _model_path

    model = SentenceTransformer(_model_path(None), device="cpu")
    model.max_seq_length = 256
    expected = model.encode(TEXTS[:8], batch_size=16, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(torch_minilm.embed(TEXTS[:8]), expected, atol=1e-5)


# ---------------------------------------------------------------- the cache


def test_the_converted_model_is_made_once_and_reused(tiny_encoder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SYNPREF_CACHE", str(cache))
    config = EmbedderConfig(model=str(tiny_encoder), backend="openvino", precision="int8", threads=1)
    first = Embedder(config)
    assert first.exported and first.backend == "openvino"
    [entry] = _entries(cache)
    meta = json.loads((entry / "meta.json").read_text())
    assert meta["key"] == entry.name == first.cache_entry and meta["precision"] == first.precision
    assert {"model.xml", "model.bin", "meta.json"} <= {p.name for p in entry.iterdir()}
    stamps = {p.name: p.stat().st_mtime_ns for p in entry.iterdir()}

    second = Embedder(config)
    assert not second.exported and second.cache_entry == first.cache_entry
    assert {p.name: p.stat().st_mtime_ns for p in entry.iterdir()} == stamps  # nothing written again
    np.testing.assert_allclose(second.embed(TEXTS[:6]), first.embed(TEXTS[:6]), atol=1e-6)

    # another precision, or a changed model folder, is another entry
    assert Embedder(EmbedderConfig(model=str(tiny_encoder), backend="openvino", precision="fp32")).exported
    (tiny_encoder / "README.md").write_text("changed\n")
    assert Embedder(config).exported
    assert len(_entries(cache)) == 3
    assert not [p for p in (cache / "embedder").iterdir() if ".tmp-" in p.name]


def test_an_incomplete_entry_is_made_again(tiny_encoder, tmp_path, monkeypatch):
    """A folder under the entry's name without meta.json (written by hand, or a copy cut short) is
    never read: the load makes the entry anew in its place."""
    from models import embedder_openvino

    cache = tmp_path / "cache"
    monkeypatch.setenv("SYNPREF_CACHE", str(cache))
    key = embedder_openvino.cache_key(tiny_encoder, "fp32", 256)
    (cache / "embedder" / key).mkdir(parents=True)
    (cache / "embedder" / key / "model.xml").write_text("not a model")
    embedder = Embedder(EmbedderConfig(model=str(tiny_encoder), backend="openvino", precision="fp32"))
    assert embedder.exported and embedder.cache_entry == key
    assert embedder.embed(["a text"]).shape == (1, 32)


CHILD = """
import json, sys
import numpy as np
from models.embedder import Embedder, EmbedderConfig
embedder = Embedder(EmbedderConfig(model=sys.argv[1], backend="openvino", precision="fp32", threads=1))
vectors = embedder.embed(json.loads(sys.argv[2]))
print(json.dumps({"exported": embedder.exported, "entry": embedder.cache_entry, "sum": float(np.abs(vectors).sum())}))
"""


def test_two_processes_loading_at_once_make_one_entry_and_both_work(tiny_encoder, tmp_path):
    """fp32, the quicker export: the cache is the same for both precisions."""
    env = {**os.environ, "SYNPREF_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
           "HF_HUB_OFFLINE": "1"}
    texts = json.dumps(TEXTS[:6])
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(tiny_encoder), texts], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["exported"] for r in results) == [False, True]  # the other one waited, then read it
    assert results[0]["entry"] == results[1]["entry"]
    assert results[0]["sum"] == pytest.approx(results[1]["sum"], rel=1e-6)
    cache = tmp_path / "cache"
    assert len(_entries(cache)) == 1
    assert not [p for p in (cache / "embedder").iterdir() if ".tmp-" in p.name]


# ---------------------------------------------------------------- Dagster


def test_the_resource_takes_the_backend_as_typed_config():
    from dagster_project.resources import EmbedderResource

    resource = EmbedderResource(backend="torch", batch_size=8)
    embedder = resource.make()
    assert embedder.backend == "torch" and embedder.config.batch_size == 8 and embedder.encoder is None
    assert EmbedderResource().backend == "auto" and EmbedderResource().precision == "int8"
    with pytest.raises(Exception, match="backend"):
        EmbedderResource(backend="onnx")
