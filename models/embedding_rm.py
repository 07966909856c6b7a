"""An embedding reward model: a Bradley-Terry head on frozen sentence embeddings.

After Sun et al. 2025, "Reusing Embeddings: Reproducible Reward Model Research in LLM Alignment
without GPUs" (arXiv 2502.04357): each (conversation, response) is embedded once by a frozen
sentence encoder (the bundled MiniLM by default) and cached by the text's hash, and the reward is
a small head on that vector, trained with the BT loss -log sigmoid(r(x, y_w) - r(x, y_l)).
A head trains in about a second on a CPU, which is what makes K folds x M members affordable.

Heads: `linear` (r = w . e, the BT loss on the difference is a logistic regression without
intercept) and `mlp` (one hidden layer, trained full-batch with Adam). A trained model is a
folder with `embedding_rm.json` and `head.npz`; `EmbeddingScorer` scores pairs from it with the
same interface as models/scorer.py's Scorer. No Dagster here.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

INFO = "embedding_rm.json"
WEIGHTS = "head.npz"
HEADS = ("linear", "mlp")
BACKBONE = "embedding"  # the TrainConfig.backbone value that selects this model


@dataclass(frozen=True)
class EmbeddingRMConfig:
    head: str = "linear"  # linear | mlp
    l2: float = 0.03  # the linear head's inverse regularisation strength (sklearn's C)
    hidden: int = 64  # mlp: hidden units
    epochs: int = 300  # mlp: full-batch Adam steps
    learning_rate: float = 1e-2  # mlp
    weight_decay: float = 1e-3  # mlp
    context_chars: int = 700  # the conversation's last characters kept before the response
    embedder: str | None = None  # a local sentence-transformers folder; None: the bundled MiniLM
    max_seq_length: int = 256
    seed: int = 0

    def __post_init__(self):
        if self.head not in HEADS:
            raise ValueError(f"embedding RM head must be one of {HEADS}, not {self.head!r}")


def rm_text(conversation: list[dict], response: str, context_chars: int = 700) -> str:
    """What is embedded for (x, y): the conversation's last `context_chars` characters, then the response."""
    history = "\n".join(f"{m.get('role') or 'user'}: {m.get('content') or ''}" for m in conversation or [])
    return f"{history[-context_chars:]}\nassistant: {response}"


