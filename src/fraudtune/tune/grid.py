"""The search of `fraudtune tune`: the seed's phased grid, or TPE with a pruner, as an Optuna study over train().

Every trial is a complete run directory RUN/tune/trial-<k>/ (a fresh base model and adapter, seed set first),
trained by the same `train()` that `fraudtune train` calls. The study lives in RDB storage (the SQLite file
RUN/tune/study.db unless tune.storage names another SQLAlchemy URL), so rerunning the command resumes it:
finished trials are not rerun, a killed trial (heartbeat gone stale) is retried, and any number of worker
processes pointed at one storage share the study.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from fraudtune import paths
from fraudtune.config import RunConfig, config_to_dict, validate_config, with_overrides
from fraudtune.dotted import set_dotted
from fraudtune.errors import FraudtuneError
from fraudtune.tune.storage import fail_unstarted_trials
from fraudtune.tune.trial import TrialFailed, run_trial

log = logging.getLogger(__name__)

# (phase, Optuna parameter, config key, TuneConfig list holding its values), in the order the phases run.
PHASES = (
    ("rank", "r", "lora.r", "ranks"),
    ("lr", "lr", "train.lr", "lrs"),
    ("epochs", "epochs", "train.epochs", "epochs"),
    ("alpha", "alpha", "lora.alpha", "alphas"),
    ("batch", "batch_size", "train.batch_size", "batch_sizes"),
)
CONFIG_KEY = {param: key for _, param, key, _ in PHASES}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def apply_budget(cfg: RunConfig) -> RunConfig:
    """tune.budget=small: the config with the tune.small `key=value` overrides applied (validated again)."""
    if cfg.tune.budget != "small":
        return cfg
    return with_overrides(cfg, cfg.tune.small, "tune.small")


def with_params(cfg: RunConfig, params: dict[str, Any]) -> RunConfig:
    """The config with a trial's parameters ('r', 'lr', ...) or dotted config keys ('train.scheduler') set."""
    raw = config_to_dict(cfg)
    for key, value in params.items():
        set_dotted(raw, CONFIG_KEY.get(key, key), value)
    return validate_config(raw, "trial params")


def shared_data(cfg: RunConfig, run_dir: Path) -> Path:
    """RUN/data: every trial trains on this one split (generated from data.* if absent).

    Generated into a private folder and renamed into place, so workers starting together never mix files.
    """
    from fraudtune.train import ensure_data

    data_dir = run_dir / paths.DATA_DIR
    if all(paths.split_file(data_dir, s).exists() for s in paths.SPLITS):
        return data_dir
    private = run_dir / f".worker-{os.getpid()}"
    ensure_data(cfg, private)
    try:
        os.rename(private / paths.DATA_DIR, data_dir)  # fails if another worker's data landed first
    except OSError:
        log.info("%s: another worker generated the data first; using it", data_dir)
    shutil.rmtree(private, ignore_errors=True)
    return data_dir


def grid_phases(cfg: RunConfig) -> list[tuple[str, str, list[Any]]]:
    """(phase, parameter, values) of every phase with values; the optional phases (alpha, batch) when listed."""
    return [(phase, param, list(getattr(cfg.tune, fld))) for phase, param, _, fld in PHASES if getattr(cfg.tune, fld)]


def base_params(cfg: RunConfig) -> dict[str, Any]:
    """The config's own value of every searched parameter: what a phase holds fixed until its own phase ran."""
    raw = config_to_dict(cfg)
    out = {}
    for _, param, _ in grid_phases(cfg):
        section, name = CONFIG_KEY[param].split(".")
        out[param] = raw[section][name]
    return out


def choices(cfg: RunConfig) -> dict[str, list[Any]]:
    """One categorical distribution per key for the whole study (Optuna forbids changing it between trials)."""
    base = base_params(cfg)
    return {key: sorted({*values, base[key]}) for _, key, values in grid_phases(cfg)}


def phase_points(fixed: dict[str, Any], key: str, values: list[Any]) -> list[dict[str, Any]]:
    return [{**fixed, key: value} for value in values]


def run_grid(study: optuna.Study, cfg: RunConfig, run_dir: Path) -> None:
    """The phased grid: each phase varies one key with the earlier phases' winners fixed."""
    fixed = base_params(cfg)
    space = choices(cfg)
    for phase, key, values in grid_phases(cfg):
        points = phase_points(fixed, key, values)
        run_phase(study, cfg, run_dir, phase, points, space)
        best = best_trial([t for t in study.get_trials(deepcopy=False) if t.params in points])
        if best is None:
            raise FraudtuneError(f"tune phase {phase}: no trial completed; see {run_dir / paths.TUNE_DIR}")
        fixed[key] = best.params[key]
        log.info("phase %s: best %s=%s", phase, key, fixed[key])


