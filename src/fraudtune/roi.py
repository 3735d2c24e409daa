"""Cost-benefit of fine-tuning vs prompting: training cost, cost per request, break-even, annual TCO, quality ROI.

Two presets feed the same arithmetic. `seed` takes every input from RoiConfig (its defaults reproduce the seed's
published figures); `measured` replaces the token counts, training time, data size and quality with a run's files.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fraudtune.config import RoiConfig, RunConfig
from fraudtune.errors import FraudtuneError
from fraudtune.files import read_json, write_json
from fraudtune.paths import DATA_CARD, DATA_DIR, EVAL_JSON, ROI_JSON, TRAIN_SUMMARY

__all__ = ["roi", "analyse", "seed_inputs", "measured_inputs", "render_markdown", "write_cost_benefit_doc"]

DAYS_PER_YEAR = 365
DAYS_PER_MONTH = 30
HOURS_PER_YEAR = 24 * DAYS_PER_YEAR
REGIMES = ("prompted_base", "fine_tuned")

# The seed's own figures: the spec the seed preset must reproduce (not inputs to any calculation).
SEED_PUBLISHED = {
    "training_cost": 3_770,
    "prompted_per_request": 0.03,
    "finetuned_per_request": 0.01,
    "break_even_requests": 188_500,
    "break_even_days": 19,
    "annual_prompted": 109_500,
    "annual_finetuned": 40_270,
    "annual_savings": 69_230,
    "annual_savings_pct": 63,
}
# The seed's business case quotes other per-request prices and a monthly saving, and claims a 67% cost reduction.
SEED_BUSINESS_CASE = {"prompted_per_request": 0.30, "finetuned_per_request": 0.10, "monthly_savings": 60_000}
SEED_CLAIMED_REDUCTION_PCT = 67


@dataclass(frozen=True)
class Inputs:
    """What differs between presets: data size, training time, tokens per request, quality and latency."""

    source: str
    examples: int
    train_hours: float
    train_device: str
    tokens: dict[str, dict[str, float]]
    quality: dict[str, Any] | None = None
    latency_ms_p50: float | None = None
    train_tokens: float | None = None
    tokens_per_second: float | None = None


def roi(cfg: RunConfig, run_dir: Path | None = None, preset: str | None = None) -> dict[str, Any]:
    """Run the five analyses for the seed preset (and a measured run); write RUN/roi.json and the guide.

    Args:
        cfg: resolved run config; only `cfg.roi` is read.
        run_dir: run folder holding eval.json, train_summary.json and data/data_card.json (measured preset).
        preset: "seed" or "measured"; default measured when a run folder is given, else seed.
    """
    run_dir = Path(run_dir) if run_dir is not None else None
    preset = preset or ("measured" if run_dir is not None else "seed")
    if preset not in ("seed", "measured"):
        raise FraudtuneError(f"roi preset '{preset}': expected seed or measured")
    if preset == "measured" and run_dir is None:
        raise FraudtuneError("roi --preset measured needs --run-dir RUN (a run with eval.json); or use --preset seed")
    c = cfg.roi
    seed = analyse(seed_inputs(c), c)
    measured = analyse(measured_inputs(run_dir), c) if preset == "measured" else None
    result = {
        "preset": preset,
        "command": _command(run_dir, preset, c),
        "run_dir": str(run_dir) if run_dir is not None else None,
        "config": c.model_dump(mode="json"),
        "seed": seed,
        "measured": measured,
        "seed_check": seed_check(seed, c),
    }
    if run_dir is not None:
        write_json(run_dir / ROI_JSON, result)
    if c.doc_path is not None:
        write_cost_benefit_doc(result, c.doc_path)
    return result


def render_markdown(result: dict[str, Any]) -> str:
    """The summary `fraudtune roi` prints (rendered by report/docs_roi.py)."""
    from fraudtune.report.docs_roi import render_markdown as render

    return render(result)


def write_cost_benefit_doc(result: dict[str, Any], out_path: Path) -> Path:
    """docs/COST_BENEFIT_ANALYSIS.md from a result (rendered by report/docs_roi.py)."""
    from fraudtune.report.docs_roi import write_cost_benefit_doc as write

    return write(result, out_path)


def seed_inputs(c: RoiConfig) -> Inputs:
    """The seed's scenario: every input is a named RoiConfig field."""
    tokens = {
        "prompted_base": {"prompt": c.seed_prompted_prompt_tokens, "completion": c.seed_prompted_completion_tokens},
        "fine_tuned": {"prompt": c.seed_finetuned_prompt_tokens, "completion": c.seed_finetuned_completion_tokens},
    }
    return Inputs(
        source="seed", examples=c.seed_examples, train_hours=c.seed_train_hours, train_device="cuda", tokens=tokens
    )