def text_key(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


_ENCODERS: dict[tuple, object] = {}  # one loaded encoder per process and settings, shared by every cache


class EmbeddingCache:
    """Text vectors by the text's MD5, one folder per encoder, in Parquet parts that are only
    ever added (each written under a temporary name, then renamed), so concurrent writers and
    a killed run lose nothing but the vectors of that call. A lookup reads only the vectors it
    asks for (a DuckDB semi-join over the parts), so memory follows the request, not the cache."""

    def __init__(self, folder: str | Path | None, embedder: str | None = None, max_seq_length: int = 256,
                 batch_size: int = 64, log: Callable[[str], None] = lambda msg: None):
        from models.embedder import resolve_backend

        self.model, self.max_seq_length, self.batch_size, self.log = embedder, max_seq_length, batch_size, log
        model_id = "minilm" if embedder is None else Path(embedder).name
        # the embedder's default backend (OpenVINO int8 on the CPU) makes vectors a little unlike
        # PyTorch's: a folder of their own (PyTorch's keep the folder name they always had)
        self.backend = resolve_backend("auto", "cpu")
        variant = "" if self.backend == "torch" else f"-{self.backend}-int8"
        self.folder = Path(folder) / f"{model_id}-{max_seq_length}{variant}" if folder is not None else None
        self.embedded = 0  # texts this cache had to embed (the rest were cached)

    def _read(self, keys: list[str]) -> dict[str, np.ndarray]:
        """The cached vectors of `keys` (those that are cached)."""
        if self.folder is None or not keys or not any(self.folder.glob("*.parquet")):
            return {}
        import duckdb
        import pyarrow as pa
        import pyarrow.compute as pc

        with duckdb.connect() as con:
            con.register("wanted", pa.table({"key": pa.array(keys, pa.string())}))
            # two processes may embed one text at once, in different batches, so with slightly different
            # vectors: the earliest part's is the text's vector, for every reader alike
            table = con.sql("select key, arg_min(vector, filename) as vector "
                            "from read_parquet($parts, filename = true) semi join wanted using (key) group by key",
                            params={"parts": str(self.folder / "*.parquet")}).to_arrow_table()
        if not table.num_rows:
            return {}
        flat = pc.list_flatten(table["vector"]).to_numpy().astype(np.float32, copy=False)
        return dict(zip(table["key"].to_pylist(), flat.reshape(table.num_rows, -1)))

    def _embed(self, texts: list[str]) -> np.ndarray:
        settings = (self.model, self.max_seq_length, self.batch_size, self.backend)
        if settings not in _ENCODERS:
            from models.embedder import Embedder, EmbedderConfig

            _ENCODERS[settings] = Embedder(EmbedderConfig(model=self.model, batch_size=self.batch_size,
                                                          max_seq_length=self.max_seq_length, backend=self.backend))
        encoder = _ENCODERS[settings]
        out, step, start = [], max(self.batch_size * 8, 256), time.perf_counter()
        for i in range(0, len(texts), step):
            out.append(encoder.embed(texts[i:i + step]))
            done = min(i + step, len(texts))
            self.log(f"embedded {done:,} of {len(texts):,} texts ({done / (time.perf_counter() - start):.0f}/s)")
        return np.concatenate(out)

    def get(self, texts: list[str]) -> np.ndarray:
        """One float32 row per text (L2-normalised), embedding only the texts not cached yet."""
        if not texts:
            return np.empty((0, 0), dtype=np.float32)
        keys = [text_key(t) for t in texts]
        unique = list(dict.fromkeys(keys))
        found = self._read(unique)
        missing = [k for k in unique if k not in found]
        if missing:
            first: dict[str, str] = {}
            for k, t in zip(keys, texts):
                first.setdefault(k, t)
            vectors = self._embed([first[k] for k in missing])
            self.embedded += len(missing)
            self._write(missing, vectors)
            # read back: where another process cached one of these first, its vector is the one
            found.update(zip(missing, vectors))
            found.update(self._read(missing))
        return np.stack([found[k] for k in keys])

    def _write(self, keys: list[str], vectors: np.ndarray) -> None:
        if self.folder is None:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"  # sorts by creation time
        tmp = self.folder / f".{name}.tmp"
        dim = vectors.shape[1]
        table = pa.table({"key": pa.array(keys, pa.string()),
                          "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()),
                                                                      dim)})
        pq.write_table(table, tmp, compression="zstd")
        tmp.rename(self.folder / name)


@dataclass
class PairEmbeddings:
    chosen: np.ndarray
    rejected: np.ndarray


def embed_pairs(cache: EmbeddingCache, conversations: list, chosen: list[str], rejected: list[str],
                context_chars: int = 700) -> PairEmbeddings:
    texts = [rm_text(c, y, context_chars) for c, y in zip(conversations, chosen)]
    texts += [rm_text(c, y, context_chars) for c, y in zip(conversations, rejected)]
    vectors = cache.get(texts)
    return PairEmbeddings(vectors[:len(chosen)], vectors[len(chosen):])


