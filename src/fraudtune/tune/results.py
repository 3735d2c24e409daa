"""RUN/training_results.json / .md and RUN/best_config.yaml from a finished (or joined) study."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from statistics import mean
from typing import Any

import optuna
from optuna.trial import TrialState

from fraudtune import paths
from fraudtune.config import RunConfig, config_to_dict
from fraudtune.files import read_json, write_json, write_text_atomic, write_yaml

MEASURED = (
    "val_loss",
    "val_accuracy",
    "val_f1",
    "train_seconds",
    "wall_seconds",
    "peak_rss_mb",
    "peak_gpu_mb",
    "tokens_per_second",
    "trainable_params",
    "epochs_run",
    "best_epoch",
    "val_loss_per_epoch",
)


def write_results(cfg: RunConfig, run_dir: Path, study: optuna.Study, kind: str) -> dict[str, Any]:
    """Merge this study's trials into RUN/training_results.json (the other study's part is kept)."""
    from fraudtune.tune.grid import base_params, best_trial, grid_phases
    from fraudtune.tune.render import results_markdown
    from fraudtune.tune.storage import redact_url, storage_url, study_name

    trials = study.get_trials(deepcopy=False)
    path = run_dir / paths.TRAINING_RESULTS_JSON
    results = read_json(path) if path.exists() else {}
    rows = [trial_row(t, kind) for t in trials if t.params]
    results["trials"] = [r for r in results.get("trials", []) if r["study"] != kind] + rows
    summary: dict[str, Any] = {"study": study_name(cfg, kind), "storage": redact_url(storage_url(cfg, run_dir))}
    if kind == "grid":
        summary |= grid_summary(cfg, trials, grid_phases(cfg), base_params(cfg))
    else:
        summary |= pruning_summary(cfg, rows, results.get("grid"))
    best = best_trial(trials)
    summary["best_trial"] = None if best is None else best.number
    results[kind] = summary
    results |= {
        "updated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "budget": cfg.tune.budget,
        "budget_overrides": list(cfg.tune.small) if cfg.tune.budget == "small" else [],
        "model": cfg.model.name,
        "data_n": cfg.data.n,
        "selection": "highest val_accuracy; ties: lowest val_loss",
    }
    results["best"] = overall_best(cfg, run_dir, results["trials"])
    write_json(path, results)
    markdown = results_markdown(results)
    write_text_atomic(run_dir / paths.TRAINING_RESULTS_MD, markdown)
    return {**results, "markdown": markdown}


def trial_row(trial: optuna.trial.FrozenTrial, kind: str) -> dict[str, Any]:
    attrs = trial.user_attrs
    values = attrs.get("measured", {})
    return {
        "study": kind,
        "number": trial.number,
        "phase": attrs.get("phase"),
        "params": dict(trial.params),
        "state": trial.state.name.lower(),
        **{key: values.get(key) for key in MEASURED},
        "run_dir": attrs.get("run_dir"),
        "worker": attrs.get("worker"),
        "resumed_from": attrs.get("resumed_from"),
        "error": attrs.get("error"),
    }


def grid_summary(
    cfg: RunConfig, trials: list[optuna.trial.FrozenTrial], phases: list[tuple], fixed: dict[str, Any]
) -> dict[str, Any]:
    """Each phase's points and winner, replayed from the trials (identical points are trained once)."""
    from fraudtune.tune.grid import best_trial, measured, phase_points

    fixed, out, points_total = dict(fixed), [], []
    for phase, key, values in phases:
        points = phase_points(fixed, key, values)
        points_total += points
        in_phase = [t for t in trials if t.params in points]
        best = best_trial(in_phase)
        out.append(
            {
                "phase": phase,
                "key": key,
                "values": values,
                "fixed": {k: v for k, v in fixed.items() if k != key},
                "best": None if best is None else best.params[key],
                "trials": sorted({t.number for t in in_phase if t.state == TrialState.COMPLETE}),
            }
        )
        if best is None:
            break
        fixed[key] = best.params[key]
    finished = [t for t in trials if t.state == TrialState.COMPLETE]
    unique = {tuple(sorted(p.items())) for p in points_total}
    batch = [t.params["batch_size"] for t in finished if "batch_size" in t.params]
    return {
        "phases": out,
        "grid_points": len(points_total),
        "distinct_configurations": len(unique),
        "trained": len(finished),
        "seconds": round(sum(measured(t).get("wall_seconds") or 0 for t in trials), 1),
        **elapsed(trials),
        "largest_batch_size": max(batch) if batch and cfg.tune.batch_sizes else None,
    }


