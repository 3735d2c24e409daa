"""A run directory with every artifact the report reads, in the shapes the stages write (no model needed).

Numbers are made up but consistent (confusion counts add up to the test size); roi.json is computed by the real
`fraudtune.roi.roi` from these files. Merchant names carry HTML/script injection strings on purpose.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from fraudtune import paths
from fraudtune.config import config_to_dict, load_config
from fraudtune.files import write_json, write_jsonl, write_yaml

INJECTIONS = (
    '<script>alert("pwned")</script>',
    "<img src=x onerror=alert(1)>",
    'Tom & Jerry\'s "Deli"',
)
CATEGORIES = ("clear_fraud", "clear_legitimate", "borderline", "company_specific")
N_TEST = 12


def make_fake_run(run_dir: Path, parts: tuple[str, ...] = ("train", "eval", "forgetting", "roi", "tune")) -> Path:
    """Write the chosen stages' artifacts into `run_dir` (always config, meta, data card and test metadata)."""
    run_dir = Path(run_dir)
    cfg = load_config(paths.REPO_ROOT / "configs" / "tiny.yaml", ["roi.doc_path=null"])
    write_yaml(run_dir / paths.RUN_CONFIG, config_to_dict(cfg))
    write_json(run_dir / paths.RUN_META, {"created_at": "2026-01-01T00:00:00+00:00", "git_sha": "abc1234"})
    metas = _test_meta()
    data_dir = run_dir / paths.DATA_DIR
    write_jsonl(paths.meta_file(paths.split_file(data_dir, "test")), metas)
    write_json(data_dir / paths.DATA_CARD, {"n": 120, "splits": {"train": 96, "val": 12, "test": N_TEST}})
    if "train" in parts:
        write_jsonl(run_dir / paths.METRICS, _metrics())
        write_json(run_dir / paths.TRAIN_SUMMARY, _train_summary())
    if "eval" in parts:
        write_json(run_dir / paths.EVAL_JSON, _eval(metas))
        for model, rows in _predictions(metas).items():
            write_jsonl(run_dir / paths.PREDICTIONS_DIR / f"{model}.jsonl", rows)
    if "forgetting" in parts:
        write_json(run_dir / paths.FORGETTING_JSON, _forgetting())
    if "roi" in parts and "eval" in parts and "train" in parts:
        from fraudtune.roi import roi

        roi(cfg, run_dir, preset="measured")
    if "tune" in parts:
        write_json(run_dir / paths.TRAINING_RESULTS_JSON, _trials())
    return run_dir


def _test_meta() -> list[dict[str, Any]]:
    rows = []
    for i in range(N_TEST):
        fraud = i % 3 == 0
        name = INJECTIONS[i] if i < len(INJECTIONS) else f"Shop {i}"
        txn = {
            "transaction_id": f"T-{i:04d}",
            "timestamp": f"2026-04-{i + 1:02d}T0{i % 10}:30:00",
            "amount": 25.5 + 100 * i,
            "currency": "USD",
            "merchant": {"id": f"M-SHOP-{i:04d}", "name": name, "category": "electronics", "country": "US"},
            "channel": "online",
        }
        rows.append(
            {
                "transaction_id": txn["transaction_id"],
                "category": CATEGORIES[i % 4],
                "label": "FRAUD" if fraud else "LEGITIMATE",
                "risk_score": 90 if fraud else 10,
                "red_flags": ["AMOUNT_SPIKE"] if fraud else [],
                "transaction": txn,
            }
        )
    return rows


def _metrics() -> list[dict[str, Any]]:
    rows = []
    for step in range(10, 61, 10):
        rows.append({"step": step, "epoch": step / 30, "split": "train", "loss": 2.5 / (1 + step / 20), "lr": 1e-4})
        if step % 30 == 0:
            rows.append({"step": step, "epoch": step / 30, "split": "val", "loss": 2.0 / (1 + step / 40)})
            rows.append({"step": step, "epoch": step / 30, "split": "val", "val_accuracy": 0.6 + step / 300})
    rows.append({"step": 60, "epoch": 2.0, "split": "train", "train_loss": 1.2, "train_runtime": 30.0})
    return rows


def _train_summary() -> dict[str, Any]:
    return {
        "method": "lora",
        "trainable": "trainable params: 460,800 || all params: 134,975,808 || trainable%: 0.3414",
        "trainable_params": 460_800,
        "device": "cpu",
        "examples": 96,
        "epochs_run": 2.0,
        "steps": 60,
        "train_seconds": 1800.0,
        "train_tokens": 120_000,
        "tokens_per_second": 66.7,
        "peak_rss_mb": 2100.0,
        "best_checkpoint": "epoch-2",
        "best_val_loss": 1.0,
    }


MODEL_SCORES = {"fine_tuned": 0.92, "prompted_base": 0.75, "rules_engine": 0.83, "gradient_boosting": 0.88}


