"""Faults: kill -9 during training and tuning, torn writes, half-written checkpoints, damaged artifacts.

The kill tests run the real `fraudtune` command in a subprocess on the tiny model and SIGKILL it at a seeded
point; `--resume` (or rerunning the study) must finish the job as if nothing happened.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY_CONFIG, tiny_config
from fake_run import make_fake_run
from safetensors.torch import load_file

from fraudtune import paths
from fraudtune.cli import main
from fraudtune.files import read_json, read_jsonl, read_jsonl_lenient
from fraudtune.train import EarlyStopping, last_checkpoint, train

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
WAIT_S = 900  # generous: the machine is shared with real-model jobs
# 3 epochs of ~7 steps on the tiny model; every step logged, so the kill point can be seen in metrics.jsonl
# fp32: the adapters are compared to 1e-6, and bf16 on a CPU with AMX gave two processes of the same run different
# gradients from step 1 (grad norm 0.0304 vs 0.0257, same loss) while other test processes loaded the cores
KILL_RUN = ("data.n=32", "train.epochs=3", "train.logging_steps=1", "train.threads=1", "train.precision=fp32")
RESUME_ATOL = 1e-6


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "fraudtune.cli", *args]


def _start(argv: list[str], log: Path) -> subprocess.Popen:
    """The command in the background, its stderr (progress bars) to a file: a full pipe would stall it."""
    with open(log, "w") as err:
        proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=err)
    proc.log = log
    return proc


def _sets(items: tuple[str, ...] | list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def _wait_for(proc: subprocess.Popen, ready, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not ready():
        if proc.poll() is not None:
            tail = proc.log.read_text()[-2000:]
            raise AssertionError(f"the process ended ({proc.returncode}) before {what}: {tail}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _train_steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in read_jsonl_lenient(run_dir / paths.METRICS) if r.get("split") == "train"]


def test_kill_9_mid_training_then_resume_matches_an_uninterrupted_run(tmp_path, capsys):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    train(tiny_config(*KILL_RUN), straight)
    steps_per_epoch = math.ceil(len(read_jsonl(straight / paths.DATA_DIR / "train.jsonl")) / 4)
    total = 3 * steps_per_epoch
    kill_at = random.Random(2026).randint(steps_per_epoch + 1, total - 3)  # after epoch 1's checkpoint, before the end

    args = ["train", "--config", str(TINY_CONFIG), *_sets(KILL_RUN), "--run-dir", str(killed)]
    proc = _start(_cli(*args), tmp_path / "stderr.log")
    _wait_for(proc, lambda: max(_train_steps(killed), default=0) >= kill_at, f"step {kill_at}")
    _kill(proc)
    died_at = max(_train_steps(killed))
    assert died_at < total and read_json(killed / paths.RUN_META)["status"] == "running"
    assert not (killed / paths.ADAPTER_DIR).exists()
    resumable = last_checkpoint(killed)
    assert resumable is not None and Path(resumable).name.startswith("epoch-")
    # a checkpoint half-written by the kill: weights there, trainer state not yet. --resume must not pick it.
    done = int(Path(resumable).name.split("-")[1])
    half = killed / paths.CHECKPOINTS_DIR / f"epoch-{done + 1}"
    half.mkdir(exist_ok=True)
    (half / "adapter_model.safetensors").write_bytes(b"torn")
    assert last_checkpoint(killed) == resumable

    code = main(args + ["--resume"])
    assert code == 0, capsys.readouterr().err[-3000:]
    a = load_file(straight / paths.ADAPTER_DIR / "adapter_model.safetensors")
    b = load_file(killed / paths.ADAPTER_DIR / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    print(
        f"kill at step {died_at} of {total} (planned {kill_at}), resumed from {Path(resumable).name}: "
        f"max |adapter difference| = {worst:.3g}"
    )
    assert worst <= RESUME_ATOL
    assert read_json(killed / paths.RUN_META)["status"] == "done"
    summary = json.loads((killed / paths.TRAIN_SUMMARY).read_text())
    assert summary["steps"] == total
    steps = [r["step"] for r in read_jsonl_lenient(killed / paths.METRICS) if "loss" in r and r["split"] == "train"]
    assert sorted(steps) == list(range(1, total + 1)), "one metrics row per step, none twice after the resume"
    # the rates cover what this process trained (the epochs after the checkpoint) over this process's seconds
    assert summary["resumed_from_epoch"] == done
    here = summary["train_tokens"] * (summary["epochs_run"] - done) / summary["epochs_run"]
    assert summary["tokens_per_second"] == pytest.approx(here / summary["train_seconds"], rel=0.01)


MID_EPOCH_RUN = (*KILL_RUN, "train.epochs=2", "model.tiny_layers=4", "lora.top_layers=1", "train.save_steps=2")


def test_kill_9_mid_epoch_resumes_from_the_step_checkpoint_with_the_frozen_states_kept(tmp_path, capsys):
    """train.save_steps: killed within an epoch, the run resumes from its newest step checkpoint (not the epoch
    before), reads the frozen layers' output back instead of computing it again, and ends as a straight run."""
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    train(tiny_config(*MID_EPOCH_RUN), straight)
    steps_per_epoch = math.ceil(len(read_jsonl(straight / paths.DATA_DIR / "train.jsonl")) / 4)
    total = 2 * steps_per_epoch
    kill_at = steps_per_epoch + 3  # in epoch 2, after its first step checkpoint
    assert kill_at < total

    args = ["train", "--config", str(TINY_CONFIG), *_sets(MID_EPOCH_RUN), "--run-dir", str(killed)]
    proc = _start(_cli(*args), tmp_path / "stderr.log")
    _wait_for(proc, lambda: max(_train_steps(killed), default=0) >= kill_at, f"step {kill_at}")
    _kill(proc)
    resumable = last_checkpoint(killed)
    assert resumable is not None and Path(resumable).name.startswith("step-")
    resumed_at = int(Path(resumable).name.split("-")[1])
    assert resumed_at > steps_per_epoch and resumed_at % steps_per_epoch
    assert list((killed / paths.CHECKPOINTS_DIR / paths.FROZEN_DIR).glob("part-*.safetensors"))

    code = main(args + ["--resume"])
    assert code == 0, capsys.readouterr().err[-3000:]
    a = load_file(straight / paths.ADAPTER_DIR / "adapter_model.safetensors")
    b = load_file(killed / paths.ADAPTER_DIR / "adapter_model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) <= RESUME_ATOL
    summary = json.loads((killed / paths.TRAIN_SUMMARY).read_text())
    assert summary["steps"] == total and summary["train_seconds_total"] > 0
    steps = [r["step"] for r in read_jsonl_lenient(killed / paths.METRICS) if "loss" in r and r["split"] == "train"]
    assert sorted(steps) == list(range(1, total + 1)), "one metrics row per step, none twice after the resume"
    assert not (killed / paths.CHECKPOINTS_DIR / paths.FROZEN_DIR).exists()
    assert not list((killed / paths.CHECKPOINTS_DIR).glob("step-*"))


def _checkpoints_of_a_two_epoch_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    train(tiny_config("data.n=32", "train.epochs=2", "train.early_stopping_patience=0"), run)
    return run


def _evil_pickle() -> bytes:
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    return pickle.dumps(Evil())


def _replace_pickle(path: Path) -> None:
    """The torch zip kept, its data.pkl swapped for a pickle that runs a command when loaded."""
    import pickle
    import zipfile

    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    name = next(n for n in members if n.endswith("data.pkl"))

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    members[name] = pickle.dumps(Evil(), protocol=2)
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda ckpt: (ckpt / "adapter_model.safetensors").write_bytes(b"\x10\x00"), "SafetensorError"),
        (
            lambda ckpt: (ckpt / "adapter_model.safetensors").write_bytes(
                (ckpt / "adapter_model.safetensors").read_bytes()[:-100]
            ),
            "SafetensorError",
        ),
        (lambda ckpt: (ckpt / "rng_state.pth").write_bytes(_evil_pickle()), "rng_state.pth: not a readable"),
        (lambda ckpt: _replace_pickle(ckpt / "rng_state.pth"), "rng_state.pth: refers to posix.system"),
        (lambda ckpt: (ckpt / "optimizer.pt").write_bytes(b"PK\x03\x04 not a zip"), "optimizer.pt: not a readable"),
    ],
    ids=["weights cut to a stub", "weights truncated", "rng state replaced", "rng state tampered", "optimizer damaged"],
)
def test_a_damaged_last_checkpoint_resumes_from_the_one_before(tmp_path, capsys, caplog, damage, problem):
    run = _checkpoints_of_a_two_epoch_run(tmp_path)
    last = run / paths.CHECKPOINTS_DIR / "epoch-2"
    damage(last)
    with caplog.at_level("WARNING"):
        assert last_checkpoint(run) == str(run / paths.CHECKPOINTS_DIR / "epoch-1")
    warning = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(warning) == 1 and problem in warning[0] and "\n" not in warning[0]
    args = ["train", "--config", str(run / paths.RUN_CONFIG), "--run-dir", str(run), "--resume"]
    assert main(args) == 0, capsys.readouterr().err[-2000:]
    assert "Traceback" not in capsys.readouterr().err
    assert read_json(run / paths.TRAIN_SUMMARY)["resumed_from_epoch"] == 1


