"""The ROUGE-L novelty filter: the scorer, the exact pruned index, and dedup over files."""
