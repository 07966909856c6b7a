"""Arrow schemas of the tables the Python stages write (the SQL stages' follow from SQL)."""

import pyarrow as pa

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
CONVERSATION = pa.list_(MESSAGE)

RAW_PAIRS = pa.schema([
    ("raw_id", pa.string()),
    ("source", pa.string()),
    ("conversation", CONVERSATION),
    ("chosen", pa.string()),
    ("rejected", pa.string()),
    # Only for shapes that carry two whole conversations, and only where it differs.
    ("rejected_conversation", CONVERSATION),
    ("source_file", pa.string()),
    ("source_row", pa.int64()),
])

INGEST_QUARANTINE = pa.schema([
    ("raw_id", pa.string()),
    ("source", pa.string()),
    ("source_file", pa.string()),
    ("source_row", pa.int64()),
    ("reason", pa.string()),
    ("detail", pa.string()),
    ("raw_text", pa.string()),
])

PAIR_ATTRIBUTES = pa.schema([
    ("pair_id", pa.string()),
    ("model", pa.string()),
    ("prompt_version", pa.string()),
    ("status", pa.string()),  # ok | failed
    ("task_category", pa.string()),
    ("objectivity", pa.string()),
    ("controversiality", pa.string()),
    ("desired_attributes", pa.list_(pa.string())),
    ("annotation_guideline", pa.string()),
    ("attempts", pa.int32()),
    ("error", pa.string()),  # why a failed pair failed; null when ok
    ("raw_output", pa.string()),
    ("annotated_at", pa.timestamp("us", tz="UTC")),
])

JUDGE_QUEUE = pa.schema([
    ("pair_id", pa.string()),
    ("origin", pa.string()),  # what queued it: a Stage 1 round's retrieval, Stage 2, a SQL query
    ("queued_at", pa.timestamp("us", tz="UTC")),
])

# One judge's answers on one pair; the cache of the judging stage.
JUDGE_VOTES = pa.schema([
    ("pair_id", pa.string()),
    ("judge", pa.string()),
    ("config_key", pa.string()),  # hash of what decides the answers (model, sampling, prompt, seed)
    ("model", pa.string()),
    ("prompt_version", pa.string()),
    ("samples", pa.int32()),
    ("shown_order", pa.string()),  # chosen_first | rejected_first
    ("answers", pa.list_(pa.string())),
    ("agree", pa.int32()),  # answers for the original chosen response
    ("flip", pa.int32()),
    ("invalid", pa.int32()),
    ("decision", pa.string()),  # agree | flipped | undecided
    ("confidence", pa.float64()),
    ("examples", pa.list_(pa.string())),  # pair_ids of the human-labelled examples shown
    ("error", pa.string()),
    ("judged_at", pa.timestamp("us", tz="UTC")),
])

MODEL_VOTE = pa.struct([
    ("judge", pa.string()), ("model", pa.string()), ("weight", pa.float64()), ("answers", pa.list_(pa.string())),
    ("agree", pa.int32()), ("flip", pa.int32()), ("invalid", pa.int32()), ("decision", pa.string()),
])

SILVER_LABELS = pa.schema([
    ("pair_id", pa.string()),
    ("verdict", pa.string()),  # agree (with the original label) | flipped | undecided
    ("confidence", pa.float64()),
    ("votes", pa.list_(MODEL_VOTE)),
    ("models", pa.list_(pa.string())),
    ("prompt_version", pa.string()),
    ("shown_order", pa.string()),
    ("merge", pa.string()),
    ("labelled_at", pa.timestamp("us", tz="UTC")),
])

# Pairs queued for human annotators; priority 0 comes first (objective, low controversy).
ANNOTATION_QUEUE = pa.schema([
    ("pair_id", pa.string()),
    ("origin", pa.string()),  # what queued it: a Stage 1 round ('round-1'), the CLI, a SQL query
    ("priority", pa.int32()),  # 3 x objectivity rank + controversiality rank (sql/annotation_queue.sql)
    ("queued_at", pa.timestamp("us", tz="UTC")),
])

# One human judgement per row, never updated: a correction is a newer row of the same annotator.
HUMAN_LABELS = pa.schema([
    ("label_id", pa.string()),  # unique per judgement: sealing or importing twice never doubles a row
    ("pair_id", pa.string()),
    ("annotator", pa.string()),
    ("choice", pa.string()),  # chosen | rejected | cannot_decide, relative to the pair's ORIGINAL label
    ("shown_order", pa.string()),  # chosen_first | rejected_first; null where the order is unknown
    ("comment", pa.string()),
    ("seconds", pa.float64()),  # time spent on the pair; null where unknown
    ("labelled_at", pa.timestamp("us", tz="UTC")),
    ("guideline_version", pa.string()),
    ("simulated", pa.bool_()),  # true for labels made by a program (e.g. from the demo's known truth)
    ("source", pa.string()),  # web | import:<mapping> | what append_labels was told
    ("recorded_at", pa.timestamp("us", tz="UTC")),  # when the row entered the lake
])

# A reward model's scores of pairs: one Parquet part per (model, version, pairs table, shard).
RM_PREDICTIONS = pa.schema([
    ("pair_id", pa.string()),
    ("pairs_table", pa.string()),  # the table the pairs were read from (silver_pairs, gold_pairs, holdout...)
    ("model", pa.string()),
    ("model_version", pa.string()),
    ("reward_chosen", pa.float64()),
    ("reward_rejected", pa.float64()),
    ("p_chosen", pa.float64()),  # sigmoid(reward_chosen - reward_rejected)
    ("scored_at", pa.timestamp("us", tz="UTC")),
])

# A reward model's accuracy on its evaluation pairs, overall and by group (one part per model version).
RM_EVAL = pa.schema([
    ("model", pa.string()),
    ("model_version", pa.string()),
    ("eval_set", pa.string()),  # gold | holdout
    ("breakdown", pa.string()),  # overall | source | task_category | objectivity | confidence_bin | checkpoint
    ("group_value", pa.string()),
    ("pairs", pa.int64()),
    ("accuracy", pa.float64()),
    ("mean_margin", pa.float64()),  # reward_chosen - reward_rejected
    ("mean_p_chosen", pa.float64()),
    ("mean_confidence", pa.float64()),  # max(p_chosen, 1 - p_chosen)
    ("brier", pa.float64()),  # mean (1 - p_chosen)^2
    ("ece", pa.float64()),  # expected calibration error over 5 confidence bins
    ("evaluated_at", pa.timestamp("us", tz="UTC")),
])
