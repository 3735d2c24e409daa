"""fraudtune: teach a small instruct LLM an issuer's own fraud knowledge with LoRA, and measure whether it paid off."""

from __future__ import annotations

__version__ = "0.1.0"


def load(adapter_dir, **kwargs):
    """Load a trained adapter for prediction: `fraudtune.load(dir).predict(transactions)`."""
    from fraudtune.predict import load as _load

    return _load(adapter_dir, **kwargs)
