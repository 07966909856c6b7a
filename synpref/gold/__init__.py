"""The gold layer: the annotation queue and page, human_labels (journal, import/export, annotators),
gold_pairs with annotator agreement, and Stage 1's rounds."""
