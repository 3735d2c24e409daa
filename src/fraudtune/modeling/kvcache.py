"""A key/value cache that appends in place.

transformers' DynamicLayer appends each new token with torch.cat, which copies the whole cache: a decoding step
over a 1,450-token prompt copies ~70 MB per row, and on the CPU that copy was 64% of generation time (profiled:
aten::cat, batch of 8 prompted-baseline prompts). GrowingLayer keeps the keys and values in a buffer with room
to spare and hands out views of its filled part, so a step writes one token and copies nothing; the buffer is
reallocated (with a quarter of spare room, at least 256 tokens) only when it is full. Everything else is
DynamicLayer's: batch_repeat_interleave / batch_select_indices / crop replace the tensors, and the next update
notices that they no longer view the buffer and rebuilds it.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

MIN_SPARE = 256


class GrowingLayer(DynamicLayer):
    """DynamicLayer whose appends write into a preallocated buffer instead of concatenating."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        filled = self.get_seq_length()
        end = filled + key_states.shape[-2]
        if filled == 0:  # the first fill (a prompt) is kept exactly: copies of a prefix cache stay small
            self.keys, self.values = key_states.contiguous(), value_states.contiguous()
            self._key_buffer, self._value_buffer = self.keys, self.values
            return self.keys, self.values
        if not self._views_buffer(key_states, end):
            self._grow(end + max(MIN_SPARE, end // 4))
        assert self._key_buffer is not None and self._value_buffer is not None
        self._key_buffer[:, :, filled:end] = key_states
        self._value_buffer[:, :, filled:end] = value_states
        self.keys, self.values = self._key_buffer[:, :, :end], self._value_buffer[:, :, :end]
        return self.keys, self.values

    def _views_buffer(self, key_states: torch.Tensor, end: int) -> bool:
        """Whether keys/values are still the head of the buffer and the buffer has room up to `end`."""
        kb, vb = self._key_buffer, self._value_buffer
        if kb is None or vb is None or self.keys is None or self.values is None:
            return False
        return (
            end <= kb.shape[-2]
            and kb.shape[:2] == key_states.shape[:2]
            and self.keys.data_ptr() == kb.data_ptr()
            and self.values.data_ptr() == vb.data_ptr()
            and self.keys.stride() == kb.stride()
            and self.values.stride() == vb.stride()
        )

    def _grow(self, capacity: int) -> None:
        assert self.keys is not None and self.values is not None
        filled = self.get_seq_length()
        buffers = []
        for current in (self.keys, self.values):
            shape = (*current.shape[:2], capacity, current.shape[-1])
            buffer = current.new_empty(shape)
            buffer[:, :, :filled] = current
            buffers.append(buffer)
        self._key_buffer, self._value_buffer = buffers
        self.keys, self.values = self._key_buffer[:, :, :filled], self._value_buffer[:, :, :filled]


def growing_cache(model: Any) -> DynamicCache:
    """A DynamicCache for `model` whose full-attention layers append in place (sliding-window layers unchanged)."""
    cache = DynamicCache(config=model.config)
    cache.layers = [GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    if cache.layer_class_to_replicate is DynamicLayer:
        cache.layer_class_to_replicate = GrowingLayer
    return cache