def _eval(metas: list[dict[str, Any]]) -> dict[str, Any]:
    models = {}
    for k, (model, score) in enumerate(MODEL_SCORES.items()):
        m: dict[str, Any] = {
            "accuracy": score,
            "precision": score - 0.02,
            "recall": score - 0.05,
            "f1": score - 0.035,
            "roc_auc": score + 0.03,
            "pr_auc": score,
            "confusion": {"tp": 3, "fp": k % 2, "tn": 8 - k % 2, "fn": 1},
            "ci": {m: [round(score - 0.1, 3), round(min(score + 0.05, 1.0), 3)] for m in ("accuracy", "f1")},
            "brier": round(0.25 - score / 5, 3),
            "calibration": [
                {"bin": b, "mean_predicted": b / 5 + 0.1, "fraction_positive": min(1.0, b / 5 + 0.05 * k), "count": 3}
                for b in range(5)
            ],
            "company_knowledge": {"accuracy": score - 0.1, "n": 4, "rulebook": {"accuracy": score}},
            "edge_cases": {"accuracy": score - 0.2, "n": 3},
        }
        if model != "fine_tuned":
            m["mcnemar_p"] = 0.03 * (k + 1)
        if model in ("fine_tuned", "prompted_base"):
            m |= {
                "consistency": 0.97 if model == "fine_tuned" else 0.81,
                "parse_rate": 1.0 - 0.1 * k,
                "red_flag_f1": 0.7,
                "risk_score_mae": 8.5 + k,
                "latency_ms_p50": 250.0 * (k + 1),
                "latency_ms_p95": 400.0 * (k + 1),
                "prompt_tokens_per_request": 300.0 if model == "fine_tuned" else 1800.0,
                "completion_tokens_per_request": 60.0,
                "cost_per_1k": 0.57 if model == "fine_tuned" else 2.82,
            }
        models[model] = m
    by_category = {c: sum(m["category"] == c for m in metas) for c in CATEGORIES}
    return {"test": {"source": "data/test.jsonl", "n": len(metas), "by_category": by_category}, "models": models}


def _predictions(metas: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    rng = random.Random(0)
    out = {}
    for model, score in MODEL_SCORES.items():
        rows = []
        for i, meta in enumerate(metas):
            # the prompted model gets the injection-named transactions wrong: they are shown as disagreements
            right = rng.random() < score and not (model == "prompted_base" and i < len(INJECTIONS))
            label = meta["label"] if right else ("LEGITIMATE" if meta["label"] == "FRAUD" else "FRAUD")
            row = {
                "transaction_id": meta["transaction_id"],
                "label": label,
                "risk_score": 90 if label == "FRAUD" else 10,
                "fraud_probability": 0.9 if label == "FRAUD" else 0.1,
                "red_flags": ["AMOUNT_SPIKE"] if label == "FRAUD" else [],
                "reasoning": "</td><b>bold</b> reasoning",
            }
            if model == "prompted_base" and meta["transaction_id"] == "T-0005":
                row = {"transaction_id": meta["transaction_id"], "label": None, "error": "no label line"}
            rows.append(row)
        out[model] = rows
    return out


def _forgetting() -> dict[str, Any]:
    def metric(before: float, after: float, higher: bool = True) -> dict[str, Any]:
        d = round(after - before, 4)
        return {
            "before": before,
            "after": after,
            "delta": d,
            "ci": [d - 0.05, d + 0.05],
            "n": 16,
            "higher_is_better": higher,
        }

    cats = {
        "general_knowledge": ("mc_accuracy", {"mc_accuracy": metric(0.5, 0.48)}),
        "language": ("corpus_perplexity", {"corpus_perplexity": metric(12.0, 12.4, False)}),
        "reasoning": ("answer_match", {"answer_match": metric(0.3, 0.31)}),
        "fraud": ("f1", {"f1": metric(0.4, 0.9), "accuracy": metric(0.5, 0.9)}),
        "fraud_plus_general": ("both_correct", {"both_correct": metric(0.2, 0.4)}),
    }
    out: dict[str, Any] = {"adapter": "fraud-lora-adapter", "base_model": "tiny-random"}
    for cat, (headline, metrics) in cats.items():
        out[cat] = {"metric": headline, **metrics[headline], "metrics": metrics}
    out["language"]["kl_divergence"] = {"mean": 0.01, "ci": [0.005, 0.02], "tokens": 500}
    return out


def _trials() -> dict[str, Any]:
    trials = []
    for i, r in enumerate((4, 8, 16, 32)):
        trials.append(_trial(i, "rank", r, 2e-4, 0.7 + 0.05 * (r == 8)))
    for i, lr in enumerate((1e-5, 5e-5, 1e-4, 2e-4)):
        trials.append(_trial(4 + i, "lr", 8, lr, 0.6 + 0.05 * i))
    trials.append({**_trial(8, "lr", 8, 1e-3, None), "state": "pruned"})
    return {"trials": trials, "budget": "small", "model": "tiny-random"}


def _trial(number: int, phase: str, r: int, lr: float, acc: float | None) -> dict[str, Any]:
    return {
        "number": number,
        "phase": phase,
        "study": "grid",
        "params": {"lora.r": r, "train.lr": lr, "train.epochs": 3},
        "val_accuracy": acc,
        "val_loss": None if acc is None else round(2 - acc, 3),
        "state": "complete",
    }
