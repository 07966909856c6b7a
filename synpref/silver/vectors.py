"""The pair-embedding store: one LanceDB table under ``<lake>/lancedb``, searched by cosine.

Vectors are L2-normalised, so cosine distance ranks like dot product and L2. Small
tables are searched exactly (a flat scan is fast and has perfect recall); past
``IndexConfig.min_rows_for_index`` an ANN index is built whose partitions and search
settings follow the table's size (`plan_index`), are checked at build by recall@10 on a
sample of the table's own vectors, and are recorded with the index (the vector column's
metadata), so that every search uses the settings its index was built for. The rule was
measured at 100k, 1M and 4M rows (benchmarks/retrieval.py --scale): fixed settings lose
recall as the pool grows, and library defaults were far below 0.95 recall.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from typing import Iterable

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from synpref.lake import Lake

TABLE = "pair_embeddings"
VECTOR = "vector"
DISTANCE = "cosine"
LOOKUP_BATCH = 500  # ids per `pair_id IN (...)` lookup

if TYPE_CHECKING:
    import lancedb

# index kind -> its lancedb.index class (imported when an index is made: LanceDB takes 1.5 s to
# import, and every Dagster step process imports this module through the definitions)
INDEX_KINDS = {"IVF_FLAT": "IvfFlat", "IVF_SQ": "IvfSq", "IVF_PQ": "IvfPq", "IVF_HNSW_FLAT": "HnswFlat",
               "IVF_HNSW_SQ": "HnswSq", "IVF_HNSW_PQ": "HnswPq"}


@dataclass(frozen=True)
class IndexConfig:
    """Which ANN index to build and how to search it. The sizes left None follow the table:
    `plan_index` derives them from its rows when the index is built, and searches read them
    back from the index's record (`index_settings`)."""

    kind: str = "IVF_SQ"
    num_partitions: int | None = None  # IVF partitions; None: see plan_index
    num_sub_vectors: int | None = None  # PQ kinds only
    m: int = 20  # HNSW kinds: graph degree
    ef_construction: int = 300  # HNSW kinds: build beam width
    # IVF partitions searched per query; None: probe_share of the partitions (at least
    # min_nprobes), raised at build until the sampled recall reaches recall_target
    nprobes: int | None = None
    probe_share: float = 0.03
    min_nprobes: int = 16
    ef: int | None = None  # HNSW kinds: search beam width (LanceDB: 1.5 x limit)
    # Candidates re-ranked by exact distance, as a multiple of the limit. Always at least 1:
    # without re-ranking some kinds report L2 on quantised vectors, not cosine distance.
    refine_factor: int | None = 5
    min_rows_for_index: int = 5000
    # the build's check: recall@10 of this many of the table's own vectors against exact search,
    # plain and within the row's own task_category (as Stage 1 searches); the target keeps a
    # margin over 0.95 for the sample's noise (about +-0.01 at 100 rows)
    recall_sample: int = 100
    recall_target: float = 0.96

    def __post_init__(self):
        if self.kind not in INDEX_KINDS:
            raise ValueError(f"unknown index kind {self.kind!r}; known: {sorted(INDEX_KINDS)}")
        if not 0 < self.probe_share <= 1:
            raise ValueError(f"probe_share must be in (0, 1], got {self.probe_share}")

    def lance_index(self, num_partitions: int | None = None):
        """The LanceDB index description for `create_index`."""
        params = {"distance_type": DISTANCE, "num_partitions": num_partitions or self.num_partitions}
        if self.kind.endswith("PQ"):
            params["num_sub_vectors"] = self.num_sub_vectors
        if "HNSW" in self.kind:
            params.update(m=self.m, ef_construction=self.ef_construction)
        import lancedb.index

        return getattr(lancedb.index, INDEX_KINDS[self.kind])(**params)


@dataclass(frozen=True)
class IndexSettings:
    """What an index was built with and is searched with: recorded with the index."""

    kind: str
    rows: int  # rows when it was built
    num_partitions: int
    nprobes: int
    refine_factor: int
    ef: int | None = None
    # the build's check (None: not measured)
    sampled_recall_at_10: float | None = None
    sampled_recall_at_10_filtered: float | None = None

    def search_config(self, config: IndexConfig) -> IndexConfig:
        """config with its unset search settings taken from this index."""
        return replace(config, nprobes=config.nprobes or self.nprobes, ef=config.ef or self.ef)


