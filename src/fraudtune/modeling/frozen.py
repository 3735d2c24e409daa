"""Adapters on the top layers only (lora.top_layers): the frozen lower layers run once per example, not per epoch.

Below the first adapted layer nothing trains, so the hidden state entering it is the same function of the input at
every epoch. It is computed once (no gradient, length-sorted batches) and kept with the example; each training
step then runs only the adapted layers, from that state. The loss and its gradients equal those of the full
forward pass (tests check it): the same weights see the same inputs, only the frozen work is not repeated.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from tqdm import tqdm

from fraudtune.modeling.inference import decoder_and_head
from fraudtune.modeling.tokens import right_padded


def first_trainable_layer(model: Any) -> int:
    """Index of the lowest decoder layer holding a trainable parameter; 0 when anything below the layers trains
    (embeddings), the layer count when none does."""
    decoder, _ = decoder_and_head(model)
    if any(p.requires_grad for p in decoder.embed_tokens.parameters()):
        return 0
    for index, layer in enumerate(decoder.layers):
        if any(p.requires_grad for p in layer.parameters()):
            return index
    return len(decoder.layers)


@contextmanager
def layer_range(decoder: Any, start: int, end: int | None = None) -> Iterator[None]:
    """The decoder with only layers[start:end] in its stack, for the duration of the block."""
    layers = decoder.layers
    decoder.layers = torch.nn.ModuleList(list(layers)[start:end])
    try:
        yield
    finally:
        decoder.layers = layers


@torch.no_grad()
def lower_states(
    model: Any, sequences: list[list[int]], split: int, pad_id: int, batch_size: int = 16, progress: bool = False
) -> list[torch.Tensor]:
    """For each token sequence, the hidden state entering layer `split` (seq_len, hidden), unpadded."""
    decoder, _ = decoder_and_head(model)
    captured: dict[str, torch.Tensor] = {}
    hook = decoder.norm.register_forward_pre_hook(lambda _module, args: captured.__setitem__("h", args[0]))
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    states: list[torch.Tensor | None] = [None] * len(sequences)
    was_training = model.training
    model.eval()
    device = decoder.embed_tokens.weight.device
    # base weights frozen in bf16 (train.freeze_in_bf16) run under autocast, as in the training step
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=decoder.embed_tokens.weight.dtype == torch.bfloat16)
    try:
        with layer_range(decoder, 0, split), autocast:
            batches = range(0, len(order), batch_size)
            for start in tqdm(batches, desc="frozen layers", unit="batch", disable=not progress):
                chunk = order[start : start + batch_size]
                ids, mask = right_padded([sequences[i] for i in chunk], pad_id)
                decoder(input_ids=ids.to(device), attention_mask=mask.to(device))
                for row, i in enumerate(chunk):
                    # kept in the dtype the layers produced: under bf16 the residual stream is bf16 from the
                    # embeddings up, so the cache equals the uncached state and takes half the memory of fp32
                    states[i] = captured["h"][row, : len(sequences[i])].cpu().clone()
    finally:
        hook.remove()
        model.train(was_training)
    return states  # type: ignore[return-value]


def upper_hidden(
    model: Any, hidden: torch.Tensor, attention_mask: torch.Tensor | None, split: int, **kwargs: Any
) -> torch.Tensor:
    """The decoder's last hidden state (final norm applied) from the state entering layer `split` (`kwargs`:
    position ids and packed row lengths of a packed batch)."""
    decoder, _ = decoder_and_head(model)
    with layer_range(decoder, split):
        return decoder(inputs_embeds=hidden, attention_mask=attention_mask, **kwargs).last_hidden_state
