"""File and folder names inside a run directory; no stage spells these as literals."""

from __future__ import annotations

from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent  # src/fraudtune: its resources/ ship with the package
REPO_ROOT = PACKAGE_ROOT.parents[1]

RUN_CONFIG = "config.yaml"
RUN_META = "meta.json"
DATA_DIR = "data"
DATASET = "fraud_dataset.jsonl"
DATASET_META = "fraud_dataset.meta.jsonl"
SPLITS = ("train", "val", "test")
DATA_CARD = "data_card.json"
IMPORT_REPORT = "import_report.json"  # a log import: columns kept and dropped, rejected rows, warm-up, leakage
REJECTED_ROWS = "rejected_rows.jsonl"  # a log import: one line per rejected row (where, field, reason)
WARMUP_META = "warmup.meta.jsonl"  # a log import: the warm-up rows left out of training, with their history
METRICS = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"
BEST_CHECKPOINT = "best.txt"
FROZEN_DIR = "frozen"  # under checkpoints/: the frozen layers' output, kept for a resume until training ends
ADAPTER_DIR = "fraud-lora-adapter"
MANIFEST = "manifest.json"
TRAIN_SUMMARY = "train_summary.json"
EVAL_JSON = "eval.json"
EVAL_MD = "eval.md"
PREDICTIONS_DIR = "predictions"
EVAL_DATA_DIR = "eval_data"
FORGETTING_JSON = "forgetting.json"
FORGETTING_MD = "forgetting.md"
FORGETTING_SUITE_JSON = "forgetting_suite.json"  # the standard benchmarks (forgetting/suite.py)
FORGETTING_SUITE_MD = "forgetting_suite.md"
FORGETTING_STRATEGIES_JSON = "forgetting_strategies.json"
FORGETTING_STRATEGIES_MD = "forgetting_strategies.md"
ROI_JSON = "roi.json"
TUNE_DIR = "tune"
STUDY_DB = "study.db"
TRIALS_LOG = "trials.jsonl"
BEST_CONFIG = "best_config.yaml"
TECHNIQUES_DIR = "techniques"
TRAINING_RESULTS_JSON = "training_results.json"
TRAINING_RESULTS_MD = "training_results.md"
ADVANCED_JSON = "advanced_techniques.json"
ADVANCED_MD = "advanced_techniques.md"
REPORT_DIR = "report"
STUDY_TEST_DIR = "study_test"
STUDY_RESULT = "study_result.json"
STUDY_PREDICTIONS = "study_predictions.jsonl"
STUDY_SCORING = "study_scoring.partial.jsonl"  # a setting's test answers while they are scored (resumable)
STUDY_JSON = "knowledge_study.json"
STUDY_MD = "knowledge_study.md"
STUDY_CHART = "knowledge_study.png"
STUDY_FROZEN_STORE = "frozen_store"  # the frozen layers' output shared by the settings trained on the same rows


def split_file(data_dir: Path, split: str) -> Path:
    """Chat JSONL of one split."""
    return data_dir / f"{split}.jsonl"


def meta_file(chat_file: Path) -> Path:
    """The metadata file kept beside a chat JSONL file (same order, one line per example)."""
    return chat_file.with_name(chat_file.name.removesuffix(".jsonl") + ".meta.jsonl")


def trial_dir(tune_dir: Path, number: int) -> Path:
    """RUN/tune/trial-<k>/: one Optuna trial, itself a complete run directory."""
    return tune_dir / f"trial-{number}"


def resolve_resource(path: Path) -> Path:
    """A relative path as given if it exists, else inside the installed package (the shipped configs/ and the
    default issuer profile, so `--config configs/default.yaml` works from any folder and from a plain
    `pip install`), else relative to the repository checkout."""
    if path.is_absolute() or path.exists():
        return path
    for root in (PACKAGE_ROOT, REPO_ROOT):
        if (root / path).exists():
            return root / path
    return path