@dataclass
class EmbeddingRewardModel:
    """The head's parameters; rewards(E) is one reward per embedding row."""

    config: EmbeddingRMConfig
    params: dict[str, np.ndarray] = field(default_factory=dict)

    def rewards(self, e: np.ndarray) -> np.ndarray:
        e = np.asarray(e, dtype=np.float64)
        if self.config.head == "linear":
            return e @ self.params["w"]
        hidden = np.tanh(e @ self.params["w1"] + self.params["b1"])
        return hidden @ self.params["w2"]

    def p_chosen(self, pairs: PairEmbeddings) -> np.ndarray:
        return sigmoid(self.rewards(pairs.chosen) - self.rewards(pairs.rejected))

    def save(self, folder: Path, extra: dict | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / WEIGHTS, **self.params)
        (folder / INFO).write_text(json.dumps({"kind": "embedding_rm", "config": asdict(self.config), **(extra or {})},
                                              indent=2, sort_keys=True, default=str))

    @classmethod
    def load(cls, folder: str | Path) -> "EmbeddingRewardModel":
        folder = Path(folder)
        info = json.loads((folder / INFO).read_text())
        with np.load(folder / WEIGHTS) as weights:
            params = {k: weights[k] for k in weights.files}
        return cls(EmbeddingRMConfig(**info["config"]), params)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def fit(pairs: PairEmbeddings, config: EmbeddingRMConfig) -> EmbeddingRewardModel:
    """Train the head with the BT loss on (chosen, rejected) embedding pairs."""
    if len(pairs.chosen) == 0:
        raise ValueError("no training pairs for the embedding reward model")
    if config.head == "linear":
        from sklearn.linear_model import LogisticRegression

        d = (pairs.chosen - pairs.rejected).astype(np.float64)
        # both orientations: the BT likelihood is symmetric, so no intercept and balanced classes
        x, y = np.concatenate([d, -d]), np.concatenate([np.ones(len(d)), np.zeros(len(d))])
        model = LogisticRegression(C=config.l2, fit_intercept=False, max_iter=2000).fit(x, y)
        return EmbeddingRewardModel(config, {"w": model.coef_[0].astype(np.float64)})
    return _fit_mlp(pairs, config)


def _fit_mlp(pairs: PairEmbeddings, config: EmbeddingRMConfig) -> EmbeddingRewardModel:
    import torch

    generator = torch.Generator().manual_seed(config.seed)
    dim = pairs.chosen.shape[1]
    w1 = torch.nn.Parameter(torch.randn(dim, config.hidden, generator=generator, dtype=torch.float64) / dim ** 0.5)
    b1 = torch.nn.Parameter(torch.zeros(config.hidden, dtype=torch.float64))
    w2 = torch.nn.Parameter(torch.randn(config.hidden, generator=generator, dtype=torch.float64) / config.hidden ** 0.5)
    chosen, rejected = (torch.as_tensor(a, dtype=torch.float64) for a in (pairs.chosen, pairs.rejected))
    optimizer = torch.optim.Adam([w1, b1, w2], lr=config.learning_rate, weight_decay=config.weight_decay)

    def reward(e):
        return torch.tanh(e @ w1 + b1) @ w2

    for _ in range(config.epochs):
        optimizer.zero_grad()
        loss = -torch.nn.functional.logsigmoid(reward(chosen) - reward(rejected)).mean()
        loss.backward()
        optimizer.step()
    return EmbeddingRewardModel(config, {k: v.detach().numpy().copy() for k, v in
                                         (("w1", w1), ("b1", b1), ("w2", w2))})


def bt_loss(p: np.ndarray) -> float:
    return float(-np.log(np.clip(p, 1e-12, 1.0)).mean()) if len(p) else float("nan")


def is_embedding_rm(folder: str | Path) -> bool:
    return (Path(folder) / INFO).exists()


@dataclass
class ScoreStats:  # what rm_predictions reads from a scorer (no tokens here)
    sequences: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    batches: int = 0


