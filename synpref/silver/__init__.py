"""The silver layer: silver_pairs (SQL), pair attributes, pair embeddings and their vector store,
error-driven retrieval, the judge queue and the LLM judges' silver_labels."""
