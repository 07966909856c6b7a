"""The raw layer: the sources file, record streams, the source SELECTs (presets in sql/sources/)
and ingest (raw_pairs, ingest_quarantine)."""