SETTINGS_KEY = "synpref:index"  # the vector column's metadata key holding the IndexSettings
HNSW_ROWS_PER_PARTITION = 1_000_000  # LanceDB's own target for one HNSW graph
MIN_PARTITION_ROWS = 1000  # below this a probed partition costs more than its rows


def plan_index(rows: int, config: IndexConfig) -> IndexSettings:
    """The index for a table of `rows`: config's explicit sizes, the rule's for those unset.

    IVF: partitions of max(sqrt(rows), 1000) rows (1,000 partitions at 1M, 2,000 at 4M:
    LanceDB's own ~8k-row partitions need a quarter of them probed at 1M) and probe_share of
    them searched, at least min_nprobes. HNSW kinds keep one graph per ~1M rows and search
    every graph.
    """
    if "HNSW" in config.kind:
        partitions = config.num_partitions or max(1, math.ceil(rows / HNSW_ROWS_PER_PARTITION))
        nprobes = config.nprobes or partitions
    else:
        partitions = config.num_partitions or max(1, round(rows / max(math.sqrt(rows), MIN_PARTITION_ROWS)))
        nprobes = config.nprobes or max(config.min_nprobes, math.ceil(config.probe_share * partitions))
    return IndexSettings(kind=config.kind, rows=rows, num_partitions=partitions,
                         nprobes=min(nprobes, partitions), refine_factor=max(1, config.refine_factor or 1),
                         ef=config.ef)


def embedding_schema(dim: int) -> pa.Schema:
    return pa.schema([
        pa.field("pair_id", pa.string(), nullable=False),
        pa.field(VECTOR, pa.list_(pa.float32(), dim), nullable=False),
        pa.field("task_category", pa.string()),
        pa.field("objectivity", pa.string()),
        pa.field("controversiality", pa.string()),
        pa.field("text", pa.string()),
    ])


def open_db(lake: Lake) -> lancedb.DBConnection:
    """LanceDB under the lake root; on an object store LanceDB writes there itself (its own
    S3 client reads the same AWS_* environment as the lake's filesystem)."""
    import lancedb

    return lancedb.connect(str(lake.root / "lancedb"), storage_options=lance_storage_options(lake))


def lance_storage_options(lake: Lake) -> dict[str, str] | None:
    """The S3 endpoint of a store lake, in the option names of LanceDB's object store (it reads
    the keys and region from the environment itself, but not every endpoint variable)."""
    if not lake.remote or lake.root.protocol not in ("s3", "s3a"):
        return None
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        return None
    return {"aws_endpoint": endpoint, "allow_http": str(endpoint.startswith("http://")).lower()}


def open_table(lake: Lake):
    """The embeddings table; ValueError when nothing has been written yet."""
    return open_db(lake).open_table(TABLE)


def has_table(lake: Lake) -> bool:
    return TABLE in open_db(lake).list_tables().tables


def write_embeddings(lake: Lake, rows: pa.Table, mode: str = "append") -> int:
    """Append (or, with mode="overwrite", replace) embedded pairs; returns rows written.

    Each write is one atomic LanceDB commit, so a killed run leaves whole batches only
    and `existing_pair_ids` tells a resumed run exactly what is left to embed.
    """
    if mode not in ("append", "overwrite"):
        raise ValueError(f"mode must be 'append' or 'overwrite', not {mode!r}")
    data = _conform(rows)
    db = open_db(lake)
    if mode == "overwrite":
        db.create_table(TABLE, data=data, mode="overwrite")
        return data.num_rows
    if TABLE not in db.list_tables().tables:
        _create_empty(db, data.schema)
    if data.num_rows:
        db.open_table(TABLE).add(data)
    return data.num_rows


def _create_empty(db: lancedb.DBConnection, schema: pa.Schema) -> None:
    """Create the table empty; shards starting at once may race to it, and one of them wins."""
    try:
        db.create_table(TABLE, schema=schema, exist_ok=True)
    except Exception:
        if TABLE not in db.list_tables().tables:
            raise


