"""Each technique vs its control, from the measured arms: a table, a finding and a production recommendation.

Every figure in a finding comes from the measured runs passed in; nothing here is a constant result.
"""

from __future__ import annotations

from typing import Any

ARM_LABELS = {
    "control": "warmup + linear decay (control)",
    "schedule_constant": "constant, no warmup",
    "schedule_cosine": "warmup + cosine decay",
    "accum_4x4": "batch 4 x accumulation 4",
    "accum_16x1": "batch 16 x accumulation 1",
    "early_stopping": "early stopping, patience 1",
    "precision_fp32": "fp32",
    "precision_bf16": "bf16",
}
LOSS_TOLERANCE = 0.01  # a validation-loss gap under 1% (at equal accuracy) is read as no difference
COLUMNS = ("val_loss", "val_accuracy", "train_seconds", "tokens_per_second", "peak_rss_mb", "epochs_run", "steps")


def compare(result: dict[str, Any]) -> dict[str, Any]:
    """{technique: {arms, finding, recommendation}} for the five techniques."""
    runs = result["runs"]
    bf16 = "precision_bf16" if "precision_bf16" in runs else "control"  # fast bf16: the control is bf16
    return {
        "lr_schedule": lr_schedule(runs),
        "gradient_accumulation": accumulation(runs),
        "mixed_precision": mixed_precision(runs, bf16, result["bf16_reduced_steps"]),
        "early_stopping": early_stopping(runs),
        "checkpoint_ensembling": ensembling(result["ensemble"], result["test_examples"]),
    }


