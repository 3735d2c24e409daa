"""Serving: `fraudtune serve` (app.py, batcher.py)."""
