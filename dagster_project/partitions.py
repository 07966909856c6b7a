"""Partitions: the pool's shards (synpref/shards.py), the unit of every pool-wide asset."""

import dagster as dg

from synpref.shards import shard_keys

pool_shards = dg.StaticPartitionsDefinition(shard_keys())