def elapsed(trials: list[optuna.trial.FrozenTrial]) -> dict[str, Any]:
    """Wall-clock seconds from the first trial's start to the last trial's end, and the worker processes."""
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    workers = {t.user_attrs["worker"] for t in trials if t.user_attrs.get("worker")}
    wall = (max(ends) - min(starts)).total_seconds() if starts and ends else None
    threads = set()
    for t in trials:
        summary = Path(t.user_attrs.get("run_dir") or "") / paths.TRAIN_SUMMARY
        if t.user_attrs.get("run_dir") and summary.exists():
            threads.add(read_json(summary).get("threads"))
    return {"wall_clock_seconds": _round(wall), "workers": len(workers), "threads": sorted(t for t in threads if t)}


def pruning_summary(cfg: RunConfig, rows: list[dict[str, Any]], grid: dict[str, Any] | None) -> dict[str, Any]:
    """Compute the pruner saved: pruned trials' seconds vs the measured mean of a complete trial."""
    complete = [r for r in rows if r["state"] == "complete"]
    pruned = [r for r in rows if r["state"] == "pruned"]
    mean_complete = mean(r["wall_seconds"] for r in complete) if complete else None
    pruned_seconds = sum(r["wall_seconds"] or 0 for r in pruned)
    if_complete = mean_complete * len(pruned) if mean_complete is not None else None
    total = sum(r["wall_seconds"] or 0 for r in rows)
    out = {
        "sampler": "tpe",
        "pruner": cfg.tune.pruner,
        "trials": len(rows),
        "complete": len(complete),
        "pruned": len(pruned),
        "mean_complete_seconds": _round(mean_complete),
        "pruned_seconds": round(pruned_seconds, 1),
        "pruned_seconds_if_complete": _round(if_complete),
        "saved_seconds": _round(None if if_complete is None else if_complete - pruned_seconds),
        "seconds": round(total, 1),
    }
    out["saved_fraction"] = (
        round(out["saved_seconds"] / (total + out["saved_seconds"]), 4) if out["saved_seconds"] else None
    )
    if grid:
        out["grid_seconds"] = grid.get("seconds")
        out["seconds_vs_grid"] = round(total / grid["seconds"], 4) if grid.get("seconds") else None
    return out


def overall_best(cfg: RunConfig, run_dir: Path, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best complete trial of either study -> RUN/best_config.yaml (a config `fraudtune train` takes)."""
    from fraudtune.tune.grid import with_params

    done = [r for r in rows if r["state"] == "complete" and r["val_accuracy"] is not None]
    if not done:
        return None
    best = min(done, key=lambda r: (-r["val_accuracy"], r["val_loss"], r["study"] != "grid", r["number"]))
    best_cfg = with_params(cfg, best["params"])
    best_cfg.name = f"{cfg.name}-best"
    best_cfg.train.threads = 0  # the workers' thread count is how the study ran, not part of the recipe
    write_yaml(run_dir / paths.BEST_CONFIG, config_to_dict(best_cfg))
    keep = ("study", "number", "params", "val_accuracy", "val_loss", "val_f1", "run_dir")
    return {**{k: best[k] for k in keep}, "config": str(run_dir / paths.BEST_CONFIG)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
