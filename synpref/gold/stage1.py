"""Stage 1 (Skywork-Reward-V2): small, human in the loop, in rounds.

Before the first round humans label a seed set (objective, low-controversy pairs first), so
there is gold to steer by. Each round then:
1. trains the round's reward model on silver (the pool's pairs, with the judges' verdicts
   applied: flipped ones swapped, undecided ones left out) and evaluates it on gold;
2. takes each gold pair's p (the round RM's probability of ranking it right) and retrieves
   its nearest unlabelled pool pairs with the error-driven rule (k = 8 where p <= 0.5,
   fewer the surer the RM is, none at p = 1);
3. sends the best of those for humans (objective, low-controversy first) to the annotation
   queue and the rest to the LLM judges; their labels grow gold and silver.
The round's figures are one row of `stage1_rounds`. These are plain functions; the round's
Dagster assets (assets/stage1.py) call them with the trainer and scorer they are given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from synpref.lake import schemas
from synpref.gold.annotation_queue import rank_for_humans
from synpref.lake.duck import connect as duck_connect, lit, register_tables
from synpref.lake import Lake, atomic_path, write_part
from synpref.silver.retrieval import K_MAX, retrieve
from synpref.rm.rm_models import ModelRef
from synpref.silver.vectors import IndexConfig

RETRIEVALS, ROUNDS = "stage1_retrievals", "stage1_rounds"
SEED_ORIGIN = "seed"
ROUND_KEY = re.compile(r"round-([1-9]\d*)")


@dataclass(frozen=True)
class RoundSettings:
    seed_gold: int = 48  # pairs queued for humans before round 1: the seed gold set
    to_humans: int = 16  # retrieved pairs sent to humans per round (objective, low-controversy first)
    to_judges: int | None = None  # cap on retrieved pairs sent to the LLM judges per round; None: the rest
    k_max: int = K_MAX
    same_task_category: bool = True


def round_number(key: str) -> int:
    match = ROUND_KEY.fullmatch(key)
    if not match:
        raise ValueError(f"not a Stage 1 round key: {key!r} (round-1, round-2, ...)")
    return int(match.group(1))


def round_key(number: int) -> str:
    return f"round-{number}"


def _query(lake: Lake, sql: str, params: dict | None = None) -> list[tuple]:
    with duck_connect(lake) as con:
        register_tables(con, lake, temp=True)
        return con.execute(sql, params or {}).fetchall()


def queued_for_humans(lake: Lake, origin: str) -> int:
    if not lake.has_table("annotation_queue"):
        return 0
    return _query(lake, "select count(*) from annotation_queue where origin = $o", {"o": origin})[0][0]


def silver_training_sql(lake: Lake) -> str:
    """The round RM's training pairs: the pool with the judges' verdicts applied (gold pairs are
    kept out by the trainer, which evaluates on them)."""
    if not lake.has_table("silver_labels"):
        return "select pair_id, conversation, chosen, rejected, source from silver_pairs"
    return """
        select s.pair_id, s.conversation,
               if(l.verdict = 'flipped', s.rejected, s.chosen) as chosen,
               if(l.verdict = 'flipped', s.chosen, s.rejected) as rejected,
               s.source
        from silver_pairs as s left join silver_labels as l using (pair_id)
        where l.verdict is distinct from 'undecided'"""


def gold_p(lake: Lake, model: str, version: str) -> list[tuple[str, float]]:
    """(pair_id, p) of every gold pair the round's RM was evaluated on (rm_eval_pairs)."""
    if not lake.has_table("rm_eval_pairs"):
        return []
    return [(pid, float(p)) for pid, p in _query(
        lake, "select pair_id, p_chosen from rm_eval_pairs where model = $m and model_version = $v "
              "and pairs_table = 'eval_gold' order by pair_id", {"m": model, "v": version})]


@dataclass
class RoundQueues:
    round: str
    queries: int
    wrong_or_unsure: int
    retrieved: int
    to_humans: list[str] = field(default_factory=list)
    to_judges: list[str] = field(default_factory=list)


