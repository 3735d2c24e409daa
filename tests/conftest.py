"""Shared fixtures: the tiny random Llama with SmolLM2's real tokenizer, tiny configs, a trained tiny run."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from fraudtune.config import RunConfig, load_config
from fraudtune.paths import REPO_ROOT

TINY_CONFIG = REPO_ROOT / "configs" / "tiny.yaml"

# The tiny model gains nothing from a second thread, and tests often share the machine with real runs.
torch.set_num_threads(1)


def tiny_config(*overrides: str) -> RunConfig:
    """configs/tiny.yaml with `key=value` overrides, as `--set` would give them."""
    return load_config(TINY_CONFIG, list(overrides))


@pytest.fixture
def tiny_cfg() -> RunConfig:
    return tiny_config()


@pytest.fixture(scope="session")
def tokenizer():
    from fraudtune.modeling.loading import load_tokenizer

    return load_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir():
    """2-layer random Llama with SmolLM2's vocabulary, saved like a real base model."""
    from fraudtune.modeling.loading import tiny_model_dir as build

    return build(tiny_config().model)


@pytest.fixture(scope="session")
def trained_tiny_run(tmp_path_factory) -> Path:
    """One tiny run (generate -> train) shared by the tests that only read it."""
    from fraudtune.train import train

    run_dir = tmp_path_factory.mktemp("tiny-run")
    train(tiny_config(), run_dir)
    return run_dir


@pytest.fixture
def tiny_run_copy(trained_tiny_run, tmp_path) -> Path:
    """A private copy of the trained tiny run, for tests that write into it."""
    target = tmp_path / "run"
    shutil.copytree(trained_tiny_run, target)
    return target


SLOW_TIMEOUT_S = 3600  # a real-model test trains or scores for minutes on two CPU cores


def pytest_collection_modifyitems(config, items):
    """`slow` tests get a longer per-test timeout than the default run's (pyproject: timeout)."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TIMEOUT_S))
