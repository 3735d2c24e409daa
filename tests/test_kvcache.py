"""GrowingLayer: the same keys and values as transformers' DynamicLayer, without copying the cache per token."""

from __future__ import annotations

import copy

import torch
from transformers.cache_utils import DynamicLayer

from fraudtune.modeling.kvcache import MIN_SPARE, GrowingLayer, growing_cache


def _steps(layer, steps):
    out = []
    for k, v in steps:
        keys, values = layer.update(k, v)
        out.append((keys.clone(), values.clone()))
    return out


def _kv(batch, n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, n, 4, generator=g), torch.randn(batch, 3, n, 4, generator=g)


def test_growing_layer_matches_dynamic_layer_through_growth_copies_and_batch_changes():
    prompt = [_kv(1, 7, 0)]
    tokens = [_kv(1, 1, s) for s in range(1, MIN_SPARE + 40)]  # forces one reallocation
    grow, plain = GrowingLayer(), DynamicLayer()
    for a, b in zip(_steps(grow, prompt + tokens), _steps(plain, prompt + tokens), strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # a private copy for a batch of 3 (what evaluate does with the prefix cache), then more tokens
    grow3, plain3 = copy.deepcopy(grow), copy.deepcopy(plain)
    grow3.batch_repeat_interleave(3)
    plain3.batch_repeat_interleave(3)
    more = [_kv(3, 1, 100 + s) for s in range(5)] + [_kv(3, 4, 200)]
    for a, b in zip(_steps(grow3, more), _steps(plain3, more), strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # the copy never wrote into the original's buffer
    assert torch.equal(grow.keys, plain.keys) and grow.get_seq_length() == plain.get_seq_length()
    grow3.batch_select_indices(torch.tensor([2, 0]))
    plain3.batch_select_indices(torch.tensor([2, 0]))
    last = [_kv(2, 1, 300)]
    assert all(torch.equal(a[0], b[0]) for a, b in zip(_steps(grow3, last), _steps(plain3, last), strict=True))


def test_an_appended_token_is_written_in_place():
    layer = GrowingLayer()
    layer.update(*_kv(2, 10, 0))
    layer.update(*_kv(2, 1, 1))  # the first append allocates the buffer with room to spare
    before = layer.keys.data_ptr()
    for s in range(20):
        layer.update(*_kv(2, 1, 2 + s))
    assert layer.keys.data_ptr() == before and layer.get_seq_length() == 31


def test_growing_cache_replaces_the_model_full_attention_layers(tiny_cfg):
    from fraudtune.modeling.loading import load_base

    model, _ = load_base(tiny_cfg.model)
    cache = growing_cache(model)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    out = model(input_ids=ids, cache=cache, use_cache=True)
    assert out.cache.layers and all(isinstance(layer, GrowingLayer) for layer in out.cache.layers)


def test_generate_with_the_growing_cache_gives_the_default_answers(tiny_cfg):
    from fraudtune.modeling.loading import load_base
    from fraudtune.modeling.tokens import prompt_text

    model, tokenizer = load_base(tiny_cfg.model)
    chats = [[{"role": "user", "content": text}] for text in ("Is T-1 fraud?", "A much longer question about T-2 now.")]
    tokenizer.padding_side = "left"
    enc = tokenizer([prompt_text(c, tokenizer) for c in chats], return_tensors="pt", padding=True)
    kwargs = {"max_new_tokens": 300, "do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    default = model.generate(**enc, **kwargs)
    growing = model.generate(**enc, cache=growing_cache(model), **kwargs)
    assert default.shape[1] > enc["input_ids"].shape[1] + MIN_SPARE  # the buffer had to grow once
    assert torch.equal(default, growing)