def _labelled(lake: Lake, key: str) -> set[str]:
    """Pairs a human or a judge has been asked about outside round `key` (never retrieved
    again): queued, sent by another round's retrieval, or gold. The round's own are not
    excluded, so a rerun retrieves the same pairs."""
    round_number(key)  # a checked key: safe to inline
    parts = [f"select pair_id from {t} where origin <> {lit(key)}" for t in ("annotation_queue", "judge_queue")
             if lake.has_table(t)]
    if lake.has_table(RETRIEVALS):
        parts.append(f"select pair_id from {RETRIEVALS} where round <> {lit(key)} "
                     f"and destination in ('humans', 'judges')")
    if lake.has_table("gold_pairs"):
        parts.append("select pair_id from gold_pairs")
    return {pid for (pid,) in _query(lake, " union ".join(parts))} if parts else set()


def retrieve_round(lake: Lake, key: str, p_by_gold_pair: list[tuple[str, float]], settings: RoundSettings,
                   index: IndexConfig = IndexConfig(), log=lambda msg: None) -> RoundQueues:
    """Error-driven retrieval around the gold pairs: the round's stage1_retrievals, each found pair
    with its destination (humans: the best-ranked for annotators, up to settings.to_humans; judges:
    the rest). The queue assets queue them from there (annotation_queue, judge_queue)."""
    round_number(key)
    if lake.has_table(RETRIEVALS) and _query(lake, f"select count(*) from {RETRIEVALS} where round = $r",
                                              {"r": key})[0][0]:
        return _recorded_queues(lake, key, p_by_gold_pair)  # this round is done: its pairs are recorded
    neighbours = retrieve(lake, p_by_gold_pair, same_task_category=settings.same_task_category,
                          exclude_pair_ids=_labelled(lake, key), config=index, k_max=settings.k_max)
    p = dict(p_by_gold_pair)
    found = list(dict.fromkeys(n.pair_id for n in neighbours))  # first retrieval wins, in query order
    log(f"{key}: {len(neighbours):,} neighbours of {len({n.query_pair_id for n in neighbours}):,} gold pairs, "
        f"{len(found):,} distinct pairs")
    humans = rank_for_humans(lake, found, settings.to_humans) if found and settings.to_humans else []
    rest = [pid for pid in found if pid not in set(humans)]
    judges = rest if settings.to_judges is None else rest[: settings.to_judges]
    destination = {**{pid: "judges" for pid in judges}, **{pid: "humans" for pid in humans}}
    seen: set[str] = set()
    rows = []
    for n in neighbours:
        first = n.pair_id not in seen
        seen.add(n.pair_id)
        rows.append({"round": key, "query_pair_id": n.query_pair_id, "p_query": p[n.query_pair_id], "k": n.k,
                     "pair_id": n.pair_id, "rank": n.rank, "distance": n.distance,
                     "destination": destination.get(n.pair_id, "not_sent") if first else "already_queued"})
    write_part(lake, RETRIEVALS, pa.Table.from_pylist(rows, schema=schemas.STAGE1_RETRIEVALS))
    log(f"{key}: {len(humans):,} pairs for humans, {len(judges):,} for the judges")
    return RoundQueues(key, len({n.query_pair_id for n in neighbours}),
                       sum(1 for _, q in p_by_gold_pair if q <= 0.5), len(found), humans, judges)


def retrieved_for(lake: Lake, destination: str) -> dict[str, list[str]]:
    """round -> the pairs its retrieval sent to `destination` (humans | judges), rounds in order."""
    if not lake.has_table(RETRIEVALS):
        return {}
    out: dict[str, list[str]] = {}
    for key, pid in _query(lake, f"select round, pair_id from {RETRIEVALS} where destination = $d "
                                 f"order by cast(regexp_extract(round, '[0-9]+') as int), query_pair_id, rank",
                           {"d": destination}):
        out.setdefault(key, []).append(pid)
    return out


def _recorded_queues(lake: Lake, key: str, p_by_gold_pair: list[tuple[str, float]]) -> RoundQueues:
    """The round's queues as recorded; wrong_or_unsure counts every gold pair with p <= 0.5, also
    those that found nothing to retrieve (and so have no row in stage1_retrievals)."""
    rows = _query(lake, f"select query_pair_id, p_query, pair_id, destination from {RETRIEVALS} "
                        f"where round = $r order by query_pair_id, rank", {"r": key})
    queries = {q: p for q, p, _, _ in rows}
    return RoundQueues(key, len(queries), sum(1 for _, p in p_by_gold_pair if p <= 0.5),
                       len({pid for _, _, pid, _ in rows}),
                       [pid for _, _, pid, d in rows if d == "humans"], [pid for _, _, pid, d in rows if d == "judges"])


