"""`fraudtune tune techniques`: advanced training techniques, each measured against a control run (same seed).

Arms train in RUN/techniques/<arm>/ (resumable: an arm whose run finished with the same config is not rerun).
Every arm is scored on the held-out test split with its exported adapter; checkpoint ensembling averages the
control run's epoch-1..3 fraud probabilities. The comparisons and a production recommendation per technique
go to RUN/advanced_techniques.json / .md.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from fraudtune import paths
from fraudtune.config import RunConfig, config_to_dict, load_config
from fraudtune.files import read_json, read_jsonl, write_json, write_text_atomic
from fraudtune.stats import classification_scores, log_loss
from fraudtune.train import cpu_has_fast_bf16, train
from fraudtune.tune.grid import shared_data, with_params
from fraudtune.tune.trial import copy_data, measure, reset_peak_memory

log = logging.getLogger(__name__)

ENSEMBLE_EPOCHS = (1, 2, 3)
# The arms: name -> overrides of the control config. "4x4" = batch 4 x 4 accumulation steps (16 per update).
SCHEDULE_ARMS = {
    "schedule_constant": {"train.scheduler": "constant", "train.warmup_steps": 0},
    "schedule_cosine": {"train.scheduler": "cosine"},
}
ACCUM_ARMS = {
    "accum_4x4": {"train.batch_size": 4, "train.grad_accum": 4},
    "accum_16x1": {"train.batch_size": 16, "train.grad_accum": 1},
}


def techniques(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Train every arm, score it on the test split, compare with the control; write the JSON and markdown."""
    from fraudtune.tune.render import techniques_markdown
    from fraudtune.tune.techniques_compare import compare

    run_dir = Path(run_dir)
    shared_data(cfg, run_dir)
    test_chats = [row["messages"] for row in read_jsonl(paths.split_file(run_dir / paths.DATA_DIR, "test"))]
    fast_bf16 = has_fast_bf16()
    control = control_config(cfg, fast_bf16)
    runs = {}
    for name, arm_cfg in plan_arms(control, cfg, fast_bf16).items():
        runs[name] = run_arm(arm_cfg, run_dir, run_dir / paths.TECHNIQUES_DIR / name)
        runs[name]["test"] = score(arm_cfg, Path(runs[name]["run_dir"]) / paths.ADAPTER_DIR, test_chats)
    ensemble = ensemble_scores(control, run_dir / paths.TECHNIQUES_DIR / "control", test_chats)
    result = {
        "control": control_description(control),
        "test_examples": len(test_chats),
        "fast_bf16": fast_bf16,
        "bf16_reduced_steps": None if fast_bf16 else cfg.tune.bf16_steps,
        "runs": runs,
        "ensemble": ensemble,
    }
    result["techniques"] = compare(result)
    write_json(run_dir / paths.ADVANCED_JSON, result)
    markdown = techniques_markdown(result)
    write_text_atomic(run_dir / paths.ADVANCED_MD, markdown)
    return {**result, "markdown": markdown}


def control_config(cfg: RunConfig, fast_bf16: bool = False) -> RunConfig:
    """The control: the production recipe of this hardware (bf16 where it is fast, else fp32), warmup + linear
    decay, no accumulation, no early stopping, >= 3 epochs (for the ensemble)."""
    return with_params(
        cfg,
        {
            "train.scheduler": "linear",
            "train.precision": "bf16" if fast_bf16 else "fp32",
            "train.grad_accum": 1,
            "train.early_stopping_patience": 0,
            "train.epochs": max(max(ENSEMBLE_EPOCHS), cfg.train.epochs),
            "train.max_steps": -1,
        },
    )


def has_fast_bf16() -> bool:
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_fast_bf16()


def plan_arms(control: RunConfig, cfg: RunConfig, fast_bf16: bool) -> dict[str, RunConfig]:
    """Every arm's config. With fast bf16 the control is bf16 and the precision arm is the same run in fp32;
    without it the control is fp32 and both precisions run tune.bf16_steps steps (bf16 is ~50x slower there)."""
    arms = {"control": control}
    for name, overrides in {**SCHEDULE_ARMS, **ACCUM_ARMS}.items():
        arms[name] = with_params(control, overrides)
    arms["early_stopping"] = with_params(control, {"train.early_stopping_patience": 1})
    if fast_bf16:
        arms["precision_fp32"] = with_params(control, {"train.precision": "fp32"})
        return arms
    short = {"train.max_steps": cfg.tune.bf16_steps}
    arms["precision_fp32"] = with_params(control, short)
    arms["precision_bf16"] = with_params(control, {"train.precision": "bf16", **short})
    return arms


