"""Advanced techniques: every arm trains against the same control, the comparisons follow the numbers, the doc.

One end-to-end run on the tiny model checks the arms' configs, the reduced bf16 pair and the ensemble
arithmetic; the recommendation rules are checked on hand-made measurements.
"""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config

from fraudtune import paths
from fraudtune.files import read_json, write_json
from fraudtune.report.docs_tuning import write_tuning_doc
from fraudtune.tune.run import tune
from fraudtune.tune.techniques_compare import compare

TECHNIQUES = {"lr_schedule", "gradient_accumulation", "mixed_precision", "early_stopping", "checkpoint_ensembling"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny runs on a shared 2-core machine: one torch thread avoids OpenMP oversubscription (3-6x faster)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def techniques_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("techniques")
    cfg = tiny_config("data.n=16", "tune.budget=full", "tune.bf16_steps=1")
    return run_dir, tune(cfg, run_dir, techniques=True)


def test_every_arm_changes_one_thing_in_the_control(techniques_run):
    run_dir, result = techniques_run
    runs = result["runs"]
    control = runs["control"]["params"]
    production = "bf16" if result["fast_bf16"] else "fp32"  # the control is what `auto` trains with here
    assert (control["scheduler"], control["precision"], control["early_stopping_patience"]) == ("linear", production, 0)
    assert control["epochs"] == 3  # epoch-1..3 exist for the ensemble

    def changed(arm):
        return {k: v for k, v in runs[arm]["params"].items() if control[k] != v}

    assert changed("schedule_cosine") == {"scheduler": "cosine"}
    assert changed("schedule_constant") == {"scheduler": "constant", "warmup_steps": 0}
    assert changed("accum_4x4") == {"grad_accum": 4}  # tiny.yaml's batch is already 4
    assert changed("accum_16x1") == {"batch_size": 16}
    assert changed("early_stopping") == {"early_stopping_patience": 1}
    if result["fast_bf16"]:  # the fp32 arm is the control's run in fp32
        assert changed("precision_fp32") == {"precision": "fp32"} and "precision_bf16" not in runs
        assert runs["precision_fp32"]["steps"] == runs["control"]["steps"]
    else:  # a CPU without fast bf16: both precisions on the same reduced step count
        assert changed("precision_bf16") == {"precision": "bf16", "max_steps": 1}
        assert changed("precision_fp32") == {"max_steps": 1}
        assert runs["precision_bf16"]["steps"] == runs["precision_fp32"]["steps"] == 1
    assert set(result["techniques"]) == TECHNIQUES
    assert all(item["recommendation"] for item in result["techniques"].values())
    assert read_json(run_dir / paths.ADVANCED_JSON)["techniques"].keys() == result["techniques"].keys()
    assert "## Checkpoint ensembling" in (run_dir / paths.ADVANCED_MD).read_text()


def test_ensemble_is_the_mean_of_the_epoch_probabilities(techniques_run):
    _, result = techniques_run
    ens = result["ensemble"]
    per_epoch = [ens["probabilities"][f"epoch-{e}"] for e in ens["epochs"]]
    mean = [sum(ps) / len(ps) for ps in zip(*per_epoch, strict=True)]
    assert ens["probabilities"]["ensemble"] == pytest.approx(mean, abs=1e-5)
    truth = ens["truth"]
    accuracy = sum((p >= 0.5) == t for p, t in zip(mean, truth, strict=True)) / len(truth)
    assert ens["ensemble_scores"]["accuracy"] == pytest.approx(accuracy, abs=1e-4)


def test_rerun_reuses_finished_arms(techniques_run, monkeypatch):
    run_dir, _ = techniques_run

    def no_training(*args, **kwargs):
        raise AssertionError("a finished arm was trained again")

    monkeypatch.setattr("fraudtune.tune.techniques.train", no_training)
    cfg = tiny_config("data.n=16", "tune.budget=full", "tune.bf16_steps=1")
    assert set(tune(cfg, run_dir, techniques=True)["techniques"]) == TECHNIQUES


def arm(val_loss, val_accuracy, seconds=10.0, epochs=3, rss=500.0, test=0.8):
    return {
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
        "train_seconds": seconds,
        "tokens_per_second": 1000 / seconds,
        "peak_rss_mb": rss,
        "epochs_run": epochs,
        "steps": 30,
        "test": {"accuracy": test, "f1": test},
    }


def measured(**changes):
    runs = {
        "control": arm(0.50, 0.80),
        "schedule_constant": arm(0.55, 0.70),
        "schedule_cosine": arm(0.496, 0.80),  # within 1% of the control's loss: no difference
        "accum_4x4": arm(0.50, 0.80, seconds=12, rss=400),
        "accum_16x1": arm(0.50, 0.80, seconds=9, rss=700),
        "early_stopping": arm(0.50, 0.80, seconds=7, epochs=2),
        "precision_fp32": arm(0.6, 0.7, seconds=2),
        "precision_bf16": arm(0.6, 0.7, seconds=100),
    }
    runs.update(changes)
    scores = {"accuracy": 0.8, "f1": 0.8, "log_loss": 0.4}
    better = {"accuracy": 0.9, "f1": 0.9, "log_loss": 0.3}
    ensemble = {"epochs": [1, 2, 3], "best_single": "epoch-3", "best_single_scores": scores, "scoring_passes": 3}
    return {
        "runs": runs,
        "bf16_reduced_steps": 3,
        "test_examples": 10,
        "ensemble": {**ensemble, "ensemble_scores": better},
    }


def test_with_fast_bf16_the_control_is_the_bf16_side():
    runs = measured()["runs"]
    runs["control"] = runs.pop("precision_bf16")
    result = {**measured(), "runs": runs, "bf16_reduced_steps": None}
    found = compare(result)["mixed_precision"]
    assert [a["arm"] for a in found["arms"]] == ["precision_fp32", "control"]
    assert found["arms"][1]["label"] == "bf16 (the control)" and "50.0x" in found["finding"]


def test_recommendations_follow_the_measurements():
    rec = {k: v["recommendation"] for k, v in compare(measured()).items()}
    assert rec["lr_schedule"].startswith("Keep warmup + linear decay")
    assert "16x1 was faster" in rec["gradient_accumulation"] and "300 MB less" in rec["gradient_accumulation"]
    assert rec["mixed_precision"].startswith("Keep fp32")
    assert "50.0x" in compare(measured())["mixed_precision"]["finding"]
    assert rec["early_stopping"].startswith("Enable early stopping") and "saved 1 epoch" in rec["early_stopping"]
    assert rec["checkpoint_ensembling"].startswith("Worth it")
    cosine_wins = compare(measured(schedule_cosine=arm(0.6, 0.9)))["lr_schedule"]["recommendation"]
    assert cosine_wins.startswith("Use warmup + cosine decay")


def test_tuning_doc_reads_its_numbers_from_the_json(techniques_run, tmp_path):
    run_dir, result = techniques_run
    results = {
        "budget": "small",
        "model": "tiny-random",
        "data_n": 16,
        "selection": "highest val_accuracy; ties: lowest val_loss",
        "trials": [],
        "best": {
            "study": "grid",
            "number": 3,
            "params": {"r": 16},
            "val_accuracy": 0.8125,
            "val_loss": 0.4321,
            "val_f1": 0.7,
            "config": "x",
        },
    }
    write_json(run_dir / paths.TRAINING_RESULTS_JSON, results)
    out = write_tuning_doc(run_dir / paths.TRAINING_RESULTS_JSON, run_dir / paths.ADVANCED_JSON, tmp_path / "T.md")
    text = out.read_text()
    assert "0.8125" in text and "0.4321" in text
    assert all(item["recommendation"] in text for item in result["techniques"].values())
    same = write_tuning_doc(run_dir, tmp_path / "U.md")  # the report's (run_dir, out_path) call
    assert same.read_text() == text
    assert result["techniques"]["early_stopping"]["finding"] in text
