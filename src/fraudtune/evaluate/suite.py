"""`fraudtune evaluate`: the fine-tuned adapter against the baselines, all on the same test transactions.

Writes RUN/eval.json, RUN/eval.md (the comparison table) and RUN/predictions/<model>.jsonl (every model's
answer per transaction, for reports). eval.json:

  test       {source, n, fraud_share, by_category: {category: {n, fraud}}, generation_n, ...}
  settings   the eval section used, plus the seed and the prompted baseline's prompt facts
  models     {fine_tuned, prompted_base, rules_engine, gradient_boosting[, api]}: see summary.model_summary
  timings_s  seconds per part
  notes      how the less obvious numbers were measured
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fraudtune import paths
from fraudtune.config import RunConfig, load_config
from fraudtune.errors import FraudtuneError
from fraudtune.evaluate.baselines import GradientBoosting, few_shot_examples, prompted_chats, rules_engine
from fraudtune.evaluate.llm import run_regime
from fraudtune.evaluate.render import NOTES, render_markdown, render_table
from fraudtune.evaluate.summary import summarise
from fraudtune.evaluate.testset import TestSet, generation_subset, load_test_set, read_meta
from fraudtune.files import read_jsonl, write_json, write_jsonl, write_text_atomic
from fraudtune.profile import Profile, load_profile
from fraudtune.runmeta import set_status

__all__ = ["evaluate", "render_table"]
log = logging.getLogger(__name__)


class Timer:
    """Seconds per named part, logged as each part ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, part: str) -> Iterator[None]:
        began = time.perf_counter()
        yield
        self.add(part, time.perf_counter() - began)

    def add(self, part: str, seconds: float) -> None:
        self.seconds[part] = round(seconds, 2)
        log.info("evaluate: %s took %.1f s", part, seconds)


def evaluate(cfg: RunConfig, run_dir: Path, test_file: Path | None = None, test_n: int | None = None) -> dict[str, Any]:
    """Score every model on the test set, compute the metrics, write eval.json / eval.md / predictions.

    The base model and the profile are the adapter's own (its stored run config); the eval section is `cfg`'s.

    Args:
        cfg: run config; its `eval` section sets subsets, bootstrap, prices, the optional api baseline.
        run_dir: the trained run (holds data/ and fraud-lora-adapter/).
        test_file: a chat JSONL with its .meta.jsonl beside it, instead of RUN/data/test.jsonl.
        test_n: draw a fresh test set of this size from the profile (seed eval.test_seed) into RUN/eval_data.
    """
    run_dir = Path(run_dir)
    if not (run_dir / paths.ADAPTER_DIR).is_dir():
        raise FraudtuneError(f"{run_dir / paths.ADAPTER_DIR}: not found; run `fraudtune train` first or pass --run-dir")
    set_status(run_dir, "evaluate", "running")
    try:
        result = _evaluate(cfg, run_dir, test_file, test_n)
    except KeyboardInterrupt:
        set_status(run_dir, "evaluate", "cancelled")
        raise
    except BaseException:
        set_status(run_dir, "evaluate", "failed")
        raise
    set_status(run_dir, "evaluate", "done")
    return result