def test_a_failed_run_leaves_no_earlier_adapter_looking_current(tmp_path, monkeypatch):
    import fraudtune.train as train_module

    run = _checkpoints_of_a_two_epoch_run(tmp_path)
    assert (run / paths.ADAPTER_DIR).is_dir() and (run / paths.TRAIN_SUMMARY).exists()

    def broken(cfg):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(train_module, "build_model", broken)
    with pytest.raises(RuntimeError):
        train(tiny_config("data.n=32", "train.epochs=3"), run)
    assert not (run / paths.ADAPTER_DIR).exists() and not (run / paths.TRAIN_SUMMARY).exists()
    assert read_json(run / paths.RUN_META)["status"] == "failed"


def _complete_trials(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:
        return 0  # tables not created yet, or locked for a moment


def test_killed_study_resumes_without_rerunning_finished_trials(tmp_path, monkeypatch):
    """`fraudtune tune` (3 trials) killed -9 after its first trial finished; rerunning completes the study."""
    import optuna

    import fraudtune.tune.trial

    run_dir = tmp_path / "study"
    sets = ("tune.budget=full", "tune.ranks=[2, 4, 8]", "tune.lrs=[]", "tune.epochs=[]", "tune.heartbeat_seconds=1")
    sets += ("data.n=16", "train.epochs=1")
    args = ["tune", "--config", str(TINY_CONFIG), *_sets(sets), "--run-dir", str(run_dir)]
    proc = _start(_cli(*args), tmp_path / "stderr.log")
    db = run_dir / paths.TUNE_DIR / paths.STUDY_DB
    _wait_for(proc, lambda: _complete_trials(db) >= 1, "the first finished trial")
    _kill(proc)

    study = optuna.load_study(study_name="fraudtune-grid", storage=f"sqlite:///{db}")
    finished = {t.number: t.params["r"] for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert finished and len(finished) < 3
    adapters = {
        n: paths.trial_dir(run_dir / paths.TUNE_DIR, n) / paths.ADAPTER_DIR / "adapter_model.safetensors"
        for n in finished
    }
    before = {n: p.read_bytes() for n, p in adapters.items()}

    trained = []
    real_train = fraudtune.tune.trial.train

    def recording_train(cfg, run_dir, resume=False, callbacks=None):
        trained.append(cfg.lora.r)
        return real_train(cfg, run_dir, resume=resume, callbacks=callbacks)

    monkeypatch.setattr(fraudtune.tune.trial, "train", recording_train)
    assert main(args) == 0
    assert not set(trained) & set(finished.values())  # finished trials are not trained again
    results = read_json(run_dir / paths.TRAINING_RESULTS_JSON)
    complete = sorted(t["params"]["r"] for t in results["trials"] if t["state"] == "complete")
    assert complete == [2, 4, 8]
    assert {n: p.read_bytes() for n, p in adapters.items()} == before


WRITER = """
import itertools, sys
from fraudtune.files import write_json
for i in itertools.count():
    write_json(sys.argv[1], {"i": i, "blob": "x" * 3_000_000})
"""


def test_kill_9_during_an_atomic_write_leaves_the_old_or_the_new_file(tmp_path):
    target = tmp_path / "eval.json"
    proc = _start([sys.executable, "-c", WRITER, str(target)], tmp_path.parent / f"{tmp_path.name}-stderr.log")
    _wait_for(proc, target.exists, "the first write")
    time.sleep(random.Random(7).uniform(0.05, 0.3))
    _kill(proc)
    data = read_json(target)  # parses: never a torn file under the real name
    assert len(data["blob"]) == 3_000_000
    assert all(p.name.startswith(".eval.json.") for p in tmp_path.iterdir() if p != target)  # only temp files


def test_interrupted_write_keeps_the_previous_file(tmp_path, monkeypatch):
    from fraudtune.files import write_json

    target = tmp_path / "eval.json"
    write_json(target, {"v": 1})

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_json(target, {"v": 2})
    monkeypatch.undo()
    assert read_json(target) == {"v": 1} and [p.name for p in tmp_path.iterdir()] == ["eval.json"]


def test_resume_skips_checkpoints_without_trainer_state(tmp_path):
    from safetensors.torch import save_file

    root = tmp_path / paths.CHECKPOINTS_DIR
    for name, complete in [("epoch-1", True), ("epoch-2", True), ("epoch-10", False), ("checkpoint-99", True)]:
        (root / name).mkdir(parents=True)
        save_file({"w": torch.zeros(2)}, root / name / "adapter_model.safetensors")
        if complete:
            (root / name / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path) == str(root / "epoch-2")  # numeric order; the unrenamed Trainer folder ignored
    (root / "epoch-2" / "trainer_state.json").unlink()
    assert last_checkpoint(tmp_path) == str(root / "epoch-1")
    assert last_checkpoint(tmp_path / "nothing") is None


class _State:
    def __init__(self, losses):
        self.log_history = [{"eval_loss": x, "epoch": i + 1} for i, x in enumerate(losses)]


class _Control:
    should_training_stop = False


def test_early_stopping_counts_the_epochs_before_a_resume():
    """Patience 2, losses 3.0, 3.1 | kill, resume | 3.2: the resumed run stops where the straight one would."""
    callback, control = EarlyStopping(patience=2), _Control()
    callback.on_train_begin(None, _State([3.0, 3.1]), control)  # the Trainer restores log_history first
    callback.on_evaluate(None, None, control, metrics={"eval_loss": 3.2})
    assert control.should_training_stop


DAMAGED = [  # (stage, file, where to cut it, the error)
    ("report", paths.EVAL_JSON, 0.5, "damaged JSON"),
    ("report", paths.TRAIN_SUMMARY, 0.5, "damaged JSON"),
    ("report", paths.FORGETTING_JSON, 0.5, "damaged JSON"),
    ("report", paths.TRAINING_RESULTS_JSON, 0.5, "damaged JSON"),
    ("report", f"{paths.PREDICTIONS_DIR}/fine_tuned.jsonl", 0.45, "invalid JSON"),  # a torn line
    ("report", f"{paths.PREDICTIONS_DIR}/fine_tuned.jsonl", 0.5, "6 rows but eval.json tested 12"),  # at a newline
    ("roi", paths.EVAL_JSON, 0.5, "damaged JSON"),
    ("train", paths.RUN_META, 0.5, "damaged JSON"),
]


@pytest.mark.parametrize(
    ("verb", "name", "cut", "problem"), DAMAGED, ids=[f"{v}: {n} cut at {c:.0%}" for v, n, c, _ in DAMAGED]
)
def test_a_stage_refuses_a_damaged_artifact(tmp_path, capsys, verb, name, cut, problem):
    """A file cut short (a disk filled up, a copy interrupted): the reading stage names it, never uses it."""
    run_dir = make_fake_run(tmp_path / "run")
    target = run_dir / name
    assert target.exists(), name
    target.write_bytes(target.read_bytes()[: int(target.stat().st_size * cut)])
    argv = {
        "report": ["report", "--run-dir", str(run_dir)],
        "roi": ["roi", "--run-dir", str(run_dir), "--preset", "measured", "--set", "roi.doc_path=null"],
        "train": ["train", "--config", str(run_dir / paths.RUN_CONFIG), "--run-dir", str(run_dir), "--resume"],
    }[verb]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith(f"error: {target}") and problem in err


def test_report_guide_refuses_a_damaged_adapter_config(tmp_path):
    """The LoRA guide reads the adapter's config for the model shape: a damaged one is named, not a traceback."""
    from fraudtune.errors import FraudtuneError
    from fraudtune.report.docs_lora import run_shape
    from fraudtune.report.runfiles import RunResults

    adapter_cfg = tmp_path / paths.ADAPTER_DIR / "adapter_config.json"
    adapter_cfg.parent.mkdir()
    adapter_cfg.write_text('{"base_model_name_or_path": "/x", "r": 8')
    with pytest.raises(FraudtuneError, match="adapter_config.json: damaged JSON"):
        run_shape(RunResults(run_dir=tmp_path))
