"""Padding-free training steps (train.pack_sequences): a batch's rows run as one sequence of their real tokens.

A random batch pads its rows to the longest. Every linear layer computes the padding, and attention grows with
the square of the padded width. Packed, the rows' real tokens are laid end to end in one row of the batch,
positions restart at each row, and attention runs row by row (causal, each row over its own tokens only), so
every row's numbers are those it gets alone. The total is rounded up to `multiple` tokens with a padding segment
of its own (its outputs are never read), so that the compiled layers see few distinct shapes.

The attention function is registered with transformers under ATTENTION; without `packed_lengths` (validation,
generation) it is transformers' own SDPA attention with the usual mask.
"""

from __future__ import annotations

from typing import Any

import torch

ATTENTION = "fraudtune_packed"


def register() -> None:
    """Make ATTENTION known to transformers (attention and mask functions); idempotent."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION, packed_attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def use_packing(model: Any) -> None:
    """Switch a model's attention to ATTENTION (a packed step passes packed_lengths; any other call is SDPA)."""
    register()
    model.set_attn_implementation(ATTENTION)


def is_packing(model: Any) -> bool:
    config = getattr(model, "config", None)
    return getattr(config, "_attn_implementation", None) == ATTENTION


@torch.compiler.disable  # a loop over this batch's row lengths: compiled, every batch would compile anew
def packed_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    packed_lengths: list[int] | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Causal attention per packed row; query (1, heads, total, dim), key/value (1, kv_heads, total, dim)."""
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    if packed_lengths is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    groups = query.shape[1] // key.shape[1]
    key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    out, start = [], 0
    for n in packed_lengths:
        end = start + n
        out.append(
            torch.nn.functional.scaled_dot_product_attention(
                query[:, :, start:end],
                key[:, :, start:end],
                value[:, :, start:end],
                dropout_p=dropout,
                is_causal=True,
                scale=scaling,
            )
        )
        start = end
    return torch.cat(out, dim=2).transpose(1, 2).contiguous(), None


def packed_inputs(
    attention_mask: torch.Tensor, values: torch.Tensor, fill: Any, multiple: int
) -> tuple[torch.Tensor, torch.Tensor, list[int], torch.Tensor]:
    """A right-padded batch's real positions end to end: (packed values (1, total, ...), position ids (1, total),
    segment lengths (the rows, then the rounding segment if any), the real-position mask (batch, width))."""
    real = attention_mask.bool()
    lengths = [int(n) for n in real.sum(dim=1).tolist()]
    total = sum(lengths)
    extra = -(-total // multiple) * multiple - total
    packed = values[real]
    if extra:
        pad = torch.full((extra, *packed.shape[1:]), fill, dtype=packed.dtype, device=packed.device)
        packed = torch.cat([packed, pad])
    segments = lengths + ([extra] if extra else [])
    positions = torch.cat([torch.arange(n, device=values.device) for n in segments])
    return packed.unsqueeze(0), positions.unsqueeze(0), segments, real
