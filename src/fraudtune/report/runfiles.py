"""Read a run directory for the report: every artifact is optional, a missing one is None (never a guess).

A damaged file is still an error (read_json names it): a report must not quietly drop a result that exists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fraudtune import paths
from fraudtune.errors import FraudtuneError
from fraudtune.files import read_json, read_jsonl, read_jsonl_lenient

MODEL_ORDER = ("fine_tuned", "prompted_base", "rules_engine", "gradient_boosting")
MODEL_NAMES = {
    "fine_tuned": "Fine-tuned (LoRA)",
    "prompted_base": "Prompted base model",
    "rules_engine": "Rules engine",
    "gradient_boosting": "Gradient boosting",
    "api": "API model (prompted)",
}
MODEL_COLORS = {
    "fine_tuned": "#0072B2",
    "prompted_base": "#E69F00",
    "rules_engine": "#009E73",
    "gradient_boosting": "#CC79A7",
    "api": "#56B4E9",
}
FORGETTING_CATEGORIES = ("general_knowledge", "language", "reasoning", "fraud", "fraud_plus_general")


@dataclass
class RunResults:
    """Everything the report shows, read once; None (or empty) where the stage has not run."""

    run_dir: Path
    config: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    data_card: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)
    train_summary: dict[str, Any] | None = None
    eval: dict[str, Any] | None = None
    forgetting: dict[str, Any] | None = None
    roi: dict[str, Any] | None = None
    tuning: list[dict[str, Any]] | None = None
    predictions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    test_meta: dict[str, dict[str, Any]] = field(default_factory=dict)

    def models(self) -> list[str]:
        """Model keys of eval.json, the usual four first."""
        found = list((self.eval or {}).get("models", {}))
        return [m for m in MODEL_ORDER if m in found] + sorted(m for m in found if m not in MODEL_ORDER)

    def command(self, verb: str) -> str:
        """The command that produces a missing artifact of this run."""
        return f"fraudtune {verb} --run-dir {self.run_dir}"


def load_run(run_dir: Path) -> RunResults:
    """Read every artifact the report can show from `run_dir`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FraudtuneError(f"{run_dir}: run directory not found; pass --run-dir of a run (e.g. runs/demo)")
    run = RunResults(run_dir=run_dir)
    run.config = _yaml(run_dir / paths.RUN_CONFIG)
    run.meta = _json(run_dir / paths.RUN_META)
    run.data_card = _json(run_dir / paths.DATA_DIR / paths.DATA_CARD)
    run.metrics = read_jsonl_lenient(run_dir / paths.METRICS)
    run.train_summary = _json(run_dir / paths.TRAIN_SUMMARY)
    run.eval = _json(run_dir / paths.EVAL_JSON)
    run.forgetting = _json(run_dir / paths.FORGETTING_JSON)
    run.roi = _json(run_dir / paths.ROI_JSON)
    run.tuning = _trials(_json(run_dir / paths.TRAINING_RESULTS_JSON))
    pred_dir = run_dir / paths.PREDICTIONS_DIR
    if pred_dir.is_dir():
        run.predictions = {p.stem: _predictions(p, run.eval) for p in sorted(pred_dir.glob("*.jsonl"))}
    run.test_meta = _test_meta(run)
    return run


def roi_primary(roi: dict[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
    """The analysis a roi.json leads with: measured when a run was measured, else the seed preset."""
    if not roi:
        return None
    if roi.get("measured"):
        return "measured", roi["measured"]
    if roi.get("seed"):
        return "seed", roi["seed"]
    return None


def completed_trials(trials: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Tuning trials that finished with a validation accuracy (pruned and failed trials have none to plot)."""
    done = []
    for trial in trials or []:
        state = str(trial.get("state", "COMPLETE")).upper()
        if state.endswith("COMPLETE") and isinstance(trial.get("val_accuracy"), int | float):
            done.append(trial)
    return done


def trial_param(trial: dict[str, Any], name: str) -> Any:
    """A trial's hyperparameter by short name: `r` matches `r` or a dotted key such as `lora.r`."""
    params = trial.get("params") or {}
    if name in params:
        return params[name]
    return next((v for k, v in params.items() if k.rsplit(".", 1)[-1] == name), None)


def _test_meta(run: RunResults) -> dict[str, dict[str, Any]]:
    """transaction_id -> metadata (true label, category, transaction) of the evaluated test set."""
    candidates = []
    source = ((run.eval or {}).get("test") or {}).get("source")
    if isinstance(source, str) and source.endswith(".jsonl"):
        candidates.append(paths.meta_file(Path(source)))
    candidates.append(paths.meta_file(paths.split_file(run.run_dir / paths.DATA_DIR, "test")))
    for path in candidates:
        if path.exists():
            return {row["transaction_id"]: row for row in read_jsonl(path) if "transaction_id" in row}
    return {}


def _predictions(path: Path, eval_json: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One model's predictions; a file cut at a line boundary still parses, so its row count is checked too."""
    rows = read_jsonl(path)
    expected = ((eval_json or {}).get("test") or {}).get("n")
    if isinstance(expected, int) and len(rows) != expected:
        raise FraudtuneError(
            f"{path}: {len(rows)} rows but eval.json tested {expected} transactions (cut short?); rerun `fraudtune "
            "evaluate`"
        )
    return rows


def _trials(obj: Any) -> list[dict[str, Any]] | None:
    if obj is None:
        return None
    if isinstance(obj, dict):
        obj = obj.get("trials", [])
    return [t for t in obj if isinstance(t, dict)]


def _json(path: Path) -> Any:
    return read_json(path) if path.exists() else None


def _yaml(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise FraudtuneError(f"{path}: invalid YAML ({exc}); rerun the stage that writes it") from exc
