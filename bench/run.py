"""`make bench`: fraudtune's training and scoring against a plain HF Trainer + PEFT reference, same data and steps.

Each trainer runs in its own process (clean peak RSS). Prints a table and a final `speedup N.NNx` line
(fraudtune tokens/s over reference tokens/s), and writes bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from fraudtune import paths  # noqa: E402
from fraudtune.config import load_config  # noqa: E402
from fraudtune.files import read_jsonl, write_json  # noqa: E402


def matmul_gflops(dtype: torch.dtype, n: int = 1024, seconds: float = 2.0) -> float:
    """Measured dense matmul throughput of this CPU for a dtype (the peak the MFU is compared with)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    count, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        a @ b
        count += 1
    return 2 * n**3 * count / (time.perf_counter() - began) / 1e9


def child(cmd: list[str], env: dict | None = None) -> tuple[dict, float, float]:
    """Run a part in a fresh process: its JSON result, wall seconds, peak RSS (MB) of that process."""
    began = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, cwd=REPO)
    wall = time.perf_counter() - began
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"bench part failed: {' '.join(cmd[:4])}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    # the part reports its own peak (RUSAGE_CHILDREN would be the largest of all parts run so far)
    rss = res.pop("peak_rss_mb", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    return res, wall, rss


def token_counts(train_file: Path, n: int, tokenizer) -> tuple[int, int]:
    """Tokens and answer tokens of the first n examples (what both trainers see per epoch)."""
    from fraudtune.modeling.tokens import encode_example

    rows = read_jsonl(train_file)[:n]
    encoded = [encode_example(r["messages"], tokenizer, 512) for r in rows]
    return sum(e["length"] for e in encoded), sum(sum(x != -100 for x in e["labels"]) for e in encoded)


def val_loss(model_dir: Path, adapter: Path, val_file: Path) -> float:
    """Answer-only validation loss of an adapter: the same yardstick for both trainers."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fraudtune.modeling.tokens import collate, encode_example
    from fraudtune.train import answer_only_loss

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), adapter).eval()
    rows = [encode_example(r["messages"], tokenizer, 512) for r in read_jsonl(val_file)]
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(rows), 8):
            batch = collate(rows[i : i + 8], tokenizer.pad_token_id)
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(answer_only_loss(model, batch, n)) * n
            count += n
    return total / count


def model_flops(layers: list[int], n_head: int, tokens: int, supervised: int, frozen_below: int = 0) -> float:
    """Useful work of LoRA training: forward + input-gradient backward (4 FLOPs per weight per token) through
    the decoder layers for every token and through the vocabulary head where a label is.

    `layers` holds each decoder layer's weight count. With adapters on the top layers only and the layers below
    them run once (train.cache_frozen_layers), those `frozen_below` layers need no backward: 2 FLOPs per weight
    per token. The count is what the recipe must compute, so skipping work never raises the MFU."""
    lower, upper = sum(layers[:frozen_below]), sum(layers[frozen_below:])
    return 2 * lower * tokens + 4 * upper * tokens + 4 * n_head * supervised


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per trainer")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--score-n", type=int, default=64, help="transactions for the scoring benchmark")
    parser.add_argument("--gen-n", type=int, default=8, help="transactions for the generation benchmark")
    args = parser.parse_args()
    print(json.dumps(run(args), indent=2))


def run(args: argparse.Namespace) -> dict:
    from fraudtune.data.generate import generate
    from fraudtune.modeling.loading import load_tokenizer, smollm2_dir

    work = Path(tempfile.mkdtemp(prefix="fraudtune-bench-"))
    cfg = load_config(REPO / "configs" / "default.yaml")
    generate(work / "data", profile_path=cfg.data.profile, n=cfg.data.n, seed=cfg.data.seed, data_cfg=cfg.data)
    examples = args.steps * args.batch_size
    subset = work / "subset"
    subset.mkdir()
    for split, limit in (("train", examples), ("val", 50), ("test", 50)):
        lines = (work / "data" / f"{split}.jsonl").read_text().splitlines()[:limit]
        metas = (work / "data" / f"{split}.meta.jsonl").read_text().splitlines()[:limit]
        (subset / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
        (subset / f"{split}.meta.jsonl").write_text("\n".join(metas) + "\n")
    model_dir = smollm2_dir()
    tokens, supervised = token_counts(subset / "train.jsonl", examples, load_tokenizer())
    result = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "examples": examples,
        "tokens": tokens,
        "supervised_tokens": supervised,
        "threads": torch.get_num_threads(),
        "cpu": cpu_name(),
    }
    result["peak_gflops"] = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    result["reference"] = train_reference(args, model_dir, subset, work)
    result["fraudtune"] = train_fraudtune(args, subset, work)
    for name, adapter in (("reference", work / "ref" / "adapter"), ("fraudtune", work / "ft" / paths.ADAPTER_DIR)):
        result[name]["val_loss"] = val_loss(model_dir, adapter, subset / "val.jsonl")
    add_rates(result, model_dir)
    result["scoring"] = child(
        [
            sys.executable,
            str(REPO / "bench" / "scoring.py"),
            str(work / "ft" / paths.ADAPTER_DIR),
            str(subset / "test.meta.jsonl"),
            str(args.score_n),
            str(args.gen_n),
        ]
    )[0]
    result["load"] = load_times(work)
    test_meta = str(subset / "test.meta.jsonl")
    load_test = [sys.executable, str(REPO / "bench" / "load.py"), adapter_path(work), test_meta, "128"]
    result["serving"] = child(load_test)[0]
    profiled = child([sys.executable, str(REPO / "bench" / "profile_step.py"), str(subset / "train.jsonl"), "4", "3"])
    result["profile"] = {**profiled[0], "steps": 3}
    memory = [str(REPO / "bench" / "memory.py"), str(work / "data" / "train.jsonl")]
    result["memory"] = [child([sys.executable, *memory, str(kb)])[0] for kb in MMAP_SETTINGS_KB]
    print_table(result)
    out = REPO / "bench" / "results" / "latest.json"
    write_json(out, result)
    from perf_doc import write

    print(f"wrote {write(result)}")
    return result


def adapter_path(work: Path) -> str:
    return str(work / "ft" / paths.ADAPTER_DIR)


MMAP_SETTINGS_KB = (0, 1024)  # glibc's own threshold vs the opt-in train.mmap_threshold_kb


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else the platform's processor string."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "CPU"


def train_reference(args: argparse.Namespace, model_dir: Path, subset: Path, work: Path) -> dict:
    res, wall, rss = child(
        [
            sys.executable,
            str(REPO / "bench" / "reference.py"),
            str(model_dir),
            str(subset / "train.jsonl"),
            str(work / "ref"),
            str(args.steps),
            str(args.batch_size),
            "42",
            json.dumps(reference_lora(load_config(REPO / "configs" / "default.yaml"))),
        ]
    )
    return {"seconds": res["seconds"], "wall_seconds": wall, "peak_rss_mb": rss}


def reference_lora(cfg) -> dict:
    """The recipe's adapter as plain LoraConfig arguments: what the reference trains."""
    from fraudtune.modeling.loading import smollm2_dir

    n_layers = json.loads((smollm2_dir() / "config.json").read_text())["num_hidden_layers"]
    top = cfg.lora.top_layers
    return {
        "r": cfg.lora.r,
        "lora_alpha": cfg.lora.alpha,
        "lora_dropout": cfg.lora.dropout,
        "target_modules": cfg.lora.target_modules,
        "layers_to_transform": list(range(n_layers - top, n_layers)) if top else None,
    }


def train_fraudtune(args: argparse.Namespace, subset: Path, work: Path) -> dict:
    run_dir = work / "ft"
    (run_dir / paths.DATA_DIR).mkdir(parents=True)
    for f in subset.iterdir():
        (run_dir / paths.DATA_DIR / f.name).write_text(f.read_text())
    overrides = [
        f"train.max_steps={args.steps}",
        f"train.batch_size={args.batch_size}",
        "train.warmup_steps=0",
        "train.early_stopping_patience=0",
        f"train.logging_steps={args.steps}",
    ]
    code = (
        "import json,sys; from fraudtune.config import load_config; from fraudtune.train import train; "
        f"s=train(load_config('configs/default.yaml', {overrides!r}), '{run_dir}'); "
        "import resource; rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024; "
        "print(json.dumps({'seconds': s['train_seconds'], 'peak_rss_mb': rss}))"
    )
    res, wall, rss = child([sys.executable, "-c", code])
    return {"seconds": res["seconds"], "wall_seconds": wall, "peak_rss_mb": rss}


def add_rates(result: dict, model_dir: Path) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    n_head = config["vocab_size"] * config["hidden_size"]  # tied embeddings: the head is the embedding matrix
    layers = layer_sizes(_weights(model_dir), config["num_hidden_layers"])
    cfg = load_config(REPO / "configs" / "default.yaml")
    frozen_below = len(layers) - cfg.lora.top_layers if cfg.lora.top_layers and cfg.train.cache_frozen_layers else 0
    result["frozen_below"] = frozen_below
    for name in ("reference", "fraudtune"):
        part = result[name]
        below = frozen_below if name == "fraudtune" else 0
        flops = model_flops(layers, n_head, result["tokens"], result["supervised_tokens"], below)
        part["model_gflop"] = flops / 1e9
        part["tokens_per_second"] = result["tokens"] / part["seconds"]
        part["supervised_tokens_per_second"] = result["supervised_tokens"] / part["seconds"]
        part["examples_per_second"] = result["examples"] / part["seconds"]
        part["model_gflops_per_second"] = flops / part["seconds"] / 1e9
        part["mfu_fp32"] = part["model_gflops_per_second"] / result["peak_gflops"]["fp32"]
        part["mfu_bf16"] = part["model_gflops_per_second"] / result["peak_gflops"]["bf16"]
    result["speedup"] = result["fraudtune"]["tokens_per_second"] / result["reference"]["tokens_per_second"]


def layer_sizes(weights: dict, n_layers: int) -> list[int]:
    """Weight count of each decoder layer (model.layers.<i>.*)."""
    sizes = [0] * n_layers
    for key, tensor in weights.items():
        parts = key.split(".")
        if parts[:2] == ["model", "layers"]:
            sizes[int(parts[2])] += tensor.numel()
    return sizes


def _weights(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(model_dir / "model.safetensors")


def load_times(work: Path) -> dict:
    # transformers imports the model's modules lazily, on first use (~1.5 s here: Llama, masking -> torch._dynamo,
    # weight loading -> torch.distributed.tensor); they are import time, paid once per process, not loading
    code = (
        "import json,time; t=time.perf_counter(); from fraudtune.modeling.loading import load_base; "
        "from fraudtune.config import ModelConfig; "
        "from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM; "
        "i=time.perf_counter(); load_base(ModelConfig()); "
        "print(json.dumps({'seconds': time.perf_counter()-i, 'import_seconds': i-t}))"
    )
    cold = child([sys.executable, "-c", code], env={"FRAUDTUNE_CACHE": str(work / "cold-cache")})[0]
    cached = child([sys.executable, "-c", code])[0]
    return {
        "cold_seconds": cold["seconds"],
        "cached_seconds": cached["seconds"],
        "import_seconds": cached["import_seconds"],
    }


def print_table(r: dict) -> None:
    print(
        f"\nCPU threads {r['threads']}; matmul peak fp32 {r['peak_gflops']['fp32']:.1f} GFLOP/s, "
        f"bf16 {r['peak_gflops']['bf16']:.1f} GFLOP/s"
    )
    print(
        f"{r['steps']} optimizer steps x batch {r['batch_size']} = {r['examples']} examples, {r['tokens']} tokens "
        f"({r['supervised_tokens']} answer tokens)\n"
    )
    head = f"{'trainer':<11}{'tok/s':>9}{'sup tok/s':>11}{'ex/s':>7}{'wall s':>8}{'peak RSS MB':>13}{'val loss':>10}"
    print(head + f"{'MFU fp32':>10}{'MFU bf16':>10}")
    for name in ("reference", "fraudtune"):
        p = r[name]
        print(
            f"{name:<11}{p['tokens_per_second']:>9.1f}{p['supervised_tokens_per_second']:>11.1f}"
            f"{p['examples_per_second']:>7.2f}{p['seconds']:>8.1f}{p['peak_rss_mb']:>13.0f}{p['val_loss']:>10.4f}"
            f"{p['mfu_fp32']:>10.1%}{p['mfu_bf16']:>10.1%}"
        )
    s = r["scoring"]
    print(
        f"\nscoring (predict --no-explain): {s['score_tps']:.1f} transactions/s fp32, "
        + (
            f"{s['score_tps_bf16']:.1f} bf16 (labels agree {s['bf16_label_agreement']:.0%})"
            if s.get("score_tps_bf16") is not None
            else f"bf16 {s.get('bf16_skipped', 'not measured')}"
        )
        + "; label via generate: "
        f"{s['generate_tps']:.2f} transactions/s ({s['score_tps'] / s['generate_tps']:.0f}x); generation "
        f"{s['generation_tokens_per_second']:.1f} tokens/s"
    )
    d = s.get("decode_batch_fp32")
    if d:
        print(
            f"decoding (fp32, evidence-first scoring writes at 64 rows): {d['ms_per_row_step_16']:.1f} ms per row "
            f"and step at 16 rows, {d['ms_per_row_step_64']:.1f} at 64 ({d['ratio']:.2f}x)"
        )
    print(
        f"model load: cold {r['load']['cold_seconds']:.1f} s, cached {r['load']['cached_seconds']:.2f} s "
        f"(+ {r['load']['import_seconds']:.1f} s importing torch/transformers)"
    )
    serving = r.get("serving")
    if serving:
        print("\nfraudtune serve (loopback, 1-transaction requests):")
        print(f"{'clients':>8}{'tx/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
        for lv in serving["levels"]:
            print(
                f"{lv['clients']:>8}{lv['transactions_per_second']:>8.1f}{lv['p50_ms']:>9.0f}{lv['p99_ms']:>9.0f}"
                f"{lv['errors']:>8}"
            )
        over = serving["overload"]
        print(
            f"overload ({over['clients']} clients, queue 8): {over['codes']}, answers whole: {over['answers_whole']}, "
            f"alive after: {over['alive_after']}; server peak RSS {serving['server_peak_rss_mb']:.0f} MB"
        )
    p = r["profile"]
    print("training step profile (self CPU time): " + ", ".join(f"{g} {v:.0%}" for g, v in p["groups"].items()))
    print(
        "memory, 12 longest batches: "
        + "; ".join(
            f"mmap threshold {m['mmap_threshold_kb']} KB: peak {m['peak_mb']:.0f} MB, {m['step_seconds']:.2f} s/step"
            for m in r["memory"]
        )
    )
    print(f"speedup {r['speedup']:.2f}x")


if __name__ == "__main__":
    main()
