"""One Optuna trial: `train()` in RUN/tune/trial-<k>/, measured (time, peak memory, tokens/s) and pruned per epoch."""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import torch
from transformers import TrainerCallback

from fraudtune import paths
from fraudtune.config import RunConfig
from fraudtune.files import append_jsonl, read_jsonl_lenient
from fraudtune.memory import peak_rss_mb, reset_peak_rss
from fraudtune.train import last_checkpoint, train

log = logging.getLogger(__name__)


class TrialFailed(Exception):
    """A trial that failed for a recorded reason (e.g. out of memory); the study goes on."""


class PruningCallback(TrainerCallback):
    """Report each epoch's validation loss to Optuna and stop the run when the pruner says so."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial
        self.trainable_params: int | None = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None:
            self.trainable_params = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        loss = (metrics or {}).get("eval_loss")
        if loss is None:
            return
        epoch = epoch_number(state.epoch or 0)
        self.trial.report(loss, epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"epoch {epoch}: validation loss {loss:.4f}")


def epoch_number(epoch: float) -> int:
    """1 for epoch 0.5 or 1.0, 2 for 1.5 or 2.0 (a max_steps run ends mid-epoch: it counts as one)."""
    return max(1, math.ceil(epoch - 1e-6))


def run_trial(trial: optuna.Trial, cfg: RunConfig, run_dir: Path) -> float:
    """Train one configuration; the trial's user attrs get the measurements; returns the best validation loss."""
    tune_dir = run_dir / paths.TUNE_DIR
    trial_dir = paths.trial_dir(tune_dir, trial.number)
    resume = adopt_killed_run(trial, tune_dir, trial_dir)
    if not resume:
        copy_data(run_dir, trial_dir)
    trial.set_user_attr("run_dir", str(trial_dir))
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # several workers: who ran it
    pruning = PruningCallback(trial)
    reset_peak_memory()
    began = time.perf_counter()
    try:
        summary = train(cfg, trial_dir, resume=resume, callbacks=[pruning])
    except optuna.TrialPruned:
        record(trial, tune_dir, measure(trial_dir, None, began, pruning), "pruned")
        raise
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
        if not isinstance(exc, torch.OutOfMemoryError | MemoryError) and "memory" not in str(exc).lower():
            raise
        error = f"out of memory at train.batch_size={cfg.train.batch_size}"
        trial.set_user_attr("error", error)
        record(trial, tune_dir, measure(trial_dir, None, began, pruning), "fail")
        raise TrialFailed(error) from exc
    measured = measure(trial_dir, summary, began, pruning)
    record(trial, tune_dir, measured, "complete")
    return measured["val_loss"]


def copy_data(run_dir: Path, trial_dir: Path) -> None:
    """The study's shared split into the trial's run directory (each trial dir is self-contained)."""
    target = trial_dir / paths.DATA_DIR
    if not target.exists():
        shutil.copytree(run_dir / paths.DATA_DIR, target)


def adopt_killed_run(trial: optuna.Trial, tune_dir: Path, trial_dir: Path) -> bool:
    """A retry of a killed trial continues from the killed run's last epoch checkpoint, if it saved one."""
    frozen = trial.study._storage.get_trial(trial._trial_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        history = optuna.storages.RetryHeartbeatStaleTrialCallback.retry_history(frozen)
    if trial_dir.exists():
        shutil.rmtree(trial_dir)  # leftovers of a deleted study never mix into a new trial
    if not history:
        return False
    previous = paths.trial_dir(tune_dir, history[-1])
    if not previous.exists() or last_checkpoint(previous) is None:
        return False
    shutil.copytree(previous, trial_dir)
    trial.set_user_attr("resumed_from", history[-1])
    log.info("trial %d resumes killed trial %d from %s", trial.number, history[-1], last_checkpoint(trial_dir))
    return True


def measure(
    trial_dir: Path, summary: dict[str, Any] | None, began: float, pruning: PruningCallback | None
) -> dict[str, Any]:
    """The trial's record: best epoch's validation scores, time, peak memory, throughput, trainable parameters."""
    epochs = epoch_scores(trial_dir)
    scored = [e for e in epochs.values() if e.get("loss") is not None]
    best = min(scored, key=lambda e: (e["loss"], e["epoch"])) if scored else {}
    summary = summary or {}
    wall = time.perf_counter() - began
    return {
        "val_loss": _round(best.get("loss"), 5),
        "val_accuracy": _round(best.get("val_accuracy"), 4),
        "val_f1": _round(best.get("val_f1"), 4),
        "best_epoch": best.get("epoch"),
        "epochs_run": max(epochs, default=0),
        "val_loss_per_epoch": [_round(epochs[k].get("loss"), 5) for k in sorted(epochs)],
        "train_seconds": summary.get("train_seconds", round(wall, 2)),
        "wall_seconds": round(wall, 2),
        "peak_rss_mb": peak_rss_mb(),
        "peak_gpu_mb": peak_gpu_mb(),
        "tokens_per_second": summary.get("tokens_per_second"),
        "trainable_params": summary.get("trainable_params", pruning.trainable_params if pruning else None),
    }


def epoch_scores(run_dir: Path) -> dict[int, dict[str, Any]]:
    """Per-epoch validation rows of RUN/metrics.jsonl merged: {epoch: {loss, val_accuracy, val_f1}} (last wins)."""
    out: dict[int, dict[str, Any]] = {}
    for row in read_jsonl_lenient(run_dir / paths.METRICS):
        if row.get("split") != "val":
            continue
        epoch = epoch_number(row.get("epoch") or 0)
        merged = out.setdefault(epoch, {"epoch": epoch})
        merged.update({k: row[k] for k in ("loss", "val_accuracy", "val_f1") if k in row})
    return out


def record(trial: optuna.Trial, tune_dir: Path, measured: dict[str, Any], state: str) -> None:
    trial.set_user_attr("measured", measured)
    append_jsonl(tune_dir / paths.TRIALS_LOG, {"trial": trial.number, "state": state, **trial.params, **measured})
    log.info("trial %d %s: %s", trial.number, state, {k: measured[k] for k in ("val_loss", "val_accuracy")})


def reset_peak_memory() -> None:
    """Restart the peak-memory counters (RSS, and CUDA's) so each trial measures its own peak."""
    reset_peak_rss()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_gpu_mb() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
