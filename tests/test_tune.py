"""Tuning: the phased grid's plan and winners, resume, killed-trial retry, pruning, two workers on one study.

Most tests swap `train()` for a fake that writes the per-epoch validation rows a real run writes (scores from
a known function of the parameters), so the search logic is checked against an independent expectation in
milliseconds; the CLI test and the two-worker test train the tiny model for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import torch
import yaml
from conftest import TINY_CONFIG, tiny_config

from fraudtune import paths
from fraudtune.cli import main
from fraudtune.config import load_config
from fraudtune.files import append_jsonl, read_json, write_json
from fraudtune.paths import REPO_ROOT
from fraudtune.tune.grid import apply_budget, choices
from fraudtune.tune.run import tune
from fraudtune.tune.storage import open_study
from fraudtune.tune.trial import PruningCallback

GRID_YAML = REPO_ROOT / "configs" / "grid.yaml"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny runs on a shared 2-core machine: one torch thread avoids OpenMP oversubscription (3-6x faster)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TRIAL_KEYS = {
    "study",
    "number",
    "phase",
    "params",
    "state",
    "val_loss",
    "val_accuracy",
    "val_f1",
    "train_seconds",
    "peak_rss_mb",
    "tokens_per_second",
    "trainable_params",
}


def fake_scores(cfg) -> tuple[float, float]:
    """(accuracy, loss): r 8 and 16 tie on accuracy (16 has the lower loss), then lr 1e-4, then 4 epochs win."""
    acc = 0.5 + 0.1 * (cfg.lora.r in (8, 16)) + 0.1 * (cfg.train.lr == 1e-4) + 0.1 * (cfg.train.epochs == 4)
    return acc, round(1.0 - acc - 0.01 * (cfg.lora.r == 16), 6)


class FakeTrain:
    """Stands in for fraudtune.train.train: per-epoch val rows in metrics.jsonl and the Trainer's callbacks."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict, bool]] = []

    def __call__(self, cfg, run_dir, resume=False, callbacks=None):
        run_dir = Path(run_dir)
        self.calls.append(({"r": cfg.lora.r, "lr": cfg.train.lr, "epochs": cfg.train.epochs}, resume))
        acc, loss = fake_scores(cfg)
        for epoch in range(1, cfg.train.epochs + 1):
            epoch_loss = loss + 0.1 * (cfg.train.epochs - epoch)  # falls to `loss` at the last epoch
            append_jsonl(run_dir / paths.METRICS, {"epoch": float(epoch), "split": "val", "loss": epoch_loss})
            row = {"epoch": float(epoch), "split": "val", "val_accuracy": acc, "val_f1": acc / 2}
            append_jsonl(run_dir / paths.METRICS, row)
            for cb in callbacks or []:
                cb.on_evaluate(None, SimpleNamespace(epoch=float(epoch)), None, metrics={"eval_loss": epoch_loss})
        return {"train_seconds": 0.01, "tokens_per_second": 100.0, "trainable_params": cfg.lora.r * 1000}


@pytest.fixture
def fake_train(monkeypatch):
    fake = FakeTrain()
    monkeypatch.setattr("fraudtune.tune.trial.train", fake)
    return fake