def _evaluate(cfg: RunConfig, run_dir: Path, test_file: Path | None, test_n: int | None) -> dict[str, Any]:
    timer = Timer()
    if cfg.train.threads:
        import torch

        torch.set_num_threads(cfg.train.threads)
    adapter_dir = run_dir / paths.ADAPTER_DIR
    run_cfg = _run_config(adapter_dir)
    profile = load_profile(run_cfg.data.profile)
    train_rows, train_metas, seen = _training_data(run_dir)
    with timer("test set"):
        test = load_test_set(run_cfg.data, cfg.eval, run_dir, test_file, test_n, seen)
    subset = generation_subset(test.rows, cfg.eval.generation_subset, cfg.seed)
    log.info("evaluate: %d test transactions, %d for generation-based metrics", len(test.rows), len(subset))
    shots = few_shot_examples(train_rows, train_metas, cfg.eval.few_shot_k, cfg.seed)
    records = _fast_baselines(test, train_metas, profile, cfg.seed, timer)
    records["fine_tuned"] = _fine_tuned(adapter_dir, test, subset, cfg, timer)
    records["prompted_base"] = _prompted_base(run_cfg, test, subset, shots, profile, cfg, timer)
    if cfg.eval.baseline_url:
        from fraudtune.evaluate.api import api_baseline

        with timer("api"):
            records["api"] = api_baseline(prompted_chats(test.transactions, profile, shots), cfg.eval, profile)
    with timer("metrics"):
        models = summarise(records, test.rows, subset, cfg.eval, cfg.seed, profile)
    with timer("injection"):  # 15 scoring passes per FRAUD case and model: run on the generation subset
        _injection(models, adapter_dir, run_cfg, [test.rows[i] for i in subset], shots, profile, cfg)
    result = {
        "run_dir": str(run_dir),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "test": {**test.info, "generation_n": len(subset)},
        "settings": {"seed": cfg.seed, **cfg.eval.model_dump(mode="json"), "few_shot_examples": len(shots) // 2},
        "models": models,
        "timings_s": timer.seconds,
        "notes": NOTES,
    }
    write_outputs(run_dir, result, records, test)
    return result


def _training_data(run_dir: Path) -> tuple[list[dict], list[dict], list[dict]]:
    """Train chat rows and metas (few-shot examples, gradient boosting), and every train/val transaction."""
    data_dir = run_dir / paths.DATA_DIR
    train_chat = paths.split_file(data_dir, "train")
    if not train_chat.exists():
        raise FraudtuneError(f"{train_chat}: not found; the baselines learn from the run's train split")
    train_rows, train_metas = read_jsonl(train_chat), read_meta(train_chat)
    seen = [m["transaction"] for m in train_metas + read_meta(paths.split_file(data_dir, "val"))]
    return train_rows, train_metas, seen


def _fast_baselines(
    test: TestSet, train_metas: list[dict], profile: Profile, seed: int, timer: Timer
) -> dict[str, list[dict]]:
    """The rules engine and gradient boosting (trained on the train split): milliseconds, no model to load."""
    records = {}
    with timer("rules_engine"):
        records["rules_engine"] = rules_engine(test.transactions, profile)
    with timer("gradient_boosting"):
        gb = GradientBoosting(seed).fit([m["transaction"] for m in train_metas], [m["label"] for m in train_metas])
        records["gradient_boosting"] = gb.predict(test.transactions)
    return records


def _injection(
    models: dict[str, Any],
    adapter_dir: Path,
    run_cfg: RunConfig,
    rows: list[dict[str, Any]],
    shots: list[dict[str, str]],
    profile: Profile,
    cfg: RunConfig,
) -> None:
    """models.<fine_tuned|prompted_base>.injection_flip_rate (evaluate/injection.py); a failure there is logged
    and recorded, never the end of the suite's other numbers."""
    from fraudtune.evaluate.injection import injection_summary

    try:
        found = injection_summary(
            adapter_dir, run_cfg.model, rows, shots, profile, cfg.seed, cfg.train.eval_batch_size, cfg.eval.precision
        )
    except Exception as exc:  # noqa: BLE001 - an optional measurement
        log.warning("evaluate: prompt-injection slice failed (%s: %s)", type(exc).__name__, exc)
        for key in ("fine_tuned", "prompted_base"):
            models[key].update(injection_flip_rate=None, injection={"error": f"{type(exc).__name__}: {exc}"})
        return
    for key, value in found.items():
        models[key].update(injection_flip_rate=value["flip_rate"], injection=value)


def _run_config(adapter_dir: Path) -> RunConfig:
    from fraudtune.modeling.loading import ADAPTER_RUN_CONFIG

    stored = adapter_dir / ADAPTER_RUN_CONFIG
    if not stored.exists():
        raise FraudtuneError(f"{stored}: missing; not an adapter written by `fraudtune train`")
    return load_config(stored)


def _fine_tuned(adapter_dir: Path, test: TestSet, subset: list[int], cfg: RunConfig, timer: Timer) -> list[dict]:
    """The run's adapter: Predictor.score for every transaction, then explanations and consistency on the subset."""
    from fraudtune.predict import load

    with timer("fine_tuned.load"):
        predictor = load(adapter_dir, precision=cfg.eval.precision)
    with timer("fine_tuned.scoring"):
        scored = predictor.score(test.transactions, cfg.train.eval_batch_size, progress=True)
    chats = predictor.chats(test.transactions)
    ecfg = cfg.eval
    if predictor.answer_order == "evidence_first":  # a sampled decision comes after the flags and the score
        ecfg = ecfg.model_copy(update={"decision_max_new_tokens": ecfg.max_new_tokens})
    records, parts = run_regime(
        predictor.model,
        predictor.tokenizer,
        chats,
        subset,
        predictor.profile,
        ecfg,
        cfg.seed,
        cfg.train.eval_batch_size,
        probs=[s["fraud_probability"] for s in scored],
        exact_consistency=predictor.answer_order == "verdict_first",
    )
    for part, seconds in parts.items():
        timer.add(f"fine_tuned.{'prefix' if part == 'scoring' else part}", seconds)
    del predictor
    gc.collect()
    return records


def _prompted_base(
    run_cfg: RunConfig,
    test: TestSet,
    subset: list[int],
    shots: list[dict[str, str]],
    profile: Profile,
    cfg: RunConfig,
    timer: Timer,
) -> list[dict]:
    """The same base model without the adapter, the rulebook and few-shot turns in its prompt."""
    import torch

    from fraudtune.modeling.loading import inference_dtype, load_base

    with timer("prompted_base.load"):
        model, tokenizer = load_base(run_cfg.model, inference_dtype(cfg.eval.precision))
        if torch.cuda.is_available():
            model = model.to("cuda")
    chats = prompted_chats(test.transactions, profile, shots)
    records, parts = run_regime(model, tokenizer, chats, subset, profile, cfg.eval, cfg.seed, cfg.train.eval_batch_size)
    for part, seconds in parts.items():
        timer.add(f"prompted_base.{part}", seconds)
    del model
    gc.collect()
    return records


def write_outputs(run_dir: Path, result: dict[str, Any], records: dict[str, list[dict]], test: TestSet) -> None:
    """predictions/<model>.jsonl, then eval.json and eval.md (each atomically)."""
    for key, rows in records.items():
        write_jsonl(run_dir / paths.PREDICTIONS_DIR / f"{key}.jsonl", prediction_rows(rows, test))
    write_json(run_dir / paths.EVAL_JSON, result)
    write_text_atomic(run_dir / paths.EVAL_MD, render_markdown(result))


def prediction_rows(rows: list[dict[str, Any]], test: TestSet) -> list[dict[str, Any]]:
    """One line per test transaction: truth, the model's decision and probability, and its answer if generated."""
    out = []
    for record, meta in zip(rows, test.rows, strict=True):
        out.append(
            {
                "transaction_id": meta["transaction"]["transaction_id"],
                "category": meta["category"],
                "truth": meta["label"],
                "correct": record["label"] == meta["label"],
                **record,
            }
        )
    return out
