"""The shard rule: Python and SQL agree, and shards split the pool evenly and completely."""

import hashlib

import duckdb
import pytest

from synpref.lake.shards import N_SHARDS, parse_shard_key, shard_key, shard_keys, shard_of, shard_sql


def test_python_and_sql_agree_and_split_evenly():
    ids = [hashlib.md5(str(i).encode()).hexdigest() for i in range(4000)]
    con = duckdb.connect()
    con.execute("create table p as select unnest(?) as pair_id", [ids])
    in_sql = dict(con.execute(f"select pair_id, {shard_sql()} from p").fetchall())
    assert in_sql == {i: shard_of(i) for i in ids}
    counts = [list(in_sql.values()).count(s) for s in range(N_SHARDS)]
    assert sum(counts) == len(ids) and min(counts) > 0.8 * len(ids) / N_SHARDS


def test_shard_keys_round_trip():
    assert shard_keys(3) == ["shard-000", "shard-001", "shard-002"]
    assert [parse_shard_key(k) for k in shard_keys()] == list(range(N_SHARDS))
    assert shard_key(5) == "shard-005"
    for bad in ("shard-x", "part-001", f"shard-{N_SHARDS:03d}"):
        with pytest.raises(ValueError, match="shard key"):
            parse_shard_key(bad)