def run_arm(cfg: RunConfig, run_dir: Path, arm_dir: Path) -> dict[str, Any]:
    """Train one arm (or reuse its finished run if the config matches) and measure it."""
    measured_path = arm_dir / "measured.json"
    if measured_path.exists() and (arm_dir / paths.RUN_CONFIG).exists():
        if config_to_dict(load_config(arm_dir / paths.RUN_CONFIG)) == config_to_dict(cfg):
            log.info("technique arm %s: finished earlier, reused", arm_dir.name)
            return read_json(measured_path)
    copy_data(run_dir, arm_dir)
    reset_peak_memory()
    began = time.perf_counter()
    summary = train(cfg, arm_dir)
    measured = measure(arm_dir, summary, began, pruning=None)
    measured |= {
        "run_dir": str(arm_dir),
        "steps": summary["steps"],
        "best_checkpoint": summary["best_checkpoint"],
        "params": control_description(cfg),
    }
    write_json(measured_path, measured)
    return measured


def control_description(cfg: RunConfig) -> dict[str, Any]:
    t = cfg.train
    keys = ("epochs", "max_steps", "batch_size", "grad_accum", "lr", "warmup_steps", "scheduler", "precision")
    return {**{k: getattr(t, k) for k in keys}, "early_stopping_patience": t.early_stopping_patience, "r": cfg.lora.r}


def score(cfg: RunConfig, adapter_dir: Path, chats: list[list[dict[str, str]]]) -> dict[str, Any]:
    """Test-split accuracy, F1 and log loss of one adapter (label-token probability, threshold 0.5)."""
    return probability_scores(adapter_probabilities(cfg, adapter_dir, chats), truths(chats))


def adapter_probabilities(cfg: RunConfig, adapter_dir: Path, chats: list[list[dict[str, str]]]) -> list[float]:
    """P(FRAUD) per chat from the base model + one adapter: the run's checked export (manifest, safetensors) or
    one of its epoch checkpoints (complete ones only), scored as `fraudtune predict` scores."""
    from fraudtune.modeling.inference import fraud_probabilities
    from fraudtune.modeling.loading import ADAPTER_RUN_CONFIG, load_checkpoint_for_inference, load_for_inference

    if (Path(adapter_dir) / ADAPTER_RUN_CONFIG).exists():
        model, tokenizer, _ = load_for_inference(Path(adapter_dir), merge=False)
    else:
        model, tokenizer = load_checkpoint_for_inference(cfg, Path(adapter_dir))
    probs, _ = fraud_probabilities(
        model,
        tokenizer,
        [c[:-1] for c in chats],
        cfg.train.eval_batch_size,
        answer_order=cfg.data.answer_order,
        max_evidence_tokens=cfg.eval.max_new_tokens,
    )
    return probs


def truths(chats: list[list[dict[str, str]]]) -> list[bool]:
    from fraudtune.data.chat import answer_label

    return [answer_label(c[-1]["content"]) == "FRAUD" for c in chats]


def probability_scores(probs: list[float], truth: list[bool]) -> dict[str, Any]:
    scores = classification_scores(truth, [p >= 0.5 for p in probs])
    loss = log_loss(probs, truth)
    return {"accuracy": round(scores["accuracy"], 4), "f1": round(scores["f1"], 4), "log_loss": round(loss, 4)}


def ensemble_scores(control: RunConfig, control_dir: Path, chats: list[list[dict[str, str]]]) -> dict[str, Any]:
    """Average the epoch-1..3 adapters' fraud probabilities vs the best single epoch (by validation loss)."""
    truth = truths(chats)
    ckpt_root = control_dir / paths.CHECKPOINTS_DIR
    per_epoch = {e: adapter_probabilities(control, ckpt_root / f"epoch-{e}", chats) for e in ENSEMBLE_EPOCHS}
    best_name = (ckpt_root / paths.BEST_CHECKPOINT).read_text().strip()
    best_epoch = int(best_name.split("-")[1])
    if best_epoch in per_epoch:
        best_probs = per_epoch[best_epoch]
    else:  # the control ran more than 3 epochs and a later one won
        best_probs = adapter_probabilities(control, ckpt_root / best_name, chats)
    averaged = [sum(ps) / len(ps) for ps in zip(*per_epoch.values(), strict=True)]
    probabilities = {f"epoch-{e}": p for e, p in per_epoch.items()} | {"ensemble": averaged}
    return {
        "epochs": list(ENSEMBLE_EPOCHS),
        "per_epoch": {f"epoch-{e}": probability_scores(p, truth) for e, p in per_epoch.items()},
        "best_single": best_name,
        "best_single_scores": probability_scores(best_probs, truth),
        "ensemble_scores": probability_scores(averaged, truth),
        "scoring_passes": len(ENSEMBLE_EPOCHS),
        "truth": truth,
        "probabilities": {name: [round(p, 6) for p in probs] for name, probs in probabilities.items()},
    }