def run_phase(
    study: optuna.Study,
    cfg: RunConfig,
    run_dir: Path,
    phase: str,
    points: list[dict[str, Any]],
    space: dict[str, list[Any]],
) -> None:
    """Train the phase's untried points, then wait for other workers' running trials before the next phase."""
    study.sampler = PlannedSampler(points)

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("phase", phase)
        try:
            params = {key: trial.suggest_categorical(key, values) for key, values in space.items()}
        except TrialFailed as exc:
            trial.set_user_attr("error", str(exc))
            raise
        return run_trial(trial, with_params(cfg, params), run_dir)

    poll = min(5.0, float(cfg.tune.heartbeat_seconds))
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # a killed worker's trial -> FAIL -> a WAITING retry
        fail_unstarted_trials(study, 3 * cfg.tune.heartbeat_seconds)  # killed before its first heartbeat
        trials = study.get_trials(deepcopy=False)
        waiting = any(t.state == TrialState.WAITING for t in trials)
        if waiting or untried(points, trials):
            study.optimize(objective, n_trials=1, catch=(TrialFailed,))
        elif any(t.state == TrialState.RUNNING and trial_point(t) in points for t in trials):
            time.sleep(poll)
        else:
            return


def untried(points: list[dict[str, Any]], trials: list[optuna.trial.FrozenTrial]) -> list[dict[str, Any]]:
    """Points with no trial yet, or whose trials all crashed without a recorded cause (rerun after a fix)."""
    claimed = [trial_point(t) for t in trials if t.state != TrialState.FAIL or "error" in t.user_attrs]
    return [p for p in points if p not in claimed]


def trial_point(trial: optuna.trial.FrozenTrial) -> dict[str, Any] | None:
    """The trial's parameters, or the point planned for it if it has not suggested them yet."""
    return trial.params or trial.system_attrs.get("planned")


def best_trial(trials: list[optuna.trial.FrozenTrial]) -> optuna.trial.FrozenTrial | None:
    """Highest validation accuracy; ties go to the lower validation loss, then the earlier trial."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and measured(t).get("val_accuracy") is not None]
    if not done:
        return None
    return min(done, key=lambda t: (-measured(t)["val_accuracy"], measured(t)["val_loss"], t.number))


def measured(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    """The trial's measurements (one user attr, one storage write per trial)."""
    return trial.user_attrs.get("measured", {})


def run_tpe(study: optuna.Study, cfg: RunConfig, run_dir: Path) -> None:
    """TPE over the same keys (lr log-uniform), trained for the longest epoch count and pruned per epoch."""
    grid = grid_phases(cfg)
    n_trials = cfg.tune.n_trials or sum(len(values) for _, _, values in grid)
    study.sampler = optuna.samplers.TPESampler(seed=cfg.seed)

    def objective(trial: optuna.Trial) -> float:
        params = {}
        for _, key, values in grid:
            if key == "lr":
                params[key] = trial.suggest_float(key, min(values), max(values), log=True)
            elif key == "epochs":
                params[key] = trial.suggest_categorical(key, [max(values)])  # the pruner decides the epochs
            else:
                params[key] = trial.suggest_categorical(key, values)
        trial.set_user_attr("phase", "tpe")
        return run_trial(trial, with_params(cfg, params), run_dir)

    done = sum(t.state in FINISHED for t in study.get_trials(deepcopy=False))
    if done < n_trials:
        stop = optuna.study.MaxTrialsCallback(n_trials, states=FINISHED)  # shared across workers
        study.optimize(objective, n_trials=n_trials - done, callbacks=[stop], catch=(TrialFailed,))


class PlannedSampler(optuna.samplers.BaseSampler):
    """Gives a new trial a point of the phase that no trial has claimed yet (GridSampler, minus re-runs).

    Optuna's GridSampler would re-train a configuration an earlier phase already measured (e.g. phase 2's
    lr=2e-4 at the best rank is phase 1's winner); identical configurations train once here.
    """

    def __init__(self, points: list[dict[str, Any]]) -> None:
        self.points = points

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.params or "planned" in trial.system_attrs:
            return  # a retry of a killed trial keeps its parameters
        todo = untried(self.points, study.get_trials(deepcopy=False))
        planned = todo[trial.number % len(todo)] if todo else None  # workers starting together differ
        study._storage.set_trial_system_attr(trial._trial_id, "planned", planned)

    def sample_independent(self, study, trial, param_name, param_distribution):
        planned = study._storage.get_trial_system_attrs(trial._trial_id).get("planned")
        if planned is None:
            raise TrialFailed("nothing left to try in this phase: another worker took the last point")
        return planned[param_name]
