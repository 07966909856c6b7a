-- The columns the ingest_quarantine suite validates.
select raw_id, reason, detail, source_file, source_row
from ingest_quarantine