def measured_inputs(run_dir: Path) -> Inputs:
    """Tokens, quality and latency from RUN/eval.json; train time from train_summary.json; size from the data card."""
    evaluation = _read_stage_file(run_dir / EVAL_JSON, f"fraudtune evaluate --run-dir {run_dir}")
    summary = _read_stage_file(run_dir / TRAIN_SUMMARY, f"fraudtune train --run-dir {run_dir}")
    card = _read_stage_file(run_dir / DATA_DIR / DATA_CARD, f"fraudtune data generate --out {run_dir / DATA_DIR}")
    eval_file, summary_file = run_dir / EVAL_JSON, run_dir / TRAIN_SUMMARY
    tokens, quality = {}, {"test_n": _get(evaluation, "test.n", eval_file)}
    for regime in REGIMES:
        model = _get(evaluation, f"models.{regime}", eval_file)
        tokens[regime] = {
            "prompt": _number(model, "prompt_tokens_per_request", eval_file, f"models.{regime}."),
            "completion": _number(model, "completion_tokens_per_request", eval_file, f"models.{regime}."),
        }
        quality[regime] = _quality_of(model, eval_file, f"models.{regime}.")
    latency = evaluation["models"]["fine_tuned"].get("latency_ms_p50")
    return Inputs(
        source=str(run_dir),
        examples=_data_size(card, run_dir / DATA_DIR / DATA_CARD),
        train_hours=_number(summary, "train_seconds", summary_file) / 3600,
        train_device=str(_get(summary, "device", summary_file)),
        tokens=tokens,
        quality=quality,
        latency_ms_p50=float(latency) if latency is not None else None,
        train_tokens=summary.get("train_tokens"),
        tokens_per_second=summary.get("tokens_per_second"),
    )


def analyse(inp: Inputs, c: RoiConfig) -> dict[str, Any]:
    """The five analyses, the self-hosted alternative, the decision framework and the sensitivity table."""
    training = training_cost(inp, c)
    inference = inference_cost(inp, c)
    requests_per_year = c.requests_per_day * DAYS_PER_YEAR
    quality = quality_roi(inp.quality, c, requests_per_year)
    return {
        "inputs": asdict(inp),
        "training": training,
        "inference": inference,
        "break_even": break_even(training["total"], inference["saving_per_request"], c.requests_per_day),
        "annual": annual_tco(training, inference, c),
        "quality": quality,
        "self_hosted": self_hosted(inp.latency_ms_p50, c, inference),
        "decision": decision(inp.examples, training, inference, quality, c),
        "sensitivity": sensitivity(training["total"], inference["fine_tuned"]["cost_per_request"], c),
    }


def training_cost(inp: Inputs, c: RoiConfig) -> dict[str, Any]:
    """Analysis 1: dataset hours x rate + training hours x machine rate + validation hours x rate (and one retrain)."""
    dataset_hours = _r(inp.examples * c.dataset_minutes_per_example / 60)
    compute_rate = c.gpu_per_hour if inp.train_device.startswith("cuda") else c.cpu_per_hour
    dataset = _r(dataset_hours * c.hourly_rate)
    compute = _r(inp.train_hours * compute_rate)
    validation = _r(c.validation_hours * c.hourly_rate)
    retrain = _r(c.retrain_dataset_hours * c.hourly_rate + compute + validation)
    return {
        "examples": inp.examples,
        "dataset_hours": dataset_hours,
        "hourly_rate": c.hourly_rate,
        "dataset": dataset,
        "train_hours": _r(inp.train_hours),
        "train_device": inp.train_device,
        "compute_per_hour": compute_rate,
        "compute": compute,
        "validation_hours": c.validation_hours,
        "validation": validation,
        "total": _r(dataset + compute + validation),
        "retrain_dataset_hours": c.retrain_dataset_hours,
        "retrain": retrain,
        "prompt_update": _r(c.prompt_update_hours * c.hourly_rate),
    }


