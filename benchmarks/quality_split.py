"""The quality benchmark's data: a seeded split of real silver pairs, and label flips injected into the pool.

From one lake's `silver_pairs` (the real pairs, original labels), each pair goes to exactly one of
  - `gold`: the human-verified set (its original, human-given label),
  - `test`: held out, never written into any benchmark lake, only scored at the end,
  - `pool`: Stage 2's input, where a seeded, exact share of the pairs gets chosen/rejected swapped.
The order is a hash of (pair_id, seed), so a split is the same on every machine and the flips of
a lower noise level are a subset of those of a higher one (the same pool order, cut shorter).

A benchmark lake is then made the way the pipeline makes any lake: its `raw_pairs` are the gold and
pool rows as raw records (flipped ones swapped), and the project's silver stage hashes them into
`silver_pairs`, so a flipped pair gets the pair_id of what it now says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from synpref.lake.duck import lit  # noqa: E402
from synpref.lake import Lake, atomic_path

SPLITS = ("gold", "test", "pool")


@dataclass(frozen=True)
class SplitSizes:
    gold: int = 400
    test: int = 700
    pool: int | None = None  # None: every pair not in gold or test


def _order(seed: int) -> str:
    return f"('0x' || left(md5(pair_id || ':split:{int(seed)}'), 15))::ubigint"


def split_pairs(con: duckdb.DuckDBPyConnection, silver_glob: str, sizes: SplitSizes, seed: int) -> None:
    """Temp table `split` on con: pair_id, raw_id, split, pool_rank (the pool's flip order)."""
    (total,) = con.execute(f"select count(*) from read_parquet({lit(silver_glob)})").fetchone()
    pool = total - sizes.gold - sizes.test if sizes.pool is None else sizes.pool
    if min(sizes.gold, sizes.test, pool) < 1 or sizes.gold + sizes.test + pool > total:
        raise ValueError(f"cannot split {total} pairs into gold {sizes.gold}, test {sizes.test}, pool {pool}")
    con.execute(f"""
        create or replace temp table split as
        with ranked as (
            select pair_id, raw_id, row_number() over (order by {_order(seed)}, pair_id) as r
            from read_parquet({lit(silver_glob)})
        ), assigned as (
            select pair_id, raw_id,
                   case when r <= {sizes.gold} then 'gold'
                        when r <= {sizes.gold + sizes.test} then 'test'
                        when r <= {sizes.gold + sizes.test + pool} then 'pool' end as split
            from ranked
        )
        select pair_id, raw_id, split,
               if(split = 'pool', row_number() over (partition by split order by {_order(seed + 1)}, pair_id),
                  null) as pool_rank
        from assigned where split is not null""")


def flip_count(pool_pairs: int, rate: float) -> int:
    """Pairs to flip for an exact injected rate (rounded half up)."""
    if not 0 <= rate < 1:
        raise ValueError(f"flip rate must be in [0, 1), not {rate}")
    return int(pool_pairs * rate + 0.5)


def write_noisy_raw(con: duckdb.DuckDBPyConnection, raw_glob: str, lake: Lake, rate: float) -> int:
    """The gold and pool rows as the lake's raw_pairs, the first flip_count pool pairs swapped.
    Returns the number of flipped pairs. Needs the temp table `split`."""
    (pool,) = con.execute("select count(*) from split where split = 'pool'").fetchone()
    flips = flip_count(pool, rate)
    part = lake.table_dir("raw_pairs") / "benchmark.parquet"
    with atomic_path(part) as tmp:
        # rejected_conversation is dropped: silver already checked it matches the conversation
        con.execute(f"""
            copy (select r.raw_id, r.source, r.conversation,
                         if(f.flipped, r.rejected, r.chosen) as chosen,
                         if(f.flipped, r.chosen, r.rejected) as rejected,
                         null::struct(role varchar, content varchar)[] as rejected_conversation,
                         r.source_file, r.source_row
                  from read_parquet({lit(raw_glob)}) as r
                  join (select raw_id, coalesce(pool_rank <= {flips}, false) as flipped from split
                        where split in ('gold', 'pool')) as f using (raw_id)
                  order by r.raw_id)
            to {lit(tmp)} (format parquet, compression zstd)""")
    return flips


def write_test_set(con: duckdb.DuckDBPyConnection, silver_glob: str, out: Path) -> int:
    """The held-out pairs (original labels) as a Parquet file outside every benchmark lake."""
    with atomic_path(out) as tmp:
        con.execute(f"copy (select s.pair_id, s.source, s.conversation, s.chosen, s.rejected "
                    f"from read_parquet({lit(silver_glob)}) as s join split as t using (pair_id) "
                    f"where t.split = 'test' order by s.pair_id) to {lit(tmp)} (format parquet)")
    return con.execute(f"select count(*) from read_parquet({lit(out)})").fetchone()[0]


def truth_sql(lake: Lake, base_silver_glob: str) -> str:
    """Each pair of a benchmark lake's silver_pairs with its split and whether its label was flipped
    (the base pair's chosen is now its rejected); joined back to the base through raw_id."""
    return f"""
        select s.pair_id, t.split, b.pair_id as base_pair_id, s.chosen <> b.chosen as injected_flip
        from read_parquet({lit(lake.table_glob('silver_pairs'))}) as s
        join read_parquet({lit(base_silver_glob)}) as b using (raw_id)
        join split as t on t.pair_id = b.pair_id"""
