"""`fraudtune export`: the adapter merged into its base model, as the files inference engines load.

- `--merged DIR`: a plain Hugging Face folder (safetensors weights, config, tokenizer with its chat template) that
  `AutoModelForCausalLM.from_pretrained(DIR)` loads alone, e.g. for vLLM or text-generation-inference.
- `--gguf FILE.gguf [--type f16|q8_0]`: one GGUF file for llama.cpp and Ollama (Llama architecture; the tokenizer,
  chat template and hyperparameters inside), with an Ollama Modelfile beside it.

GGUF stores the query and key projections with their rows reordered for llama.cpp's rotary embedding (the
reordering llama.cpp's own converter applies); readers, transformers' GGUF loader among them, undo it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fraudtune.data.chat import SYSTEM_PROMPT
from fraudtune.errors import FraudtuneError
from fraudtune.files import write_text_atomic

log = logging.getLogger(__name__)

GGUF_TYPES = ("f16", "q8_0")
Q8_BLOCK = 32
MODELFILE = "Modelfile"


def merged_model(adapter_dir: Path) -> tuple[Any, Any, Any]:
    """(merged fp32 model, tokenizer, run config) of an adapter folder."""
    from fraudtune.modeling.loading import load_for_inference

    return load_for_inference(Path(adapter_dir), merge=True, precision="fp32")


def export_merged(adapter_dir: Path, out_dir: Path) -> Path:
    """The merged model as a plain HF folder (written to a temp folder, then moved into place)."""
    import shutil

    model, tokenizer, _ = merged_model(adapter_dir)
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def _permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's row order for a query/key projection (rotary halves interleaved per head)."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_tensors(model: Any) -> list[tuple[str, np.ndarray]]:
    """(GGUF name, fp32 array) of every weight of a merged Llama model, q/k reordered as llama.cpp wants."""
    config = model.config
    if config.model_type != "llama":
        raise FraudtuneError(f"GGUF export: model type {config.model_type!r}; only llama models are exported")
    out = []
    state = {k: v.detach().to(torch.float32).cpu().numpy() for k, v in model.state_dict().items()}
    for key, value in state.items():
        if key == "model.embed_tokens.weight":
            out.append(("token_embd.weight", value))
        elif key == "model.norm.weight":
            out.append(("output_norm.weight", value))
        elif key == "lm_head.weight":
            if not config.tie_word_embeddings:
                out.append(("output.weight", value))
        elif key.startswith("model.layers."):
            _, _, index, rest = key.split(".", 3)
            if rest not in _LAYER_NAMES:
                raise FraudtuneError(f"GGUF export: unexpected weight {key}")
            if rest == "self_attn.q_proj.weight":
                value = _permute(value, config.num_attention_heads)
            elif rest == "self_attn.k_proj.weight":
                value = _permute(value, config.num_key_value_heads)
            out.append((f"blk.{index}.{_LAYER_NAMES[rest]}", value))
        else:
            raise FraudtuneError(f"GGUF export: unexpected weight {key}")
    return out


def _tokenizer_fields(writer: Any, tokenizer: Any) -> None:
    """BPE vocabulary, merges, special tokens and chat template, as llama.cpp's gpt2 tokenizer reads them."""
    import gguf

    data = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = data["model"]["vocab"]
    added = {t["id"]: t for t in data.get("added_tokens", [])}
    size = max(len(tokenizer), max(vocab.values()) + 1)
    by_id = {i: t for t, i in vocab.items()}
    tokens, types = [], []
    for i in range(size):
        if i in added:
            tokens.append(added[i]["content"])
            types.append(gguf.TokenType.CONTROL if added[i].get("special") else gguf.TokenType.USER_DEFINED)
        elif i in by_id:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"].get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for setter, token in (
        (writer.add_bos_token_id, tokenizer.bos_token_id),
        (writer.add_eos_token_id, tokenizer.eos_token_id),
        (writer.add_pad_token_id, tokenizer.pad_token_id),
        (writer.add_unk_token_id, tokenizer.unk_token_id),
    ):
        if token is not None:
            setter(int(token))
    writer.add_add_bos_token(False)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)


def export_gguf(adapter_dir: Path, out_file: Path, kind: str = "f16") -> Path:
    """The merged model as one GGUF file (`kind`: f16 or q8_0 for the 2-D weights; norms stay f32), and an
    Ollama Modelfile beside it."""
    import gguf

    if kind not in GGUF_TYPES:
        raise FraudtuneError(f"--type {kind}: expected one of {', '.join(GGUF_TYPES)}")
    model, tokenizer, cfg = merged_model(adapter_dir)
    config = model.config
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(f".{out_file.name}.tmp")
    writer = gguf.GGUFWriter(tmp, "llama")
    writer.add_name(f"fraudtune {cfg.name} ({cfg.model.name} + LoRA)")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(getattr(config, "rope_theta", None) or _rope_theta(config)))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    file_type = gguf.LlamaFileType.MOSTLY_F16 if kind == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0
    writer.add_file_type(file_type)
    _tokenizer_fields(writer, tokenizer)
    for name, value in gguf_tensors(model):
        if value.ndim == 1:
            writer.add_tensor(name, value.astype(np.float32))
        elif kind == "f16" or value.shape[-1] % Q8_BLOCK:  # q8_0 packs rows in blocks of 32 values
            writer.add_tensor(name, value.astype(np.float16))
        else:
            q8 = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(name, gguf.quants.quantize(value, q8), raw_dtype=q8)  # byte rows: shape from them
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(out_file)
    write_text_atomic(out_file.parent / MODELFILE, modelfile(out_file.name))
    return out_file


def _rope_theta(config: Any) -> float:
    """rope_theta where transformers 5 keeps it (config.rope_parameters)."""
    params = getattr(config, "rope_parameters", None) or {}
    return float(params.get("rope_theta", 10000.0))


def modelfile(gguf_name: str) -> str:
    """An Ollama Modelfile for the GGUF: SmolLM2's ChatML turns, the analyst's system prompt, greedy answers."""
    return (
        f"FROM ./{gguf_name}\n"
        'TEMPLATE """{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
        "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n"
        '"""\n'
        f'SYSTEM """{SYSTEM_PROMPT}"""\n'
        'PARAMETER stop "<|im_end|>"\n'
        "PARAMETER temperature 0\n"
        "PARAMETER num_ctx 2048\n"
    )
