"""Stage 2's filter: every pool pair of a shard kept, flipped or dropped, with the reason.

The default rule (Skywork-Reward-V2's): a pool pair is kept only if its original label agrees
with the gold RM (trained on all human-verified pairs) and with either the current best RM
(scored out of fold) or the LLM judges; the judges only see the pairs the best RM gets wrong
(p <= 0.5). Human-verified pairs keep the humans' label. With recycling, a dropped pair whose
flipped label passes the same rule by a margin comes back flipped. The other rules, picked by
FilterSettings.rule, are confident learning (cleanlab on the out-of-fold scores) and the
ensemble's disagreement. Each rule is one SQL file over the same evidence
(``sql/pair_evidence.sql``) and every decided pair carries that evidence and its `rule`; this
module feeds a rule one shard at a time and writes the shard's part atomically.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from dataclasses import asdict, dataclass

import pyarrow as pa

import sql as sql_files
from synpref.filtered.confident_learning import label_issues
from synpref.lake.duck import DuckSettings, lit, stage_connection
from synpref.lake import Lake, atomic_path, file_stamp
from synpref.lake.shards import N_SHARDS, shard_key, shard_sql

TABLE = "filtered_pairs"
STATUSES = ("kept", "flipped", "dropped")


# rule -> its SQL file (all read the view of sql/pair_evidence.sql and give the same columns)
RULES = {"paper": "filtered_pairs", "confident_learning": "filtered_pairs_confident_learning",
         "ensemble": "filtered_pairs_ensemble"}
EVIDENCE = "pair_evidence"


@dataclass(frozen=True)
class FilterSettings:
    recycle_flipped: bool = True  # bring back dropped pairs whose flipped label passes the rule
    # ... by this margin: p_gold (and p_best, unless the judges flipped it) below 0.5 - margin
    flip_margin: float = 0.2
    rule: str = "paper"  # paper | confident_learning | ensemble (see RULES)

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"unknown Stage 2 rule {self.rule!r}; one of {sorted(RULES)}")


@dataclass
class ShardFilterSummary:
    shard: int
    pairs: int
    statuses: dict[str, int]
    reasons: dict[str, int]
    seconds: float
    reused: bool = False


def shard_part(lake: Lake, shard: int):
    return lake.table_dir(TABLE) / f"{shard_key(shard)}.parquet"


def _input_signature(lake: Lake, settings: FilterSettings) -> str:
    """What the decisions depend on besides the shard: the rule, the settings and the input files."""
    h = hashlib.md5((sql_files.load(EVIDENCE) + sql_files.load(RULES[settings.rule])).encode())
    if settings.rule == "confident_learning":  # its flags come from this code and cleanlab's version
        from importlib.metadata import version

        import synpref.filtered.confident_learning as cl

        h.update(Path(cl.__file__).read_bytes() + version("cleanlab").encode())
    h.update(repr(sorted(asdict(settings).items())).encode())
    for table in ("silver_pairs", "pool_scores", "silver_labels", "gold_pairs"):
        for f in lake.table_files(table):
            h.update(file_stamp(f).encode())
    return h.hexdigest()


def filter_shard(lake: Lake, shard: int, settings: FilterSettings, n_shards: int = N_SHARDS,
                 duck: DuckSettings = DuckSettings(), force: bool = False,
                 log=lambda msg: None) -> ShardFilterSummary:
    """Decide every pool pair of `shard`; reused when nothing it depends on has changed."""
    manifest = f"{TABLE}/{shard_key(shard)}"
    signature = _input_signature(lake, settings)
    done = lake.read_manifest(manifest)
    if not force and done and done["signature"] == signature and shard_part(lake, shard).exists():
        log(f"{shard_key(shard)}: filtered_pairs up to date; reused")
        return ShardFilterSummary(**{**done["summary"], "reused": True})
    if not lake.has_table("silver_pairs"):
        raise FileNotFoundError(f"silver_pairs is empty under {lake.root}: build the pool first")
    start = time.perf_counter()
    with stage_connection(lake, duck) as con:
        _inputs(con, lake, shard, n_shards, settings)
        part = shard_part(lake, shard)
        with atomic_path(part) as tmp:
            con.execute(f"copy (select f.pair_id, e.source, f.status, f.reason, f.noise_score, e.p_best, "
                        f"e.p_best_spread, e.p_gold, e.judge_verdict, e.label_issue, e.label_quality, "
                        f"e.human_flipped is not null as human_verified, f.rule, {shard} as shard, "
                        f"{n_shards} as n_shards, m.*, now() as filtered_at "
                        f"from ({sql_files.load(RULES[settings.rule])}) as f join evidence as e using (pair_id), "
                        f"models as m order by pair_id) "
                        f"to {lit(tmp)} (format parquet, compression zstd)")
            statuses = dict(con.execute(f"select status, count(*) from read_parquet({lit(tmp)}) group by 1").fetchall())
            reasons = dict(con.execute(f"select reason, count(*) from read_parquet({lit(tmp)}) group by 1 "
                                       f"order by 2 desc").fetchall())
            (pool,) = con.execute("select count(*) from pool").fetchone()
            if sum(statuses.values()) != pool:
                raise AssertionError(f"{shard_key(shard)}: {pool} pool pairs but {sum(statuses.values())} decisions")
    summary = ShardFilterSummary(shard=shard, pairs=pool, statuses={s: statuses.get(s, 0) for s in STATUSES},
                                 reasons=reasons, seconds=round(time.perf_counter() - start, 3))
    lake.write_manifest(manifest, {"signature": signature, "summary": asdict(summary)})
    log(f"{shard_key(shard)}: {pool:,} pairs, " + ", ".join(f"{v:,} {k}" for k, v in summary.statuses.items()))
    return summary


def _inputs(con, lake: Lake, shard: int, n_shards: int, settings: FilterSettings) -> None:
    """The temp views filtered_pairs.sql reads, for this shard; every pool pair must be scored."""
    from synpref.filtered.stage2 import pool_scores_part

    in_shard = f"{shard_sql(n_shards)} = {int(shard)}"
    scores = pool_scores_part(lake, shard)
    if not scores.exists():
        raise FileNotFoundError(f"{shard_key(shard)} has no pool_scores: score the shard before filtering it")
    con.execute(f"create temp table pool as select pair_id, source from silver_pairs where {in_shard}")
    con.execute(f"create temp table scores as select * from read_parquet({lit(scores)})")
    ((missing, example),) = con.execute("select count(*), any_value(pair_id) from pool "
                                        "anti join scores using (pair_id)").fetchall()
    if missing:
        raise ValueError(f"{shard_key(shard)}: {missing:,} pool pairs have no pool_scores (e.g. {example}); "
                         f"score the shard again")
    # cleanlab for its rule only; the others carry null label_issue / label_quality
    rows = con.execute("select pair_id, p_best from scores order by pair_id").fetchall() \
        if settings.rule == "confident_learning" else []
    pair_ids, p_best = [r[0] for r in rows], [r[1] for r in rows]
    issue, quality = label_issues(p_best) if rows else ([], [])
    label_table = pa.table({"pair_id": pa.array(pair_ids, pa.string()), "label_issue": pa.array(issue, pa.bool_()),
                            "label_quality": pa.array(quality, pa.float64())})
    con.register("label_issues_arrow", label_table)
    con.execute("create temp table label_issues as select * from label_issues_arrow")
    con.unregister("label_issues_arrow")
    con.execute("create temp table models as select any_value(best_model) as best_model, "
                "any_value(best_version) as best_version, any_value(gold_model) as gold_model, "
                "any_value(gold_version) as gold_version from scores")
    labels = f"select pair_id, verdict from silver_labels where {in_shard}" if lake.has_table("silver_labels") \
        else "select null::varchar as pair_id, null::varchar as verdict where false"
    con.execute(f"create temp view judge_verdicts as {labels}")
    human = f"select pair_id, flipped from gold_pairs where {in_shard}" if lake.has_table("gold_pairs") \
        else "select null::varchar as pair_id, null::boolean as flipped where false"
    con.execute(f"create temp view human_verdicts as {human}")
    con.execute(f"create temp view evidence as {sql_files.load(EVIDENCE)}")
    con.execute(f"set variable recycle_flipped = {'true' if settings.recycle_flipped else 'false'}")
    con.execute(f"set variable flip_margin = {float(settings.flip_margin)}")