class EmbeddingScorer:
    """Scores pairs with an embedding reward model folder; same interface as models.scorer.Scorer."""

    def __init__(self, model_dir: str | Path, cache_dir: str | Path | None = None,
                 log: Callable[[str], None] = lambda msg: None):
        self.model_dir = Path(model_dir)
        self.model = EmbeddingRewardModel.load(self.model_dir)
        c = self.model.config
        self.cache = EmbeddingCache(cache_dir, c.embedder, c.max_seq_length, log=log)
        self.stats = ScoreStats()

    def score(self, conversations: list[list[dict]], chosen: list[str], rejected: list[str],
              bucketed: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not chosen:
            empty = np.empty(0)
            return empty, empty, empty
        pairs = embed_pairs(self.cache, conversations, chosen, rejected, self.model.config.context_chars)
        rc, rr = self.model.rewards(pairs.chosen), self.model.rewards(pairs.rejected)
        self.stats.sequences += 2 * len(chosen)
        self.stats.batches += 1
        return rc, rr, sigmoid(rc - rr)


def lake_cache_dir(model_dir: str | Path) -> Path | None:
    """The lake's embedding cache for a model folder under <lake>/models/rm/<name>/<version>/...:
    <lake>/models/embedding_cache; None for a folder from elsewhere (then nothing is cached)."""
    parts = Path(model_dir).resolve().parts
    for i in range(len(parts) - 1, 0, -1):
        if parts[i - 1:i + 1] == ("models", "rm"):
            return Path(*parts[:i]) / "embedding_cache"
    return None


def _read_pairs(path: Path) -> dict:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=["pair_id", "conversation", "chosen", "rejected"]).to_pydict()


def train_version(folder: str | Path, config: EmbeddingRMConfig, log: Callable[[str], None] = print) -> dict:
    """Train on <folder>/data/train.parquet, pick nothing (one fit), evaluate on data/eval.parquet,
    and write best/, train_log.jsonl and metrics.json (last: it marks the version complete),
    the layout models/train_rm.py gives a DeepSpeed run."""
    folder = Path(folder)
    started = time.perf_counter()
    cache = EmbeddingCache(lake_cache_dir(folder), config.embedder, config.max_seq_length, log=log)
    train = _read_pairs(folder / "data" / "train.parquet")
    train_pairs = embed_pairs(cache, train["conversation"], train["chosen"], train["rejected"], config.context_chars)
    embedded = time.perf_counter()
    model = fit(train_pairs, config)
    fitted = time.perf_counter()
    p_train = model.p_chosen(train_pairs)
    result = {"step": 1, "train_accuracy": float((p_train > 0.5).mean()), "loss": bt_loss(p_train)}
    eval_file = folder / "data" / "eval.parquet"
    if eval_file.exists():
        held = _read_pairs(eval_file)
        p_eval = model.p_chosen(embed_pairs(cache, held["conversation"], held["chosen"], held["rejected"],
                                            config.context_chars)) if held["pair_id"] else np.empty(0)
        result.update(accuracy=float((p_eval > 0.5).mean()) if len(p_eval) else float("nan"),
                      eval_loss=bt_loss(p_eval), pairs=len(p_eval),
                      mean_margin=float(np.mean(np.abs(np.log(p_eval / (1 - p_eval))))) if len(p_eval) else 0.0)
    model.save(folder / "best", {"step": 1, "eval": result})
    log(f"embedding RM ({config.head} head): {len(train['pair_id']):,} pairs, train accuracy "
        f"{result['train_accuracy']:.3f}, eval accuracy {result.get('accuracy', float('nan')):.3f}; "
        f"{cache.embedded:,} texts embedded, fit in {fitted - embedded:.2f}s")
    metrics = {"status": "complete", "steps": 1, "world_size": 1, "train_pairs": len(train["pair_id"]),
               "eval_pairs": result.get("pairs", 0), "best": result, "first_loss": result["loss"],
               "final_loss": result["loss"], "texts_embedded": cache.embedded,
               "embed_seconds": round(embedded - started, 3), "train_seconds": round(fitted - embedded, 3),
               "wall_seconds": round(time.perf_counter() - started, 3), "backbone": BACKBONE,
               "head": asdict(config), "tokens_per_s": 0.0, "padding_share": 0.0}
    (folder / "train_log.jsonl").write_text(json.dumps({"event": "eval", "step": 1, **result}) + "\n")
    tmp = folder / f".metrics.json.tmp-{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps(metrics, indent=2))
    tmp.replace(folder / "metrics.json")
    return metrics
