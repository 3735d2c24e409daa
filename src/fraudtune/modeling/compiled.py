"""Regional compilation (train.compile_layers): each adapted decoder layer compiled by torch.compile, not the model.

A training step on the CPU spends more time in small elementwise kernels (RMSNorm, rotary embedding, SiLU gate,
residual adds, LoRA scaling) and in the copies between them than in the matmuls (docs/PERFORMANCE.md). Inductor
fuses them into a few loops per layer. All decoder layers share one forward, so torch.compile can reuse one graph
for all of them (parameters are graph inputs); batch widths are rounded to train.pad_to_multiple, so a run sees a
handful of shapes. Compiled artefacts go to an on-disk cache (FRAUDTUNE_CACHE/inductor) that later runs on the
same machine reuse. Whether the compile time pays is for `make bench` to say; the option is off by default.

Numbers equal the eager layers up to kernel rounding (tests compare losses and gradients).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import torch

from fraudtune.modeling.inference import decoder_and_head
from fraudtune.modeling.loading import cache_dir

log = logging.getLogger(__name__)


def use_compile_cache() -> str:
    """Point inductor's on-disk cache at fraudtune's cache folder unless the user chose one; returns the folder.

    Importing peft already sets TORCHINDUCTOR_CACHE_DIR to inductor's default (/tmp/torchinductor_<user>, gone
    with /tmp), so that default counts as not chosen."""
    try:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        default = os.path.abspath(default_cache_dir())
    except ImportError:  # another torch layout: only an unset variable counts as not chosen
        default = None
    current = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if current is None or os.path.abspath(current) == default:
        current = os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache_dir() / "inductor")
    return current


def compile_layers(model: Any, start: int = 0, dynamic: bool | None = None) -> int:
    """Compile decoder layers[start:] in place (Module.compile: state-dict keys and PEFT saving unchanged).

    Returns how many layers were compiled (0 where torch.compile is not available on this platform)."""
    if not hasattr(torch, "compile"):
        return 0
    folder = use_compile_cache()
    decoder, _ = decoder_and_head(model)
    layers = list(decoder.layers)[start:]
    for layer in layers:
        layer.compile(dynamic=dynamic)
    log.info("compiling %d decoder layers (cache %s)", len(layers), folder)
    return len(layers)


@contextlib.contextmanager
def eager() -> Iterator[None]:
    """Compiled layers run their eager code inside this block (torch.compiler.set_stance("force_eager")).

    Validation passes and the generation of validation answers bring batch shapes and a growing key/value cache
    that the training steps never see: each would compile anew (dynamo recompiles up to its limit, then runs
    eager anyway), at seconds and hundreds of MB per shape, for a few forward passes."""
    stance = getattr(getattr(torch, "compiler", None), "set_stance", None)
    if stance is None:
        yield
        return
    with stance("force_eager"):
        yield
