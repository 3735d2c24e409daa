"""Where a study lives: RDB storage (SQLite file by default, any SQLAlchemy URL), heartbeats, the pruner.

A worker killed mid-trial stops its heartbeat; after 3 x tune.heartbeat_seconds the trial is marked failed
and a copy with the same parameters is queued (RetryHeartbeatStaleTrialCallback), up to tune.max_retry times.
A worker killed between creating a trial and its first heartbeat leaves a RUNNING trial that optuna's stale check
never sees (it only looks at trials with a heartbeat): fail_unstarted_trials fails those after the same grace period.
"""

from __future__ import annotations

import re
import sqlite3
import time
import warnings
from datetime import datetime
from pathlib import Path

import optuna
import sqlalchemy

from fraudtune import paths
from fraudtune.config import RunConfig
from fraudtune.errors import FraudtuneError


def storage_url(cfg: RunConfig, run_dir: Path) -> str:
    if cfg.tune.storage:
        return cfg.tune.storage
    db = (run_dir / paths.TUNE_DIR / paths.STUDY_DB).resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


def redact_url(url: str) -> str:
    """A storage URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def study_name(cfg: RunConfig, kind: str) -> str:
    """The grid and the TPE study keep apart: their parameter distributions differ."""
    return cfg.tune.study if kind == "grid" else f"{cfg.tune.study}-{kind}"


def open_study(cfg: RunConfig, run_dir: Path, kind: str) -> optuna.Study:
    """Create or load the study; trials whose heartbeat stops (a killed worker) are retried up to tune.max_retry."""
    url = storage_url(cfg, run_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for attempt in range(3):  # workers starting together race to create the tables and the study
        try:
            return optuna.create_study(
                study_name=study_name(cfg, kind),
                storage=rdb_storage(cfg, url),
                direction="minimize",  # value: validation loss; the best config is chosen by accuracy, then loss
                load_if_exists=True,
                pruner=make_pruner(cfg),
            )
        except Exception as exc:  # sqlalchemy's OperationalError / IntegrityError from the race
            if attempt == 2:
                raise FraudtuneError(f"tune.storage {redact_url(url)}: cannot open the study ({exc})") from exc
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


def rdb_storage(cfg: RunConfig, url: str) -> optuna.storages.RDBStorage:
    engine_kwargs = {"creator": lambda: sqlite_connect(url)} if url.startswith("sqlite:///") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=cfg.tune.heartbeat_seconds,
            grace_period=3 * cfg.tune.heartbeat_seconds,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=cfg.tune.max_retry
            ),
        )


def sqlite_connect(url: str) -> sqlite3.Connection:
    """SQLite in WAL mode: workers read while one writes, and a commit needs no fsync (local disks only)."""
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=60, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def make_pruner(cfg: RunConfig) -> optuna.pruners.BasePruner:
    if cfg.tune.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=cfg.tune.pruner_startup_trials, n_warmup_steps=0)
    if cfg.tune.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    return optuna.pruners.NopPruner()


def fail_unstarted_trials(study: optuna.Study, grace_seconds: float) -> int:
    """RUNNING trials older than the grace period that never recorded a heartbeat -> FAIL.

    A live worker records its trial's first heartbeat as it starts the objective, so such a trial's worker died
    before that: between `ask` and the first beat, or after suggesting its parameters while the heartbeat thread
    still waited for the database lock. optuna's fail_stale_trials only sees trials that beat at least once, and a
    resumed study would wait for this one forever. Failed without an "error" attribute, its planned point counts
    as untried and is trained again.
    """
    beating = heartbeat_trial_ids(study)
    if beating is None:  # not an RDB storage: no heartbeats, and no worker of another process to wait for
        return 0
    now, failed = datetime.now(), 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        started = trial.datetime_start
        if trial._trial_id in beating or started is None or (now - started).total_seconds() <= grace_seconds:
            continue
        try:
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        except (RuntimeError, ValueError):  # another worker failed or finished it first
            continue
        failed += 1
    return failed


def heartbeat_trial_ids(study: optuna.Study) -> set[int] | None:
    """Ids of the trials that recorded at least one heartbeat (optuna's trial_heartbeats table); None: no RDB."""
    storage = study._storage
    storage = getattr(storage, "_backend", storage)  # _CachedStorage wraps the RDBStorage
    engine = getattr(storage, "engine", None)
    if engine is None:
        return None
    with engine.connect() as conn:
        return {row[0] for row in conn.execute(sqlalchemy.text("SELECT trial_id FROM trial_heartbeats"))}
