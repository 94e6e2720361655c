"""A run: its parameters, its directory, the context the stages share, the pipeline."""