def embedding_rows(pairs: list[dict], embeddings: np.ndarray, texts: list[str]) -> pa.Table:
    """The table rows of embedded pairs (dicts with pair_id and the attribute columns)."""
    return pa.table({
        "pair_id": [p["pair_id"] for p in pairs],
        VECTOR: vector_array(embeddings),
        "task_category": [p.get("task_category") for p in pairs],
        "objectivity": [p.get("objectivity") for p in pairs],
        "controversiality": [p.get("controversiality") for p in pairs],
        "text": texts,
    })


def unfinished(lake: Lake, config: IndexConfig) -> bool:
    """Appends not yet compacted, or an index due and missing."""
    stats = open_table(lake).stats()
    index_due = stats["num_rows"] >= config.min_rows_for_index and not stats["num_indices"]
    # compaction leaves large fragments and at most one small one (the remainder)
    return stats["fragment_stats"]["num_small_fragments"] > 1 or index_due


def compact(lake: Lake) -> None:
    """Merge the small fragments that many appends leave (one per chunk per shard), so a
    scan or an index build reads a few large files; old versions stay for readers."""
    open_table(lake).optimize()


def _conform(rows: pa.Table) -> pa.Table:
    """The rows in table order and types, with missing attribute columns as nulls."""
    vector_type = rows.schema.field(VECTOR).type
    if not pa.types.is_fixed_size_list(vector_type):
        raise TypeError(f"{VECTOR} must be fixed_size_list<float32>[dim] (see vector_array), "
                        f"not {vector_type}")
    schema = embedding_schema(vector_type.list_size)
    columns = [rows[f.name] if f.name in rows.column_names else pa.nulls(rows.num_rows, f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, names=schema.names).cast(schema)


def vector_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """A (rows, dim) float array as the table's vector column."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1])


def pair_id_batches(lake: Lake, batch_size: int = 65536) -> pa.RecordBatchReader:
    """Every stored pair_id as a stream of batches (for a reader that filters as it goes)."""
    return open_table(lake).search().select(["pair_id"]).to_batches(batch_size)


def existing_pair_ids(lake: Lake) -> set[str]:
    """Pairs already embedded (empty before the first write)."""
    if not has_table(lake):
        return set()
    scan = open_table(lake).search().select(["pair_id"]).to_arrow()
    return set(scan["pair_id"].to_pylist())


def read_pairs(lake: Lake, pair_ids: Iterable[str],
               columns: tuple[str, ...] = ("pair_id", VECTOR, "task_category")) -> pa.Table:
    """The stored rows of the given pairs (those absent are simply not returned)."""
    table = open_table(lake)
    ids = list(dict.fromkeys(pair_ids))
    parts = [
        table.search().where(f"pair_id IN ({', '.join(map(sql_string, ids[i:i + LOOKUP_BATCH]))})")
        .select(list(columns)).to_arrow()
        for i in range(0, len(ids), LOOKUP_BATCH)
    ]
    return pa.concat_tables(parts) if parts else pa.table({c: [] for c in columns})


def sql_string(value: str) -> str:
    """A SQL string literal for LanceDB filters."""
    return "'" + value.replace("'", "''") + "'"


def build_index(lake: Lake, config: IndexConfig, log=lambda msg: None) -> dict:
    """(Re)build the ANN index over every row, sized by `plan_index`, check its recall on a
    sample of the table's own vectors (raising nprobes until it reaches the target, when
    nprobes is left to the rule) and record the settings with the index; below the
    threshold report flat search."""
    table = open_table(lake)
    rows = table.count_rows()
    if rows < config.min_rows_for_index:
        return {"kind": "flat", "rows": rows}
    settings = plan_index(rows, config)
    log(f"building {settings.kind} over {rows:,} rows: {settings.num_partitions:,} partitions")
    start = time.perf_counter()
    table.create_index(VECTOR, config=config.lance_index(settings.num_partitions), replace=True)
    seconds = time.perf_counter() - start
    settings = _checked(table, config, settings, log)
    table.update_field_metadata({"path": VECTOR, "metadata": {SETTINGS_KEY: json.dumps(asdict(settings))}})
    return {"kind": settings.kind, "rows": rows, "num_partitions": settings.num_partitions,
            "nprobes": settings.nprobes, "refine_factor": settings.refine_factor,
            "sampled_recall_at_10": settings.sampled_recall_at_10,
            "sampled_recall_at_10_filtered": settings.sampled_recall_at_10_filtered,
            "seconds": round(seconds, 3)}


def _checked(table, config: IndexConfig, settings: IndexSettings, log) -> IndexSettings:
    """The settings with their recall@10 measured on sampled rows, plain and within each
    row's own task_category; nprobes doubled while either is short of the target (only
    when the rule chose it)."""
    if config.recall_sample <= 0:
        return settings
    ids, vectors, categories = _sample_rows(table, config.recall_sample)
    wheres = [None if c is None else f"task_category = {sql_string(c)}" for c in categories]
    exact = nearest(table, vectors, K_CHECK + 1, config=config, exact=True)
    exact_filtered = _filtered(table, vectors, wheres, config, exact=True)
    while True:
        search = settings.search_config(config)
        plain = _recall(ids, nearest(table, vectors, K_CHECK + 1, config=search), exact)
        filtered = _recall(ids, _filtered(table, vectors, wheres, search), exact_filtered)
        settings = replace(settings, sampled_recall_at_10=round(plain, 4),
                           sampled_recall_at_10_filtered=round(filtered, 4))
        log(f"nprobes {settings.nprobes}: recall@10 {plain:.3f}, {filtered:.3f} within the task "
            f"category, on {len(vectors)} sampled rows")
        if (min(plain, filtered) >= config.recall_target or config.nprobes
                or settings.nprobes >= settings.num_partitions):
            return settings
        settings = replace(settings, nprobes=min(settings.num_partitions, settings.nprobes * 2))


K_CHECK = 10


def _filtered(table, vectors: np.ndarray, wheres: list[str | None], config: IndexConfig,
              exact: bool = False) -> list[list[tuple[str, float]]]:
    """Per sampled row, its search within its own category (empty when it has none)."""
    return [nearest(table, v[None], K_CHECK + 1, where=w, config=config, exact=exact)[0] if w else []
            for v, w in zip(vectors, wheres)]


def _sample_rows(table, n: int) -> tuple[list[str], np.ndarray, list[str | None]]:
    """n stored rows spread over the table (every rows/n-th row: no full scan): their
    pair_ids, vectors and task categories."""
    rows = table.count_rows()
    step = max(1, rows // n)
    offsets = list(range(0, rows, step))[:n]
    taken = table.take_offsets(offsets).select(["pair_id", VECTOR, "task_category"]).to_arrow()
    dim = taken.schema.field(VECTOR).type.list_size
    vectors = np.asarray(taken[VECTOR].combine_chunks().flatten(), dtype=np.float32).reshape(-1, dim)
    return taken["pair_id"].to_pylist(), vectors, taken["task_category"].to_pylist()


def _recall(ids: list[str], approx: list[list[tuple[str, float]]],
            exact: list[list[tuple[str, float]]]) -> float:
    """Mean share of the exact K_CHECK nearest found; a sampled row itself counts in neither."""
    shares = []
    for own, a, e in zip(ids, approx, exact):
        truth = {p for p, _ in [hit for hit in e if hit[0] != own][:K_CHECK]}
        if truth:
            shares.append(len({p for p, _ in a if p != own} & truth) / len(truth))
    return float(np.mean(shares)) if shares else 1.0


def index_settings(table) -> IndexSettings | None:
    """The settings recorded with the table's vector index; None without an index. An index
    built before settings were recorded gets the rule's nprobes for its partition count."""
    metadata = table.schema.field(VECTOR).metadata or {}
    recorded = metadata.get(SETTINGS_KEY.encode())
    kind = _vector_index_type(table)
    if kind is None:
        return None
    if recorded:
        return IndexSettings(**json.loads(recorded))
    name = next(index.name for index in table.list_indices() if VECTOR in index.columns)
    stats = table.to_lance().stats.index_stats(name)
    partitions = stats["indices"][0].get("num_partitions") or 1
    rows = stats.get("num_indexed_rows", 0)
    return replace(plan_index(rows, IndexConfig(kind=kind, num_partitions=partitions)), kind=kind)