def inference_cost(inp: Inputs, c: RoiConfig) -> dict[str, Any]:
    """Analysis 2: (prompt tokens x price + completion tokens x price) / 1000 for each regime."""
    prices = {
        "prompted_base": (c.prompted_prompt_per_1k, c.prompted_completion_per_1k),
        "fine_tuned": (c.finetuned_prompt_per_1k, c.finetuned_completion_per_1k),
    }
    out: dict[str, Any] = {}
    for regime in REGIMES:
        tokens, (prompt_price, completion_price) = inp.tokens[regime], prices[regime]
        out[regime] = {
            "prompt_tokens": tokens["prompt"],
            "completion_tokens": tokens["completion"],
            "prompt_per_1k": prompt_price,
            "completion_per_1k": completion_price,
            "cost_per_request": _r((tokens["prompt"] * prompt_price + tokens["completion"] * completion_price) / 1000),
        }
    prompted, tuned = out["prompted_base"]["cost_per_request"], out["fine_tuned"]["cost_per_request"]
    out["saving_per_request"] = _r(prompted - tuned)
    out["reduction_pct"] = _r(100 * (prompted - tuned) / prompted) if prompted else None
    return out


def break_even(training_total: float, saving_per_request: float, requests_per_day: float) -> dict[str, Any]:
    """Analysis 3: training cost / saving per request, in requests and (rounded-up) days at the volume."""
    if saving_per_request <= 0:
        return {"requests": None, "days_exact": None, "days": None, "requests_per_day": requests_per_day}
    requests_exact = _r(training_total / saving_per_request)
    days_exact = _r(requests_exact / requests_per_day)
    return {
        "requests": math.ceil(requests_exact),
        "days_exact": days_exact,
        "days": math.ceil(days_exact),
        "requests_per_day": requests_per_day,
    }


def annual_tco(training: dict[str, Any], inference: dict[str, Any], c: RoiConfig) -> dict[str, Any]:
    """Analysis 4: a year of inference, plus the training (seed's definition) and retrains x cost per retrain."""
    requests = c.requests_per_day * DAYS_PER_YEAR
    prompted = _r(inference["prompted_base"]["cost_per_request"] * requests)
    tuned_inference = _r(inference["fine_tuned"]["cost_per_request"] * requests)
    tuned = _r(tuned_inference + training["total"])
    prompted_updates = _r(prompted + c.retrains_per_year * training["prompt_update"])
    tuned_retrains = _r(tuned + c.retrains_per_year * training["retrain"])
    return {
        "requests_per_year": requests,
        "prompted": prompted,
        "fine_tuned_inference": tuned_inference,
        "fine_tuned": tuned,
        "savings": _r(prompted - tuned),
        "savings_pct": _pct(prompted - tuned, prompted),
        "retrains_per_year": c.retrains_per_year,
        "prompted_with_updates": prompted_updates,
        "fine_tuned_with_retraining": tuned_retrains,
        "savings_with_retraining": _r(prompted_updates - tuned_retrains),
        "savings_with_retraining_pct": _pct(prompted_updates - tuned_retrains, prompted_updates),
        "monthly_inference_savings": _r(inference["saving_per_request"] * c.requests_per_day * DAYS_PER_MONTH),
    }


def quality_roi(quality: dict[str, Any] | None, c: RoiConfig, requests_per_year: float) -> dict[str, Any] | None:
    """Analysis 5: recall and false-positive-rate deltas x yearly frauds / legitimate transactions x $ each.

    Rates conditional on the true class carry over to production prevalence; precision does not, so it is not used.
    """
    if quality is None:
        return None
    base, tuned = quality["prompted_base"], quality["fine_tuned"]
    frauds = _r(requests_per_year * c.fraud_rate)
    legit = _r(requests_per_year - frauds)
    recall_delta = _r(tuned["recall"] - base["recall"])
    fpr_delta = _r(tuned["fpr"] - base["fpr"])
    loss_avoided = _r(recall_delta * frauds * c.avg_fraud_loss)
    review_added = _r(fpr_delta * legit * c.review_cost)
    net = _r(loss_avoided - review_added)
    return {
        "test_n": quality["test_n"],
        "prompted_base": base,
        "fine_tuned": tuned,
        "f1_delta": _r(tuned["f1"] - base["f1"]),
        "recall_delta": recall_delta,
        "fpr_delta": fpr_delta,
        "frauds_per_year": frauds,
        "legit_per_year": legit,
        "extra_frauds_caught": _r(recall_delta * frauds),
        "fraud_loss_avoided": loss_avoided,
        "extra_false_positives": _r(fpr_delta * legit),
        "review_cost_added": review_added,
        "net_value": net,
        "net_value_per_request": _r(net / requests_per_year),
    }


