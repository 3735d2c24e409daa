"""Where a fraudtune training step spends its time: torch.profiler over a few steps of the default recipe.

Same model, adapter, loss and precision as `fraudtune train` (configs/default.yaml); prints JSON with the step
time and the operators that take the most self CPU time, grouped into matmul / attention / elementwise / other,
and the rate the matmul kernels themselves reach (the profiler's FLOP count over their time).
Usage: python bench/profile_step.py TRAIN_JSONL [BATCH_SIZE] [STEPS]
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from fraudtune.config import RunConfig, load_config  # noqa: E402
from fraudtune.files import read_jsonl  # noqa: E402
from fraudtune.modeling.tokens import collate, encode_example  # noqa: E402
from fraudtune.train import answer_only_loss, build_model, precision  # noqa: E402

GROUPS = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::_mkldnn"),
    "attention": ("scaled_dot_product", "flash_attention", "_efficient_attention", "aten::softmax"),
    "dtype casts and copies": ("aten::to", "aten::_to_copy", "aten::copy_", "aten::clone", "aten::contiguous"),
    "elementwise": ("aten::mul", "aten::add", "aten::silu", "aten::rsqrt", "aten::pow", "aten::mean", "aten::neg"),
    "loss and vocabulary": ("cross_entropy", "log_softmax", "nll_loss", "aten::index"),
    "optimizer": ("Optimizer", "adamw", "_foreach"),
}


def group_of(name: str) -> str:
    return next((g for g, keys in GROUPS.items() if any(k in name for k in keys)), "other")


def recipe_steps(
    rows: list[dict], batch_size: int, n_batches: int, overrides: list[str] | None = None
) -> tuple[Callable[[dict], None], list[dict], RunConfig]:
    """The default recipe's training step (model, adapter, loss, precision, AdamW) and the first batches of rows."""
    cfg = load_config(REPO / "configs" / "default.yaml", overrides)
    model, tokenizer = build_model(cfg)
    model.train()
    batches = [
        collate([encode_example(r["messages"], tokenizer, cfg.data.max_length) for r in rows[i : i + batch_size]], 0)
        for i in range(0, batch_size * n_batches, batch_size)
    ]
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.train.lr)
    dtype = torch.bfloat16 if precision(cfg) == "bf16" else None

    def step(batch: dict) -> None:
        with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = answer_only_loss(model, batch, None, cfg.train.decision_weight)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return step, batches, cfg


def main(train_file: str, batch_size: int = 4, steps: int = 3) -> dict:
    step, batches, cfg = recipe_steps(read_jsonl(Path(train_file)), batch_size, steps + 1)
    step(batches[0])  # warm-up
    began = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        for batch in batches[1:]:
            step(batch)
    seconds = (time.perf_counter() - began) / steps
    ops = [(e.key, e.self_cpu_time_total / 1000 / steps) for e in prof.key_averages()]
    total = sum(ms for _, ms in ops) or 1.0
    groups: dict[str, float] = {}
    for name, ms in ops:
        groups[group_of(name)] = groups.get(group_of(name), 0.0) + ms
    top = sorted(ops, key=lambda op: -op[1])[:12]
    matmul = [e for e in prof.key_averages() if group_of(e.key) == "matmul"]
    matmul_ms = sum(e.self_cpu_time_total for e in matmul) / 1000 / steps
    matmul_gflop = sum(e.flops for e in matmul) / 1e9 / steps  # the profiler's count for mm / addmm / bmm
    return {
        "precision": precision(cfg),
        "step_seconds": seconds,
        "tokens_per_step": sum(int(b["attention_mask"].sum()) for b in batches[1:]) / steps,
        "matmul_ms_per_step": round(matmul_ms, 1),
        "matmul_gflop_per_step": round(matmul_gflop, 2),
        "matmul_gflops": round(matmul_gflop / (matmul_ms / 1000), 1) if matmul_ms else None,
        "profiled_ms_per_step": round(total, 1),
        "groups": {g: round(ms / total, 4) for g, ms in sorted(groups.items(), key=lambda kv: -kv[1])},
        "top_ops": [{"op": name, "ms_per_step": round(ms, 1), "share": round(ms / total, 4)} for name, ms in top],
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(main(args[0], *(int(a) for a in args[1:3]))))