def record_round(lake: Lake, key: str, ref: ModelRef) -> dict:
    """The round's figures, after its labels came in: one row of stage1_rounds (replacing an older one)."""
    queues = _recorded_queues(lake, key, gold_p(lake, ref.name, ref.version))
    # the round RM's own set (not an outside benchmark it was also evaluated on: synpref eval)
    (gold_accuracy,), = _query(lake, "select accuracy from rm_eval where model = $m and model_version = $v "
                                     "and breakdown = 'overall' and eval_set in ('gold', 'holdout')",
                               {"m": ref.name, "v": ref.version})
    gold_before = ref.spec["eval"]["rows"]  # the gold the round's RM was picked and evaluated on
    simulated_humans = bool(lake.has_table("human_labels") and _query(
        lake, "select count(*) from human_labels where simulated and pair_id in "
              "(select pair_id from annotation_queue where origin = $r)", {"r": key})[0][0])
    gold_after = _query(lake, "select count(*) from gold_pairs")[0][0] if lake.has_table("gold_pairs") else 0
    verdicts: dict[str, int] = {}
    agreement = None
    if lake.has_table("silver_labels") and queues.to_judges:
        verdicts = dict(_query(lake, "select verdict, count(*) from silver_labels where pair_id in "
                                     "(select pair_id from judge_queue where origin = $r) group by 1", {"r": key}))
    human_agreement = None
    if lake.has_table("gold_pairs"):
        # how far the round's annotators agreed with the majority on its pairs
        (human_agreement,), = _query(lake, "select round(avg(agreement), 4) from gold_pairs where pair_id in "
                                           "(select pair_id from annotation_queue where origin = $r)", {"r": key})
    if lake.has_table("silver_labels") and lake.has_table("gold_pairs"):
        (both, same), = _query(lake, """
            select count(*), count(*) filter (where (l.verdict = 'flipped') = g.flipped)
            from gold_pairs as g join silver_labels as l using (pair_id) where l.verdict <> 'undecided'""")
        agreement = round(same / both, 4) if both else None
    row = {"round": key, "round_number": round_number(key), "model": ref.name, "model_version": ref.version,
           "gold_accuracy": gold_accuracy, "gold_pairs_before": gold_before, "gold_pairs_after": gold_after,
           "queries": queues.queries, "wrong_or_unsure": queues.wrong_or_unsure, "retrieved": queues.retrieved,
           "to_humans": len(queues.to_humans), "to_judges": len(queues.to_judges),
           "judged_agree": verdicts.get("agree", 0), "judged_flipped": verdicts.get("flipped", 0),
           "judged_undecided": verdicts.get("undecided", 0), "human_agreement": human_agreement,
           "human_judge_agreement": agreement,
           "simulated_humans": simulated_humans, "finished_at": datetime.now(timezone.utc)}
    with atomic_path(lake.table_dir(ROUNDS) / f"{key}.parquet") as tmp:
        pq.write_table(pa.Table.from_pylist([row], schema=schemas.STAGE1_ROUNDS), tmp)
    return row


def rounds(lake: Lake) -> list[dict]:
    """Every recorded round, in order."""
    if not lake.has_table(ROUNDS):
        return []
    with duck_connect(lake) as con:
        rel = con.sql(f"select * from read_parquet({lit(lake.table_glob(ROUNDS))}) order by round_number")
        return [dict(zip(rel.columns, r)) for r in rel.fetchall()]


def gold_count(lake: Lake) -> int:
    return _query(lake, "select count(*) from gold_pairs")[0][0] if lake.has_table("gold_pairs") else 0


def best_round_model(lake: Lake) -> tuple[str, str, float]:
    """(model, version, gold accuracy) of the round RM with the best accuracy on gold (the later
    round on a tie): Stage 2's current best RM."""
    if not lake.has_table("rm_eval"):
        raise LookupError("no rm_eval yet: run a Stage 1 round first")
    found = _query(lake, """
        select model, model_version, accuracy from rm_eval
        where breakdown = 'overall' and eval_set = 'gold' and regexp_full_match(model, 'round-[1-9][0-9]*')
        order by accuracy desc, cast(regexp_extract(model, '[0-9]+') as int) desc, model_version desc limit 1""")
    if not found:
        raise LookupError("no round reward model evaluated on gold yet: run a Stage 1 round first")
    return found[0]
