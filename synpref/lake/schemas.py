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
    # the model is a random test LLM (its config.json says so): the attributes are noise.
    # Null in parts written before the column existed.
    ("test_model", pa.bool_()),
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
    ("eval_set", pa.string()),  # gold | holdout, or an outside set's name (synpref eval: its file's stem)
    # overall | source | task_category | objectivity | confidence_bin | checkpoint; an outside set: overall,
    # confidence_bin and the pairs file's column it was broken down by (synpref eval --by)
    ("breakdown", pa.string()),
    ("group_value", pa.string()),
    ("pairs", pa.int64()),
    ("accuracy", pa.float64()),
    ("mean_margin", pa.float64()),  # reward_chosen - reward_rejected
    ("mean_p_chosen", pa.float64()),
    ("mean_confidence", pa.float64()),  # max(p_chosen, 1 - p_chosen)
    ("brier", pa.float64()),  # mean (1 - p_chosen)^2
    ("ece", pa.float64()),  # expected calibration error over 5 confidence bins
    ("evaluated_at", pa.timestamp("us", tz="UTC")),
    ("pairs_file", pa.string()),  # an outside set's pairs file (its name); null for gold and holdout
])

# Stage 1: what each round's error-driven retrieval found, and where each pair went.
STAGE1_RETRIEVALS = pa.schema([
    ("round", pa.string()),
    ("query_pair_id", pa.string()),  # the gold pair the neighbours were retrieved around
    ("p_query", pa.float64()),  # the round's RM: probability it ranks the gold pair right
    ("k", pa.int32()),  # neighbours asked for: 8 when p <= 0.5, else ceil(8 (1 - p))
    ("pair_id", pa.string()),
    ("rank", pa.int32()),
    ("distance", pa.float64()),
    ("destination", pa.string()),  # humans | judges | already_queued (a neighbour of an earlier query)
])

# Stage 1: one row per round, the figures plotted across rounds.
STAGE1_ROUNDS = pa.schema([
    ("round", pa.string()),
    ("round_number", pa.int32()),
    ("model", pa.string()),
    ("model_version", pa.string()),
    ("gold_accuracy", pa.float64()),  # of the round's RM, on the gold pairs it was not trained on
    ("gold_pairs_before", pa.int64()),
    ("gold_pairs_after", pa.int64()),
    ("queries", pa.int64()),  # gold pairs retrieved around (k > 0)
    ("wrong_or_unsure", pa.int64()),  # gold pairs with p <= 0.5
    ("retrieved", pa.int64()),  # distinct new pairs found
    ("to_humans", pa.int64()),
    ("to_judges", pa.int64()),
    ("judged_agree", pa.int64()),
    ("judged_flipped", pa.int64()),
    ("judged_undecided", pa.int64()),
    ("human_agreement", pa.float64()),  # the round's gold pairs: mean share of annotators with the majority
    ("human_judge_agreement", pa.float64()),  # on pairs both humans and judges decided; null if none
    ("simulated_humans", pa.bool_()),
    ("finished_at", pa.timestamp("us", tz="UTC")),
])

# Stage 2: each pool pair's scores from the current best RM and the gold RM.
POOL_SCORES = pa.schema([
    ("pair_id", pa.string()),
    ("shard", pa.int32()),
    ("fold", pa.int32()),  # the pair's fold in repeat 0: fold model `fold-<fold>-r0` scored it
    ("p_best", pa.float64()),  # mean out-of-fold p over the fold models that never saw the pair
    ("p_best_spread", pa.float64()),  # their standard deviation (0 with one repeat)
    ("members", pa.int32()),  # how many fold models scored the pair (the repeats)
    ("p_gold", pa.float64()),
    ("needs_judges", pa.bool_()),  # p_best <= 0.5: the best RM does not confirm the label
    ("best_model", pa.string()),
    ("best_version", pa.string()),
    ("gold_model", pa.string()),
    ("gold_version", pa.string()),
])
