"""Evaluation: the fine-tuned adapter against the prompted base model, a rules engine and gradient boosting.

metrics.py (pure numbers), quality.py (explanations), baselines.py, api.py (optional endpoint), llm.py (running
an LLM regime), testset.py, summary.py (eval.json records), render.py (eval.md), suite.py (`evaluate()`).
"""