def arm_rows(runs: dict[str, Any], names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        run = runs[name]
        row = {"arm": name, "label": ARM_LABELS[name], **{c: run.get(c) for c in COLUMNS}}
        row |= {"test_accuracy": run["test"]["accuracy"], "test_f1": run["test"]["f1"]}
        rows.append(row)
    return rows


def beats(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Higher validation accuracy (by at least one example), or equal accuracy and a loss lower by > 1%."""
    acc_a, acc_b = a["val_accuracy"] or 0, b["val_accuracy"] or 0
    if abs(acc_a - acc_b) > 1e-9:
        return acc_a > acc_b
    if a["val_loss"] is None or b["val_loss"] is None:
        return False
    return a["val_loss"] < b["val_loss"] * (1 - LOSS_TOLERANCE)


def lr_schedule(runs: dict[str, Any]) -> dict[str, Any]:
    rows = arm_rows(runs, ["control", "schedule_constant", "schedule_cosine"])
    control = rows[0]
    best = control
    for row in rows[1:]:
        if beats(row, best):
            best = row
    finding = "; ".join(
        f"{r['label']}: val loss {r['val_loss']}, val accuracy {r['val_accuracy']}, test accuracy {r['test_accuracy']}"
        for r in rows
    )
    if best["arm"] == "control":
        rec = (
            "Keep warmup + linear decay (train.scheduler=linear): no other schedule beat it on validation "
            "(by a validation example, or by more than 1% loss at equal accuracy)."
        )
    else:
        rec = (
            f"Use {best['label']}: validation accuracy {best['val_accuracy']} vs {control['val_accuracy']} "
            f"(loss {best['val_loss']} vs {control['val_loss']}); confirm on the full data before switching."
        )
    return {"name": "LR schedule", "arms": rows, "finding": finding, "recommendation": rec}


def accumulation(runs: dict[str, Any]) -> dict[str, Any]:
    rows = arm_rows(runs, ["accum_4x4", "accum_16x1"])
    acc, big = rows
    speed = _ratio(acc["train_seconds"], big["train_seconds"])
    finding = (
        f"Same 16 examples per update. Val loss {acc['val_loss']} (4x4) vs {big['val_loss']} (16x1); "
        f"train seconds {acc['train_seconds']} vs {big['train_seconds']} (4x4 takes {speed}x); "
        f"peak RSS {acc['peak_rss_mb']} vs {big['peak_rss_mb']} MB."
    )
    if big["peak_rss_mb"] is not None and acc["peak_rss_mb"] is not None and big["peak_rss_mb"] > acc["peak_rss_mb"]:
        memory = f"4x4 needs {round(big['peak_rss_mb'] - acc['peak_rss_mb'], 1)} MB less at peak"
    else:
        memory = "4x4 saved no measurable memory here"
    faster = "16x1" if (big["train_seconds"] or 0) < (acc["train_seconds"] or 0) else "4x4"
    rec = (
        f"Use the largest per-device batch that fits ({faster} was faster here) and accumulation only to reach "
        f"the update size when memory runs out: {memory}."
    )
    return {"name": "Gradient accumulation", "arms": rows, "finding": finding, "recommendation": rec}


def mixed_precision(runs: dict[str, Any], bf16: str, reduced_steps: int | None) -> dict[str, Any]:
    rows = arm_rows(runs, ["precision_fp32", bf16])
    if bf16 == "control":
        rows[1]["label"] = "bf16 (the control)"
    full, half = rows
    slower = _ratio(half["train_seconds"], full["train_seconds"])
    scope = f" (both on a reduced run of {reduced_steps} steps: bf16 is too slow here)" if reduced_steps else ""
    finding = (
        f"bf16 took {slower}x the fp32 time{scope}; tokens/s {full['tokens_per_second']} (fp32) vs "
        f"{half['tokens_per_second']} (bf16); peak RSS {full['peak_rss_mb']} vs {half['peak_rss_mb']} MB; "
        f"val loss {full['val_loss']} vs {half['val_loss']}."
    )
    if slower is not None and slower > 1:
        rec = (
            "Keep fp32 on this hardware (train.precision=auto already does: bf16 needs AVX512-BF16/AMX or a "
            "bf16 GPU); on such hardware re-measure, bf16 usually halves activation memory and speeds up training."
        )
    else:
        rec = "Use bf16 (train.precision=auto picks it here): faster at a comparable validation loss."
    return {"name": "Mixed precision", "arms": rows, "finding": finding, "recommendation": rec}


def early_stopping(runs: dict[str, Any]) -> dict[str, Any]:
    rows = arm_rows(runs, ["control", "early_stopping"])
    control, stopped = rows
    saved = (control["epochs_run"] or 0) - (stopped["epochs_run"] or 0)
    finding = (
        f"Ran {stopped['epochs_run']} of {control['epochs_run']} epochs ({saved} saved, train seconds "
        f"{stopped['train_seconds']} vs {control['train_seconds']}); test accuracy {stopped['test_accuracy']} vs "
        f"{control['test_accuracy']}."
    )
    if saved > 0 and (stopped["test_accuracy"] or 0) >= (control["test_accuracy"] or 0):
        rec = f"Enable early stopping on validation loss: it saved {saved} epoch(s) at no accuracy cost."
    elif saved > 0:
        rec = "Enable it with patience 2 (the default): patience 1 stopped early but lost test accuracy."
    else:
        rec = "It did not trigger in this run; keep patience 2 (the default) as a free guard for longer runs."
    return {"name": "Early stopping", "arms": rows, "finding": finding, "recommendation": rec}


def ensembling(ensemble: dict[str, Any], n_test: int) -> dict[str, Any]:
    single, averaged = ensemble["best_single_scores"], ensemble["ensemble_scores"]
    finding = (
        f"Mean of the epoch-{ensemble['epochs'][0]}..{ensemble['epochs'][-1]} fraud probabilities: test accuracy "
        f"{averaged['accuracy']} vs {single['accuracy']} for the best single ({ensemble['best_single']}), F1 "
        f"{averaged['f1']} vs {single['f1']}, log loss {averaged['log_loss']} vs {single['log_loss']}; scoring "
        f"costs {ensemble['scoring_passes']} forward passes instead of 1."
    )
    one_example = 1 / max(1, n_test)
    if averaged["accuracy"] - single["accuracy"] >= one_example - 1e-9:
        rec = (
            f"Worth it where latency allows {ensemble['scoring_passes']} passes (batch scoring): it gained "
            f"{round(averaged['accuracy'] - single['accuracy'], 4)} test accuracy."
        )
    else:
        rec = "Ship the single best checkpoint: averaging epochs did not gain a test example for the extra passes."
    return {"name": "Checkpoint ensembling", "arms": [], "finding": finding, "recommendation": rec}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None
