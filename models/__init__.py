"""Everything that touches a neural model, free of Dagster (reward model, scorer, annotator, embedder).

Filled by the reward-model, annotation and retrieval stages; nothing here imports Dagster.
"""