def grid_run(tmp_path: Path) -> Path:
    """A run dir with stub data files (the fake never reads them)."""
    run_dir = tmp_path / "run"
    for split in paths.SPLITS:
        path = paths.split_file(run_dir / paths.DATA_DIR, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    return run_dir


def grid_cfg(*overrides: str):
    return load_config(GRID_YAML, ["tune.budget=full", "tune.heartbeat_seconds=1", *overrides])


def test_small_budget_applies_the_documented_overrides():
    cfg = load_config(GRID_YAML)
    small = apply_budget(cfg)
    expected = {item.split("=")[0]: yaml.safe_load(item.split("=", 1)[1]) for item in cfg.tune.small}
    got = {"data.n": small.data.n, "train.epochs": small.train.epochs, "tune.ranks": small.tune.ranks}
    assert got == {k: expected[k] for k in got}
    assert small.tune.lrs == expected["tune.lrs"] and small.tune.epochs == expected["tune.epochs"]
    full = apply_budget(load_config(GRID_YAML, ["tune.budget=full"]))
    assert (full.tune.ranks, full.tune.lrs, full.tune.epochs) == ([4, 8, 16, 32], cfg.tune.lrs, [1, 2, 3, 4, 5])


def test_phased_grid_trains_each_distinct_point_once_and_picks_winners(tmp_path, fake_train):
    run_dir = grid_run(tmp_path)
    result = tune(grid_cfg("train.threads=1"), run_dir)
    grid = result["grid"]
    # 4 + 5 + 5 points; phase 2's lr=2e-4 and phase 3's epochs=3 repeat the previous phase's winner
    assert (grid["grid_points"], grid["distinct_configurations"], grid["trained"]) == (14, 12, 12)
    assert len(fake_train.calls) == 12
    assert [p["best"] for p in grid["phases"]] == [16, 1e-4, 4]  # r=16 wins the accuracy tie on loss
    assert grid["phases"][1]["fixed"] == {"r": 16, "epochs": 3}
    assert grid["phases"][2]["fixed"] == {"r": 16, "lr": 1e-4}
    assert all(TRIAL_KEYS <= set(t) for t in result["trials"])
    best_cfg = load_config(run_dir / paths.BEST_CONFIG)  # `fraudtune train --config` reads it the same way
    assert (best_cfg.lora.r, best_cfg.train.lr, best_cfg.train.epochs) == (16, 1e-4, 4)
    assert best_cfg.train.threads == 0
    assert result["best"]["val_accuracy"] == pytest.approx(0.8)
    assert grid["workers"] == 1 and 0 <= grid["wall_clock_seconds"] <= grid["seconds"] + 5
    markdown = (run_dir / paths.TRAINING_RESULTS_MD).read_text()
    assert "| rank | r |" in markdown and "with 1 worker process(es)" in markdown


def test_rerun_resumes_without_training_finished_trials(tmp_path, fake_train):
    run_dir = grid_run(tmp_path)
    cfg = grid_cfg("tune.ranks=[4, 8]", "tune.lrs=[1.0e-4]", "tune.epochs=[]")
    tune(cfg, run_dir)
    assert len(fake_train.calls) == 3
    result = tune(cfg, run_dir)
    assert len(fake_train.calls) == 3  # nothing retrained
    assert len(result["trials"]) == 3


def test_killed_trial_is_retried_from_its_last_checkpoint(tmp_path, fake_train):
    run_dir = grid_run(tmp_path)
    cfg = grid_cfg("tune.ranks=[4]", "tune.lrs=[]", "tune.epochs=[]")
    study = open_study(cfg, run_dir, "grid")
    study.enqueue_trial({"r": 4})
    killed = study.ask()  # a worker took it ...
    killed.suggest_categorical("r", [4, 8])
    killed_dir = paths.trial_dir(run_dir / paths.TUNE_DIR, killed.number)
    write_json(killed_dir / paths.CHECKPOINTS_DIR / "epoch-1" / "trainer_state.json", {})
    study._storage.record_heartbeat(killed._trial_id)  # ... and died after its first epoch
    began = time.monotonic()
    result = tune(cfg, run_dir)  # waits until the heartbeat is stale (3 x tune.heartbeat_seconds), then retries
    assert time.monotonic() - began >= 2
    states = {t["number"]: t["state"] for t in result["trials"]}
    assert states == {0: "fail", 1: "complete"}
    assert fake_train.calls == [({"r": 4, "lr": 2e-4, "epochs": 3}, True)]  # resumed, not restarted
    assert next(t for t in result["trials"] if t["number"] == 1)["resumed_from"] == 0


@pytest.mark.parametrize("suggested", [False, True])
def test_a_worker_killed_before_its_first_heartbeat_does_not_stall_the_study(tmp_path, fake_train, suggested):
    """A trial created and planned, but killed before it beat once (before or after suggesting its parameters,
    while the heartbeat thread waited for the database): optuna's stale check cannot see it; the resumed study
    fails it after the grace period and trains its point (it once waited forever)."""
    run_dir = grid_run(tmp_path)
    cfg = grid_cfg("tune.ranks=[4]", "tune.lrs=[]", "tune.epochs=[]")
    study = open_study(cfg, run_dir, "grid")
    killed = study.ask()
    study._storage.set_trial_system_attr(killed._trial_id, "planned", {"r": 4})
    if suggested:
        point = {"r": 4}
        for key, values in choices(cfg).items():
            dist = optuna.distributions.CategoricalDistribution(values)
            study._storage.set_trial_param(killed._trial_id, key, values.index(point[key]), dist)
        assert study.trials[0].params == point
    began = time.monotonic()
    result = tune(cfg, run_dir)
    assert 2 <= time.monotonic() - began < 60
    killed_row = {0: "fail"} if suggested else {}  # a trial with parameters is listed, as failed
    assert {t["number"]: t["state"] for t in result["trials"]} == {**killed_row, 1: "complete"}
    assert study.trials[0].state == optuna.trial.TrialState.FAIL
    assert [call[0] for call in fake_train.calls] == [{"r": 4, "lr": 2e-4, "epochs": 3}]


def test_tpe_with_pruner_measures_the_compute_it_saves(tmp_path, fake_train):
    run_dir = grid_run(tmp_path)
    cfg = grid_cfg("tune.sampler=tpe", "tune.pruner=median", "tune.pruner_startup_trials=1", "tune.n_trials=6")
    result = tune(cfg, run_dir)
    tpe = result["tpe"]
    rows = [t for t in result["trials"] if t["study"] == "tpe"]
    assert tpe["trials"] == len(rows) == 6 and all(t["params"]["epochs"] == 5 for t in rows)
    complete = [t["wall_seconds"] for t in rows if t["state"] == "complete"]
    pruned = [t for t in rows if t["state"] == "pruned"]
    assert tpe["pruned"] == len(pruned) and all(t["epochs_run"] < 5 for t in pruned)
    expected = sum(complete) / len(complete) * len(pruned) - sum(t["wall_seconds"] for t in pruned)
    assert tpe["saved_seconds"] == pytest.approx(expected, abs=0.1)


def test_pruning_callback_stops_a_real_training_run(tmp_path):
    from fraudtune.train import train

    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))  # any loss is too high
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match="epoch 1"):
        train(tiny_config("data.n=16", "train.epochs=2"), tmp_path, callbacks=[PruningCallback(trial)])
    assert list(study._storage.get_trial(trial._trial_id).intermediate_values) == [1]