def vector_index_kind(lake: Lake) -> str | None:
    """The kind of ANN index on the vector column, None when search is flat."""
    return _vector_index_type(open_table(lake))


def _vector_index_type(table) -> str | None:
    """IVF_SQ, IVF_HNSW_SQ, ... (LanceDB's statistics name kinds as IndexConfig does)."""
    for index in table.list_indices():
        if VECTOR in index.columns:
            return table.index_stats(index.name).index_type
    return None


def search_config(table, config: IndexConfig) -> IndexConfig:
    """config with the search settings recorded with the table's index where it leaves them
    unset (none to take without an index: then every search is exact)."""
    if config.nprobes and (config.ef or "HNSW" not in config.kind):
        return config
    settings = index_settings(table)
    return settings.search_config(config) if settings else config


def nearest(table, vectors: np.ndarray, limit: int, *, where: str | None = None,
            config: IndexConfig, exact: bool = False) -> list[list[tuple[str, float]]]:
    """One query of many vectors on an open table: per vector, (pair_id, distance) best first.

    The filter is a prefilter (applied before the ANN search, not to its output); a narrow
    one can still leave the probed partitions short of `limit` rows. `exact` bypasses the
    index (the reference for recall); without an index every search is exact.
    """
    if not exact and not config.nprobes:
        config = search_config(table, config)
    query = (table.search(vectors, vector_column_name=VECTOR).distance_type(DISTANCE)
             .limit(limit).select(["pair_id", "_distance"]))
    if where:
        query = query.where(where, prefilter=True)
    if exact:
        query = query.bypass_vector_index()
    else:
        query = query.refine_factor(max(1, config.refine_factor or 1))
        if config.nprobes:
            # fixed: with maximum_nprobes above the minimum, LanceDB 0.40 probes more partitions
            # on every query, not only on queries left short
            query = query.nprobes(config.nprobes)
        if config.ef:
            query = query.ef(config.ef)
    return _per_query(query.to_arrow(), len(vectors))