def self_hosted(latency_ms: float | None, c: RoiConfig, inference: dict[str, Any]) -> dict[str, Any] | None:
    """The fine-tuned model on our own CPU machines: p50 latency -> requests/hour -> $ per request and per year."""
    if latency_ms is None or latency_ms <= 0:
        return None
    per_hour = _r(3_600_000 / latency_ms * c.serving_concurrency)
    machines = math.ceil(c.requests_per_day / 24 / per_hour)
    per_request = _r(c.cpu_per_hour / per_hour)
    return {
        "latency_ms_p50": latency_ms,
        "concurrency": c.serving_concurrency,
        "requests_per_hour": per_hour,
        "cpu_per_hour": c.cpu_per_hour,
        "cost_per_request": per_request,
        "token_priced_cost_per_request": inference["fine_tuned"]["cost_per_request"],
        "machines": machines,
        "annual_always_on": _r(machines * c.cpu_per_hour * HOURS_PER_YEAR),
        "annual_at_full_use": _r(per_request * c.requests_per_day * DAYS_PER_YEAR),
    }


def decision(examples: int, training: dict, inference: dict, quality: dict | None, c: RoiConfig) -> dict[str, Any]:
    """Fine-tune or prompt, from data size, per-request saving (+ quality value), volume and rule-change frequency."""
    value_per_request = inference["saving_per_request"] + (quality["net_value_per_request"] if quality else 0)

    def cell(volume: float, changes: float) -> dict[str, Any]:
        net = _r(
            value_per_request * volume * DAYS_PER_YEAR
            - training["total"]
            - changes * (training["retrain"] - training["prompt_update"])
        )
        verdict, reason = _verdict(examples, value_per_request, net, c.min_examples)
        return {
            "requests_per_day": volume,
            "rule_changes_per_year": changes,
            "net_first_year": net,
            "verdict": verdict,
            "reason": reason,
        }

    return {
        "examples": examples,
        "min_examples": c.min_examples,
        "value_per_request": _r(value_per_request),
        "includes_quality": quality is not None,
        "current": cell(c.requests_per_day, c.retrains_per_year),
        "grid": [[cell(v, k) for k in c.decision_rule_changes] for v in c.sensitivity_volumes],
    }


def sensitivity(training_total: float, tuned_per_request: float, c: RoiConfig) -> dict[str, Any]:
    """Break-even days and first-year savings over volume x (prompted / fine-tuned per-request price ratio)."""
    rows = []
    for volume in c.sensitivity_volumes:
        row = []
        for ratio in c.sensitivity_price_ratios:
            saving = _r((ratio - 1) * tuned_per_request)
            even = break_even(training_total, saving, volume)
            row.append(
                {
                    "requests_per_day": volume,
                    "price_ratio": ratio,
                    "break_even_days": even["days"],
                    "annual_savings": _r(saving * volume * DAYS_PER_YEAR - training_total),
                }
            )
        rows.append(row)
    return {"fine_tuned_per_request": tuned_per_request, "training_total": training_total, "rows": rows}


def seed_check(seed: dict[str, Any], c: RoiConfig) -> dict[str, Any]:
    """Each published seed figure next to the seed preset's result, its contradictions and its 67% claim."""
    computed = {
        "training_cost": seed["training"]["total"],
        "prompted_per_request": seed["inference"]["prompted_base"]["cost_per_request"],
        "finetuned_per_request": seed["inference"]["fine_tuned"]["cost_per_request"],
        "break_even_requests": seed["break_even"]["requests"],
        "break_even_days": seed["break_even"]["days"],
        "annual_prompted": seed["annual"]["prompted"],
        "annual_finetuned": seed["annual"]["fine_tuned"],
        "annual_savings": seed["annual"]["savings"],
        "annual_savings_pct": seed["annual"]["savings_pct"],
    }
    figures = [
        {
            "figure": key,
            "published": published,
            "computed": computed[key],
            "match": computed[key] is not None and round(computed[key], _digits(published)) == published,
        }
        for key, published in SEED_PUBLISHED.items()
    ]
    case = SEED_BUSINESS_CASE
    case_monthly = _r(
        (case["prompted_per_request"] - case["finetuned_per_request"]) * c.requests_per_day * DAYS_PER_MONTH
    )
    per_request_pct = seed["inference"]["reduction_pct"]
    return {
        "figures": figures,
        "all_match": all(f["match"] for f in figures),
        "business_case": {
            **case,
            "monthly_savings_recomputed": case_monthly,
            "monthly_savings_from_seed_prices": seed["annual"]["monthly_inference_savings"],
            "price_factor": _r(case["prompted_per_request"] / seed["inference"]["prompted_base"]["cost_per_request"]),
        },
        "claimed_reduction": {
            "claimed_pct": SEED_CLAIMED_REDUCTION_PCT,
            "per_request_pct": per_request_pct,
            "annual_tco_pct": seed["annual"]["savings_pct"],
            "confirmed_per_request": per_request_pct is not None
            and round(per_request_pct) == SEED_CLAIMED_REDUCTION_PCT,
            "confirmed_annual": round(seed["annual"]["savings_pct"]) == SEED_CLAIMED_REDUCTION_PCT,
        },
    }