def test_two_workers_share_one_sqlite_study(tmp_path):
    """`fraudtune tune` twice at once on one run dir: each configuration trains once, in one of the two."""
    run_dir = tmp_path / "shared"
    args = [sys.executable, "-m", "fraudtune.cli", "tune", "--config", str(TINY_CONFIG), "--run-dir", str(run_dir)]
    for item in ("tune.budget=full", "tune.ranks=[2, 4, 8, 16]", "tune.lrs=[]", "tune.epochs=[]", "data.n=16"):
        args += ["--set", item]
    args += ["--set", "train.epochs=1"]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    logs = [tmp_path / f"worker-{k}.log" for k in range(2)]
    workers = [subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env) for log in logs]
    try:
        codes = [w.wait(timeout=900) for w in workers]
    finally:
        for w in workers:
            w.kill()  # no-op once it exited; a hung worker must not outlive the test
    assert codes == [0, 0], logs[0].read_text()[-2000:] + logs[1].read_text()[-2000:]
    results = read_json(run_dir / paths.TRAINING_RESULTS_JSON)
    trained = sorted(t["params"]["r"] for t in results["trials"] if t["state"] == "complete")
    assert trained == [2, 4, 8, 16]  # every point once: no duplicates, none lost
    assert len({t["worker"] for t in results["trials"]}) == 2  # both workers took trials
    for t in results["trials"]:
        assert (Path(t["run_dir"]) / paths.ADAPTER_DIR / "adapter_model.safetensors").exists()


def test_cli_tune_prints_the_results_table(tmp_path, capsys, fake_train):
    run_dir = grid_run(tmp_path)
    code = main(["tune", "--config", str(GRID_YAML), "--run-dir", str(run_dir), "--budget", "small"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Budget **small**" in out and "| grid |" in out
    assert json.loads((run_dir / paths.TRAINING_RESULTS_JSON).read_text())["budget"] == "small"


def test_techniques_and_strategies_are_sub_verbs_and_the_old_flags_still_parse():
    from fraudtune.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["tune", "--run-dir", "r"]).part == "search"
    assert parser.parse_args(["tune", "techniques", "--run-dir", "r"]).part == "techniques"
    assert parser.parse_args(["tune", "--techniques", "--run-dir", "r"]).techniques
    assert parser.parse_args(["forgetting", "strategies", "--run-dir", "r"]).part == "strategies"
    assert parser.parse_args(["forgetting", "--run-dir", "r"]).part == "measure"
    with pytest.raises(SystemExit):
        parser.parse_args(["tune", "tpe", "--run-dir", "r"])
