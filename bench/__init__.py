"""Benchmarks: llmkit side by side with its baselines, as ratios measured in one run."""