def _verdict(examples: int, value_per_request: float, net: float, min_examples: int) -> tuple[str, str]:
    if examples < min_examples:
        return "prompt", "too few labelled examples to fine-tune"
    if value_per_request <= 0:
        return "prompt", "the fine-tuned model is not cheaper or better per request"
    if net <= 0:
        return "prompt", "volume does not repay training and retraining within a year"
    return "fine-tune", "repays training and retraining within a year"


def _quality_of(model: dict[str, Any], path: Path, prefix: str) -> dict[str, float]:
    confusion = _get(model, "confusion", path, prefix)
    fp, tn = (_number(confusion, key, path, prefix + "confusion.") for key in ("fp", "tn"))
    return {
        "f1": _number(model, "f1", path, prefix),
        "recall": _number(model, "recall", path, prefix),
        "precision": _number(model, "precision", path, prefix),
        "fpr": _r(fp / (fp + tn)) if fp + tn else 0.0,
        "confusion": {key: confusion[key] for key in ("tp", "fp", "tn", "fn") if key in confusion},
    }


def _data_size(card: dict[str, Any], path: Path) -> int:
    for key in ("n", "total", "examples"):
        if isinstance(card.get(key), int):
            return card[key]
    splits = card.get("splits")
    if isinstance(splits, dict) and splits and all(isinstance(v, int) for v in splits.values()):
        return sum(splits.values())
    raise FraudtuneError(f"{path}: no example count (key 'n'); rerun `fraudtune data generate`")


def _read_stage_file(path: Path, command: str) -> dict[str, Any]:
    if not path.exists():
        raise FraudtuneError(f"{path}: not found; run `{command}` first")
    return read_json(path)


def _get(obj: dict[str, Any], dotted: str, path: Path, prefix: str = "") -> Any:
    node: Any = obj
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise FraudtuneError(f"{path}: missing key {prefix}{dotted}; rerun the stage that writes it")
        node = node[part]
    return node


def _number(obj: dict[str, Any], dotted: str, path: Path, prefix: str = "") -> float:
    value = _get(obj, dotted, path, prefix)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FraudtuneError(
            f"{path}: {prefix}{dotted} is {value!r}, expected a number; rerun the stage that writes it"
        )
    return float(value)


def _command(run_dir: Path | None, preset: str, c: RoiConfig) -> str:
    parts = ["fraudtune roi"]
    if run_dir is not None:
        parts.append(f"--run-dir {run_dir}")
    if preset != ("measured" if run_dir is not None else "seed"):
        parts.append(f"--preset {preset}")
    defaults = RoiConfig().model_dump(mode="json")
    for key, value in c.model_dump(mode="json").items():
        if value != defaults[key]:
            shown = "null" if value is None else str(value).replace(" ", "")
            parts.append(f"--set roi.{key}={shown}")
    return " ".join(parts)


def _pct(part: float, whole: float) -> float | None:
    return _r(100 * part / whole) if whole else None


def _digits(published: float) -> int:
    """Decimal places the seed printed a figure with (0.03 -> 2, 3770 -> 0)."""
    text = repr(published)
    return len(text.split(".")[1]) if "." in text else 0


def _r(x: float) -> float:
    """Round to 12 significant digits: removes float noise (0.03 - 0.01 = 0.0199...) so figures compare exactly."""
    return float(f"{x:.12g}")
