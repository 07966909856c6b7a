"""The silver_labels stage: the LLM judges' verdicts on the queued pairs.

Which pairs are judged comes from `judge_queue` (pair_id, origin): Stage 1 queues the pairs
retrieved around the gold pairs, Stage 2 the pairs the RM is unsure of; a SELECT can queue
any others. Each judge of the panel then answers on every queued pair it has no votes for
(cache key: judge name + config_key), a chunk at a time, each chunk's votes written as one
Parquet part of `judge_votes` (temporary name, then rename): a killed run keeps finished
chunks and the rerun judges the rest, no pair twice. Last, `silver_labels` is rebuilt from
the votes of the current panel (one file, swapped in atomically).

The examples shown to a judge are the human-labelled pairs (`gold_pairs`) nearest to the
target in the pair-embedding space. The gold set is small next to the pool, so they are
found exactly, by a dot product over the gold vectors read from LanceDB.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synpref.lake import schemas

from synpref.silver import vectors
from synpref.silver.attributes import register_latest_attributes
from synpref.lake.duck import closed_on_error, connect as duck_connect, lit, register_tables
from synpref.lake import Lake, atomic_path, write_part
from synpref.silver.queues import enqueue_pairs

QUEUE, VOTES, LABELS, GOLD = "judge_queue", "judge_votes", "silver_labels", "gold_pairs"
SHOWN = {1: "chosen_first", 2: "rejected_first"}
ATTRIBUTE_KEYS = ("task_category", "objectivity", "controversiality", "desired_attributes", "annotation_guideline")


@dataclass
class JudgingSummary:
    queued: int
    judged: dict[str, int] = field(default_factory=dict)  # judge -> pairs judged in this run
    labelled: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # judge -> pairs with no answers
    first_answer_share: dict[str, float] = field(default_factory=dict)  # judge -> share answering choices[0]
    with_examples: int = 0
    seconds: float = 0.0

    @property
    def pairs_judged(self) -> int:
        return max(self.judged.values(), default=0)


# ---------------------------------------------------------------- the queue

def enqueue(lake: Lake, select_sql: str | None, origin: str, pair_ids: list[str] | None = None) -> tuple[int, int]:
    """Queue the pair_ids a read-only SELECT over the lake's tables returns (column
    `pair_id`), or those listed. Returns (newly queued, already queued). Ids not in
    silver_pairs are an error."""
    queued = enqueue_pairs(lake, QUEUE, schemas.JUDGE_QUEUE, origin, select_sql=select_sql, pair_ids=pair_ids)
    return queued.new, queued.already


def ensure_queue(lake: Lake) -> None:
    """An empty part, so that the table (and its view) exists before anything is queued."""
    if not lake.has_table(QUEUE):
        write_part(lake, QUEUE, schemas.JUDGE_QUEUE.empty_table())


def queue_for_judges(lake: Lake) -> dict[str, int]:
    """Queue what the stages sent to the judges and is not queued yet: Stage 1 retrieval's pairs
    (origin = the round) and Stage 2's pairs the best RM does not confirm (pool_scores.needs_judges,
    origin stage2). Returns the pairs newly queued per origin."""
    from synpref.gold.stage1 import retrieved_for
    from synpref.filtered.stage2 import POOL_SCORES, STAGE2_ORIGIN

    out = {key: enqueue(lake, None, key, pair_ids=pair_ids)[0]
           for key, pair_ids in retrieved_for(lake, "judges").items()}
    if lake.has_table(POOL_SCORES):
        out[STAGE2_ORIGIN] = enqueue(lake, f"select pair_id from {POOL_SCORES} where needs_judges", STAGE2_ORIGIN)[0]
    return out


# ---------------------------------------------------------------- judging

def _connection(lake: Lake) -> duckdb.DuckDBPyConnection:
    """A lake connection with the tables and latest_attributes as temp views; use it in a `with` block."""
    con = duck_connect(lake)
    with closed_on_error(con):
        register_tables(con, lake, temp=True)
        register_latest_attributes(con, lake)
    return con


def pending_sql(lake: Lake, where: str | None = None) -> str:
    """Queued pairs (with their texts and attributes) the judge $judge/$key has no votes for;
    `where`: a condition on pair_id choosing some of them (e.g. one pool shard)."""
    done = ("anti join (select pair_id from judge_votes where judge = $judge and config_key = $key) "
            "using (pair_id)") if lake.has_table(VOTES) else ""
    return f"""
        select q.pair_id, s.conversation, s.chosen, s.rejected, {', '.join('a.' + k for k in ATTRIBUTE_KEYS)}
        from (select distinct pair_id from judge_queue {f'where {where}' if where else ''}) as q
        join silver_pairs as s using (pair_id)
        left join latest_attributes as a using (pair_id)
        {done}
        order by q.pair_id"""


def judge_queued(lake: Lake, panel, prompt, make_annotator: Callable, chunk_rows: int = 128,
                 limit: int | None = None, where: str | None = None, rebuild_labels: bool = True,
                 log=lambda msg: None, engines=None) -> JudgingSummary:
    """Every judge of the panel on every queued pair it has not judged (those `where` picks,
    if given); then silver_labels is rebuilt, unless rebuild_labels is off (Stage 2's shards
    judge in parallel and rebuild it once, after the last shard). The judges' engines come from
    `engines` (a SharedEngines its owner closes), else from a pool closed on return."""
    from contextlib import nullcontext

    from models.annotator import SharedEngines
    from models.judge import judge_pairs

    if not lake.has_table(QUEUE):  # nothing queued yet (the judge_queue asset makes the table): nothing to judge
        return JudgingSummary(queued=0)
    start = time.perf_counter()
    summary = JudgingSummary(queued=_count(lake, f"select count(distinct pair_id) from {_scan(lake, QUEUE)}"))
    gold = GoldExamples.load(lake)
    # judges on one model load it once, however they sample
    with nullcontext(engines) if engines is not None else SharedEngines() as engines:
        for judge in panel.judges:
            key = judge.config_key(panel.prompt_version, panel.order_seed)
            annotator, judged, errors = None, 0, 0
            with _connection(lake) as con:
                con.execute(pending_sql(lake, where) + (f" limit {int(limit)}" if limit else ""),
                            {"judge": judge.name, "key": key} if lake.has_table(VOTES) else {})
                columns = [d[0] for d in con.description]
                while batch := con.fetchmany(chunk_rows):
                    pairs = [dict(zip(columns, row)) for row in batch]
                    attributes = {p["pair_id"]: {k: p[k] for k in ATTRIBUTE_KEYS} for p in pairs}
                    examples = gold.nearest([p["pair_id"] for p in pairs], prompt.max_examples)
                    annotator = annotator or engines.get(judge.annotator, lambda: make_annotator(judge))
                    votes = judge_pairs(annotator, judge, prompt, pairs, panel.order_seed, attributes, examples)
                    write_part(lake, VOTES, _vote_rows(pairs, votes, judge, key, panel, examples))
                    judged += len(pairs)
                    errors += sum(v.error is not None for v in votes)
                    summary.with_examples += sum(bool(examples.get(p["pair_id"])) for p in pairs)
                    log(f"{judge.name}: {judged:,} pairs judged")
            summary.judged[judge.name] = judged
            summary.errors[judge.name] = errors
    if rebuild_labels:
        labels = write_labels(lake, panel)
        summary.labelled = labels.num_rows
        summary.verdicts = dict(sorted(Counter(labels["verdict"].to_pylist()).items()))
        summary.first_answer_share = first_answer_share(lake, panel, prompt.choices)
    summary.seconds = round(time.perf_counter() - start, 3)
    return summary


class GoldExamples:
    """The human-labelled pairs, found by embedding distance to a target pair."""

    def __init__(self, lake: Lake, gold: dict[str, dict], ids: list[str], vectors_: np.ndarray):
        self.lake, self.gold, self.ids, self.vectors = lake, gold, ids, vectors_

    @classmethod
    def load(cls, lake: Lake) -> "GoldExamples":
        if not lake.has_table(GOLD) or not vectors.has_table(lake):
            return cls(lake, {}, [], np.zeros((0, 0), np.float32))
        with _connection(lake) as con:
            cursor = con.execute(f"select g.pair_id, g.conversation, g.chosen, g.rejected, "
                                 f"{', '.join('a.' + k for k in ATTRIBUTE_KEYS)} "
                                 f"from gold_pairs as g left join latest_attributes as a using (pair_id)")
            columns = [d[0] for d in cursor.description]
            rows = [dict(zip(columns, row)) for row in cursor.fetchall()]
        gold = {r["pair_id"]: {"pair_id": r["pair_id"], "conversation": r["conversation"], "chosen": r["chosen"],
                               "rejected": r["rejected"], "attributes": {k: r[k] for k in ATTRIBUTE_KEYS}}
                for r in rows}
        ids, matrix = _vectors(lake, list(gold))
        return cls(lake, gold, ids, matrix)

    def nearest(self, pair_ids: list[str], k: int) -> dict[str, list[dict]]:
        """Per target pair, up to k gold pairs nearest first (never the pair itself)."""
        if not self.ids or k <= 0:
            return {}
        ids, targets = _vectors(self.lake, pair_ids)
        if not ids:
            return {}
        order = np.argsort(-(targets @ self.vectors.T), axis=1, kind="stable")[:, : k + 1]
        return {pid: [self.gold[self.ids[j]] for j in row if self.ids[j] != pid][:k] for pid, row in zip(ids, order)}


def _vectors(lake: Lake, pair_ids: list[str]) -> tuple[list[str], np.ndarray]:
    """The embedded ones of pair_ids and their vectors."""
    rows = vectors.read_pairs(lake, pair_ids, ("pair_id", vectors.VECTOR))
    if not rows.num_rows:
        return [], np.zeros((0, 0), np.float32)
    dim = rows.schema.field(vectors.VECTOR).type.list_size
    matrix = np.asarray(rows[vectors.VECTOR].combine_chunks().flatten(), dtype=np.float32).reshape(-1, dim)
    return rows["pair_id"].to_pylist(), matrix


def _vote_rows(pairs, votes, judge, key: str, panel, examples: dict[str, list[dict]]) -> pa.Table:
    from models.judge import chosen_position

    now = datetime.now(timezone.utc)
    return pa.Table.from_pylist([{
        "pair_id": p["pair_id"], "judge": judge.name, "config_key": key, "model": judge.annotator.model,
        "prompt_version": panel.prompt_version, "samples": judge.samples,
        "shown_order": SHOWN[chosen_position(p["pair_id"], panel.order_seed)], "answers": v.answers,
        "agree": v.agree, "flip": v.flip, "invalid": v.invalid, "decision": v.decision, "confidence": v.confidence,
        "examples": [e["pair_id"] for e in examples.get(p["pair_id"], [])], "error": v.error, "judged_at": now,
    } for p, v in zip(pairs, votes)], schema=schemas.JUDGE_VOTES)


# ---------------------------------------------------------------- merging

def panel_votes_sql(panel) -> tuple[str, list]:
    """Per queued pair judged by the whole panel, its votes (one struct per judge)."""
    keys = [(j.name, j.config_key(panel.prompt_version, panel.order_seed)) for j in panel.judges]
    matches = " or ".join("(judge = ? and config_key = ?)" for _ in keys)
    sql = f"""
        select pair_id, any_value(shown_order) as shown_order,
               list(struct_pack(judge, model, answers, agree, flip, invalid, decision, error) order by judge) as votes
        from judge_votes
        where pair_id in (select pair_id from judge_queue) and ({matches})
        group by pair_id
        having count(distinct judge) = {len(keys)}
        order by pair_id"""
    return sql, [v for key in keys for v in key]


def write_labels(lake: Lake, panel, batch_rows: int = 50_000) -> pa.Table:
    """Rebuild silver_labels from the panel's votes (streamed; one file swapped in atomically).
    Returns its pair_id and verdict columns."""
    from models.judge import ModelVotes, merge

    weights = panel.weights()
    final = lake.table_dir(LABELS) / "silver_labels.parquet"
    kept: list[pa.Table] = []
    with (_connection(lake) if lake.has_table(VOTES) else contextlib.nullcontext()) as con:  # None: no votes yet
        with atomic_path(final) as tmp, pq.ParquetWriter(tmp, schemas.SILVER_LABELS, compression="zstd") as writer:
            if con is not None:
                sql, params = panel_votes_sql(panel)
                con.execute(sql, params)
                while batch := con.fetchmany(batch_rows):
                    now = datetime.now(timezone.utc)
                    rows = []
                    for pair_id, shown_order, votes in batch:
                        merged = merge([ModelVotes(v["judge"], v["answers"], v["agree"], v["flip"], v["invalid"],
                                                   v["decision"], 0.0, v["error"]) for v in votes],
                                       panel.merge, weights)
                        rows.append({
                            "pair_id": pair_id, "verdict": merged.verdict, "confidence": merged.confidence,
                            "votes": [{**{k: v[k] for k in ("judge", "model", "answers", "agree", "flip", "invalid",
                                                            "decision")}, "weight": weights[v["judge"]]}
                                      for v in votes],
                            "models": sorted({v["model"] for v in votes}), "prompt_version": panel.prompt_version,
                            "shown_order": shown_order, "merge": panel.merge, "labelled_at": now})
                    table = pa.Table.from_pylist(rows, schema=schemas.SILVER_LABELS)
                    writer.write_table(table)
                    kept.append(table.select(["pair_id", "verdict"]))
    for stale in lake.table_files(LABELS):  # parts of an older layout, if any
        if str(stale) != str(final):
            stale.unlink()
    return pa.concat_tables(kept) if kept else pa.table({"pair_id": pa.array([], pa.string()),
                                                         "verdict": pa.array([], pa.string())})


def first_answer_share(lake: Lake, panel, choices: tuple[str, ...]) -> dict[str, float]:
    """Position bias: per judge of the panel (and "all"), the share of its valid answers on
    the queued pairs that name the candidate shown first. 0.5 is unbiased: the order itself
    is a balanced coin per pair."""
    if not lake.has_table(VOTES):
        return {}
    counts: dict[str, tuple[int, int]] = {}
    with _connection(lake) as con:
        for judge in panel.judges:
            key = judge.config_key(panel.prompt_version, panel.order_seed)
            (counts[judge.name],) = con.execute(
                "select count(*) filter (where answer = $first), count(*) filter (where answer in ($first, $second)) "
                "from (select unnest(answers) as answer from judge_votes where judge = $judge and config_key = $key "
                "      and pair_id in (select pair_id from judge_queue))",
                {"first": choices[0], "second": choices[1], "judge": judge.name, "key": key}).fetchall()
    counts["all"] = (sum(f for f, _ in counts.values()), sum(v for _, v in counts.values()))
    return {name: round(first / valid, 4) for name, (first, valid) in counts.items() if valid}


def _scan(lake: Lake, table: str) -> str:
    return f"read_parquet({lit(lake.table_glob(table))}, union_by_name = true)"


def _count(lake: Lake, sql: str) -> int:
    with duck_connect(lake) as con:
        return con.execute(sql).fetchone()[0]


def queue_counts(lake: Lake) -> dict[str, int]:
    """Queued pairs per origin (a pair counts under the origin that queued it first)."""
    if not lake.has_table(QUEUE):
        return {}
    with duck_connect(lake) as con:
        return dict(con.execute(f"select origin, count(*) from {_scan(lake, QUEUE)} group by origin "
                                f"order by origin").fetchall())
