"""Catastrophic forgetting (`fraudtune forgetting`): run.py measures base vs fine-tuned on the five categories,
probes.py holds the measurements (log-likelihood multiple choice, generation, perplexity), strategies.py trains
and compares the prevention strategies (`fraudtune forgetting strategies`)."""
