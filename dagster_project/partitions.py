"""Partitions: the pool's shards (synpref/lake/shards.py), the unit of every pool-wide asset."""

import dagster as dg

from synpref.rm.crossfit import fold_keys
from synpref.lake.shards import shard_keys

pool_shards = dg.StaticPartitionsDefinition(shard_keys())

# Stage 1 rounds: round-1, round-2, ... added as they start (`synpref round`, or the UI).
STAGE1_ROUNDS = "stage1_rounds"
stage1_rounds = dg.DynamicPartitionsDefinition(name=STAGE1_ROUNDS)

# Stage 2's cross-fitting: one fold model set per fold of the pool (synpref/rm/crossfit.py).
fold_partitions = dg.StaticPartitionsDefinition(fold_keys())
