"""The raw layer: the sources file, format readers, shape mappers and ingest (raw_pairs, ingest_quarantine)."""