def _per_query(result: pa.Table, n_queries: int) -> list[list[tuple[str, float]]]:
    out: list[list[tuple[str, float]]] = [[] for _ in range(n_queries)]
    owners = (result["query_index"].to_pylist() if "query_index" in result.column_names
              else [0] * result.num_rows)
    for owner, pair_id, distance in zip(owners, result["pair_id"].to_pylist(),
                                        result["_distance"].to_pylist()):
        out[owner].append((pair_id, distance))
    for hits in out:
        hits.sort(key=lambda hit: hit[1])
    return out


def search(lake: Lake, vectors: np.ndarray, k: int, *, where: str | None = None,
           exclude_ids: set[str] | None = None,
           config: IndexConfig) -> list[list[tuple[str, float]]]:
    """Per query vector, its k nearest pairs (pair_id, cosine distance), best first.

    Excluded ids are dropped after the search, so the search over-fetches. A query left
    short of k is asked again, exactly (bypassing the index: a narrow filter can empty the
    probed partitions) and with a larger limit, until k remain or no more rows match.
    """
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    results: list[list[tuple[str, float]]] = [[] for _ in range(len(vectors))]
    if k <= 0 or not len(vectors):
        return results
    exclude = exclude_ids or set()
    table = open_table(lake)
    config = search_config(table, config)  # once, not per retry
    total = table.count_rows()
    limit = k + min(len(exclude), max(k, 16))
    pending, exact = list(range(len(vectors))), False
    while pending:
        found = nearest(table, vectors[pending], limit, where=where, config=config, exact=exact)
        short = []
        for query, hits in zip(pending, found):
            results[query] = [hit for hit in hits if hit[0] not in exclude][:k]
            more_may_match = len(hits) == limit < total
            if len(results[query]) < k and (more_may_match or not exact):
                short.append(query)
        pending, limit, exact = short, limit * 4, True
    return results


def recall_at_k(lake: Lake, queries: np.ndarray, k: int, config: IndexConfig) -> float:
    """Mean share of the exact k nearest that the configured (ANN) search also returns."""
    table = open_table(lake)
    config = search_config(table, config)
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    approx = nearest(table, queries, k, config=config)
    exact = nearest(table, queries, k, config=config, exact=True)
    shares = [len({p for p, _ in a} & {p for p, _ in e}) / len(e) for a, e in zip(approx, exact) if e]
    return float(np.mean(shares)) if shares else 1.0
