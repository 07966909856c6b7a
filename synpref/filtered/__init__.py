"""The filtered layer: Stage 2 (pool_scores, filtered_pairs with confident learning) and the curated export."""
