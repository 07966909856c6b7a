"""Cross-fitting: no pool pair is scored for a Stage 2 decision by a model that saw its label.

The pool is split into K folds by a seeded hash of `pair_id` (independent of the shard); fold
model k trains on the other folds with the round's recipe and scores fold k. With R repeats
(each its own fold hash) every pair is scored by R models that never saw it: `p_best` is their
mean, `p_best_spread` their standard deviation, `fold` the pair's fold in repeat 0. A model is
named after its fold and repeat (`fold-2-r0`) and lives under models/rm/ like any other, with the
pairs it trained on frozen in its `data/`, which is what the leak test reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from synpref.lake.duck import lit

MODEL_SCORES = "pool_model_scores"  # each Stage 2 model's scores per shard, in rm_predictions' form
N_FOLDS = 5  # the pipeline's K: the fold models' Dagster partitions (fold-0 ... fold-4)
N_REPEATS = 3  # members per pair: repeated K-fold splits, each with its own hash


@dataclass(frozen=True)
class CrossFitSettings:
    folds: int = N_FOLDS
    repeats: int = N_REPEATS

    def __post_init__(self):
        if self.folds < 2:
            raise ValueError(f"cross-fitting needs at least 2 folds, not {self.folds}")
        if self.repeats < 1:
            raise ValueError(f"cross-fitting needs at least 1 repeat, not {self.repeats}")


def fold_sql(folds: int, repeat: int = 0, column: str = "pair_id") -> str:
    """The fold of `column` (a pair_id) in a repeat, as a DuckDB expression."""
    return f"(('0x' || left(md5({column} || ':fold:{int(repeat)}'), 8))::ubigint % {int(folds)})"


def fold_of(pair_id: str, folds: int, repeat: int = 0) -> int:
    import hashlib

    return int(hashlib.md5(f"{pair_id}:fold:{int(repeat)}".encode()).hexdigest()[:8], 16) % folds


def fold_key(fold: int) -> str:
    return f"fold-{fold}"


def fold_keys(folds: int = N_FOLDS) -> list[str]:
    return [fold_key(k) for k in range(folds)]


def parse_fold_key(key: str, folds: int = N_FOLDS) -> int:
    prefix, _, number = key.partition("-")
    if prefix != "fold" or not number.isdigit() or not 0 <= int(number) < folds:
        raise ValueError(f"not a fold key of {folds} folds: {key!r}")
    return int(number)


def member_name(fold: int, repeat: int) -> str:
    return f"fold-{fold}-r{repeat}"


def member_training_sql(pairs_sql: str, fold: int, repeat: int, folds: int) -> str:
    """The training pairs of fold model (fold, repeat): the round's pairs outside that fold."""
    return f"select * from ({pairs_sql.strip().rstrip(';')}) as pairs where {fold_sql(folds, repeat)} <> {int(fold)}"


def manifest_name(fold: int) -> str:
    return f"crossfit/{fold_key(fold)}"


def record_members(lake, fold: int, members: list[dict], recipe: dict) -> None:
    """What the fold's models are (model, version, repeat) and how they were trained (`recipe`:
    backbone and training settings), for pool_scores to use."""
    lake.write_manifest(manifest_name(fold), {"fold": fold, "members": members, "recipe": recipe})


def member_refs(lake, folds: int = N_FOLDS) -> tuple[CrossFitSettings, list[tuple[int, int, object]]]:
    """The cross-fitting settings and (fold, repeat, ModelRef) of every fold model, as the
    fold_reward_model asset recorded them; an error if a fold is missing or the folds disagree."""
    from synpref.rm import rm_models

    members, repeats, recipes = [], set(), set()
    for k in range(folds):
        done = lake.read_manifest(manifest_name(k))
        if not done:
            raise LookupError(f"no fold models for {fold_key(k)}: materialise fold_reward_model for every fold")
        repeats.add(len(done["members"]))
        recipes.add(json.dumps(done.get("recipe"), sort_keys=True))
        members += [(k, m["repeat"], rm_models.resolve(lake, m["model"], m["version"])) for m in done["members"]]
    if len(repeats) != 1 or len(recipes) != 1:
        raise LookupError(f"the folds were trained differently ({len(repeats)} repeat counts, {len(recipes)} "
                          f"recipes): materialise fold_reward_model for every fold with the same config")
    return CrossFitSettings(folds, repeats.pop()), members


def members_version(members) -> str:
    """One short label for a set of fold models (which versions scored a part)."""
    import hashlib

    key = ",".join(f"{ref.name}:{ref.version}" for _, _, ref in sorted(members, key=lambda m: m[2].name))
    return hashlib.md5(key.encode()).hexdigest()[:10]


def _parts(members, settings: CrossFitSettings, shard: int) -> list[tuple[object, list[tuple[int, int]], str]]:
    """(model, its (fold, repeat)s, its pool_model_scores part label) for the shard: one part per model
    (one model may hold several folds: the in-sample baseline), labelled with the folds it holds."""
    from synpref.lake.shards import shard_key

    by_model: dict[tuple[str, str], tuple] = {}
    for k, r, ref in members:
        by_model.setdefault((ref.name, ref.version), (ref, []))[1].append((int(k), int(r)))
    return [(ref, folds, f"{shard_key(shard)}.oof-{'+'.join(f'{k}r{r}' for k, r in sorted(folds))}of{settings.folds}")
            for ref, folds in by_model.values()]


def oof_scores_sql(lake, shard: int, members, settings: CrossFitSettings) -> str:
    """Each pair of the shard with its out-of-fold p from every repeat: the member of repeat r
    that scores a pair is the one whose fold is the pair's fold in repeat r (its part holds
    only those pairs, see score_out_of_fold)."""
    from synpref.rm.rm_predictions import part_path

    selects = []
    for ref, folds, label in _parts(members, settings, shard):
        path = part_path(lake, ref, "silver_pairs", label, MODEL_SCORES)
        for k, r in folds:
            selects.append(f"select pair_id, p_chosen, {k} as fold, {r} as repeat from read_parquet({lit(path)}) "
                           f"where {fold_sql(settings.folds, r)} = {k}")
    return " union all ".join(selects)


def score_out_of_fold(lake, shard: int, members, settings: CrossFitSettings, make_scorer, log=lambda msg: None,
                      n_shards: int | None = None, chunk_pairs: int = 2048, con=None) -> int:
    """Each fold model scores only the shard's pairs of its own fold (pairs it never trained
    on), one labelled pool_model_scores part per (model, shard); returns the pairs scored now."""
    from synpref.rm.rm_predictions import score_shard
    from synpref.lake.shards import N_SHARDS, shard_key

    scored = 0
    for ref, folds, label in _parts(members, settings, shard):
        where = " or ".join(f"{fold_sql(settings.folds, r)} = {k}" for k, r in folds)
        summary = score_shard(lake, ref, shard, lambda ref=ref: make_scorer(ref), log=log,
                              n_shards=n_shards or N_SHARDS, chunk_pairs=chunk_pairs, where=where, label=label,
                              con=con, table=MODEL_SCORES)
        scored += 0 if summary.skipped else summary.rows
        log(f"{shard_key(shard)}: {summary.rows:,} held-out pairs of {ref.name} {ref.version} "
            f"{'already scored' if summary.skipped else 'scored'}")
    return scored
