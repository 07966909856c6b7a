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
