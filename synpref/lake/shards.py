"""Pool shards: a fixed split of the pool by pair_id, the unit of every pool-wide stage.

A pair's shard is the first 32 bits of its pair_id (an MD5 hex digest, so uniform) modulo
the shard count. The same rule is written in Python and in SQL, so a stage can select one
shard's rows with a WHERE clause on any table that carries pair_id, whatever its layout:
each shard is processed on its own in bounded memory, and one shard's output is one
Parquet part written atomically, so a rerun skips finished shards.
"""

from __future__ import annotations

# Shards of the pool: the Dagster partitions of the pool-wide assets. Changing it
# re-partitions every pool-wide table, so it is a constant, not a run-time knob.
N_SHARDS = 8


def shard_of(pair_id: str, n_shards: int = N_SHARDS) -> int:
    return int(pair_id[:8], 16) % n_shards


def shard_sql(n_shards: int = N_SHARDS, column: str = "pair_id") -> str:
    """The SQL expression of shard_of over `column` (DuckDB)."""
    return f"(('0x' || left({column}, 8))::ubigint % {int(n_shards)})"


def shard_key(shard: int) -> str:
    return f"shard-{shard:03d}"


def shard_keys(n_shards: int = N_SHARDS) -> list[str]:
    return [shard_key(i) for i in range(n_shards)]


def parse_shard_key(key: str, n_shards: int = N_SHARDS) -> int:
    """The shard number of a partition key like 'shard-003'."""
    prefix, _, number = key.partition("-")
    if prefix != "shard" or not number.isdigit() or not 0 <= int(number) < n_shards:
        raise ValueError(f"not a shard key of {n_shards} shards: {key!r}")
    return int(number)
