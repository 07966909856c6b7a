"""Quarantine reason codes: the closed set every quarantine row draws from."""

# Ingest (per record, or per file where the file itself is the problem).
INVALID_JSON = "invalid_json"
INVALID_UTF8 = "invalid_utf8"
INVALID_UNICODE = "invalid_unicode"  # valid UTF-8/JSON, but a string no UTF-8 column can hold (lone surrogate)
NOT_AN_OBJECT = "not_an_object"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
NULL_CONTENT = "null_content"
FIELD_TOO_LARGE = "field_too_large"
UNKNOWN_ROLE = "unknown_role"
INVALID_LABEL = "invalid_label"
BAD_TRANSCRIPT = "bad_transcript"
BAD_CONVERSATION = "bad_conversation"
EMPTY_FILE = "empty_file"
TRUNCATED_FILE = "truncated_file"
UNMAPPABLE = "unmappable_record"  # the mapper failed in a way no rule foresaw: a bug to report, not a crash
CORRUPT_DATA = "corrupt_data"  # a damaged block of a file (a Parquet row group): its rows cannot be read
INVALID_CSV = "invalid_csv"  # a CSV row whose fields do not match the header
NO_PAIR = "no_pair"  # the source's SQL returned no row for the record
EXCLUDED = "excluded_by_source"  # the source's SQL sent it to quarantine with a reason of its own (in the detail)
TIE = "tie"  # the record's responses are rated equal: no preference to learn from

# Silver (decided in sql/silver_decisions.sql).
EMPTY_RESPONSE = "empty_response"
IDENTICAL_RESPONSES = "identical_responses"
CONVERSATION_MISMATCH = "conversation_mismatch"
CONTAMINATED = "contaminated"
DUPLICATE = "duplicate"

INGEST_REASONS = frozenset({
    INVALID_JSON, INVALID_UTF8, INVALID_UNICODE, NOT_AN_OBJECT, MISSING_FIELD, WRONG_TYPE, NULL_CONTENT,
    FIELD_TOO_LARGE, UNKNOWN_ROLE, INVALID_LABEL, BAD_TRANSCRIPT, BAD_CONVERSATION,
    EMPTY_FILE, TRUNCATED_FILE, CORRUPT_DATA, UNMAPPABLE, INVALID_CSV, NO_PAIR, TIE, EXCLUDED,
})
SILVER_REASONS = frozenset({
    EMPTY_RESPONSE, IDENTICAL_RESPONSES, CONVERSATION_MISMATCH, CONTAMINATED, DUPLICATE,
})
ALL_REASONS = INGEST_REASONS | SILVER_REASONS
