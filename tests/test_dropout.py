"""FastDropout: inverted dropout with p as configured (to 2/65,536), each random slice used fairly."""

from __future__ import annotations

import math

import pytest
import torch

from fraudtune.modeling.dropout import LANES, FastDropout, use_fast_dropout


def test_drop_rate_scale_and_every_slice_fair():
    torch.manual_seed(0)
    n = 4_000_000
    for p in (0.05, 0.1, 0.3):
        layer = FastDropout(p).train()
        y = layer(torch.ones(n))
        rounded = 2 * round(p * LANES / 2) / LANES
        sigma = math.sqrt(p * (1 - p) / (n / 4))
        for lane in range(4):  # each 16-bit slice of the random words drops at the same rate
            assert (y[lane::4] == 0).float().mean().item() == pytest.approx(rounded, abs=5 * sigma)
        assert y[y != 0].unique().tolist() == pytest.approx([1 / (1 - rounded)])
        assert y.mean().item() == pytest.approx(1.0, abs=0.003)


def test_masks_are_fresh_seeded_and_differentiable():
    layer = FastDropout(0.5).train()
    x = torch.ones(3, 1001, requires_grad=True)  # not a multiple of 4 elements
    torch.manual_seed(1)
    a = layer(x)
    b = layer(x)
    torch.manual_seed(1)
    assert torch.equal(layer(x), a) and not torch.equal(a, b)
    a.sum().backward()
    assert torch.equal(x.grad, a.detach())  # d(x * mask)/dx = mask
    layer.eval()
    assert layer(x) is x
    with pytest.raises(ValueError):
        FastDropout(1.0)


def test_a_bf16_input_gets_a_bf16_mask():
    y = FastDropout(0.1).train()(torch.ones(64, 64, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16 and 0 < (y == 0).sum() < 64 * 64


def test_lora_dropouts_are_replaced_in_a_peft_model(tiny_cfg):
    from fraudtune.train import build_model

    model, _ = build_model(tiny_cfg)
    fast = [m for m in model.modules() if isinstance(m, FastDropout)]
    assert fast and len(fast) == 2 * tiny_cfg.model.tiny_layers  # q_proj and v_proj of every layer
    assert not any(isinstance(m, torch.nn.Dropout) for m in model.modules())
    assert use_fast_dropout(model) == 0  # idempotent
