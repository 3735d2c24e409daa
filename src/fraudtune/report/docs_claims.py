"""The seed's five claims, each checked against our measurement: confirmed, not confirmed, or not measured yet.

A claim "holds" when the measured value reaches the claimed one (rounded as the seed states it). The table gives
the measured number, the file it came from, and, when a result is missing, the command that produces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fraudtune import paths
from fraudtune.report import fmt
from fraudtune.report.docs_lora import SEED_CLAIM_PCT, all_params_from_line, reduction_pct
from fraudtune.report.runfiles import RunResults

CONFIRMED, NOT_CONFIRMED, NOT_MEASURED = "confirmed", "not confirmed", "not measured yet"
SEED_F1_GAIN = 0.04  # "+4% F1": read as percentage points over the prompted base model
SEED_CONSISTENCY = 0.97
SEED_COST_REDUCTION_PCT = 67
GENERAL_SKILLS = ("general_knowledge", "language", "reasoning")


@dataclass(frozen=True)
class Claim:
    claim: str
    status: str
    measured: str
    source: str


def seed_claims(run: RunResults) -> list[Claim]:
    return [_parameters(run), _f1(run), _consistency(run), _forgetting(run), _cost(run)]


def claims_table(claims: list[Claim]) -> list[str]:
    rows = [[c.claim, f"**{c.status}**", c.measured, c.source] for c in claims]
    return fmt.md_table(["seed claim", "our measurement says", "measured", "from"], rows, right_from=9)


def _missing(claim: str, run: RunResults, verb: str) -> Claim:
    return Claim(claim, NOT_MEASURED, f"not measured yet: run `{run.command(verb)}`", fmt.DASH)


def _src(run: RunResults, name: str) -> str:
    return f"`{run.run_dir / name}`"


def _parameters(run: RunResults) -> Claim:
    claim = f"LoRA trains {SEED_CLAIM_PCT}% fewer parameters than full fine-tuning"
    summary = run.train_summary
    trainable = (summary or {}).get("trainable_params")
    all_params = all_params_from_line((summary or {}).get("trainable"))
    if not fmt.is_number(trainable) or not all_params or all_params <= trainable:
        return _missing(claim, run, "train")
    pct = reduction_pct(all_params - trainable, trainable)
    status = CONFIRMED if round(pct, 1) >= SEED_CLAIM_PCT else NOT_CONFIRMED
    measured = f"{pct:.2f}% fewer ({trainable:,} trainable of {all_params - trainable:,} base weights)"
    return Claim(claim, status, measured, _src(run, paths.TRAIN_SUMMARY))


def _f1(run: RunResults) -> Claim:
    claim = f"Fine-tuning adds {SEED_F1_GAIN * 100:g} points of F1 over prompting the base model"
    models = (run.eval or {}).get("models", {})
    tuned, base = models.get("fine_tuned", {}), models.get("prompted_base", {})
    if not (fmt.is_number(tuned.get("f1")) and fmt.is_number(base.get("f1"))):
        return _missing(claim, run, "evaluate")
    gain = tuned["f1"] - base["f1"]
    status = CONFIRMED if round(100 * gain, 1) >= 100 * SEED_F1_GAIN else NOT_CONFIRMED
    measured = f"{fmt.points(gain)} (F1 {fmt.num(tuned['f1'])} vs {fmt.num(base['f1'])}"
    p = base.get("mcnemar_p")
    if fmt.is_number(p):
        measured += f"; McNemar p = {fmt.num(p)}" + ("" if p < 0.05 else ", not significant at the 5% level")
    return Claim(claim, status, measured + ")", _src(run, paths.EVAL_JSON))


def _consistency(run: RunResults) -> Claim:
    claim = f"The fine-tuned model answers consistently {SEED_CONSISTENCY:.0%} of the time"
    value = consistency_value(((run.eval or {}).get("models", {}).get("fine_tuned") or {}).get("consistency"))
    if value is None:
        return _missing(claim, run, "evaluate")
    status = CONFIRMED if round(value, 2) >= SEED_CONSISTENCY else NOT_CONFIRMED
    return Claim(claim, status, f"{fmt.pct(value)} consistent", _src(run, paths.EVAL_JSON))


def consistency_value(value: Any) -> float | None:
    """A share in 0..1 from a number (share or percent) or a dict holding one."""
    if isinstance(value, dict):
        value = next((value[k] for k in ("rate", "mean", "agreement", "value") if fmt.is_number(value.get(k))), None)
    if not fmt.is_number(value):
        return None
    return value / 100 if value > 1 else float(value)


def _forgetting(run: RunResults) -> Claim:
    claim = "LoRA prevents catastrophic forgetting of general skills"
    found = [(k, run.forgetting[k]) for k in GENERAL_SKILLS if isinstance((run.forgetting or {}).get(k), dict)]
    if not found:
        return _missing(claim, run, "forgetting")
    parts, worse = [], []
    for key, block in found:
        verdict = fmt.ci_reading(block.get("ci"), block.get("higher_is_better", True))
        metric = block.get("metric", key)
        parts.append(f"{key} {metric} {fmt.num(block.get('before'))} → {fmt.num(block.get('after'))} ({verdict})")
        worse += [key] if verdict == "worse" else []
    status = NOT_CONFIRMED if worse else CONFIRMED
    lead = f"significantly worse: {', '.join(worse)}" if worse else "no general skill significantly worse"
    return Claim(claim, status, f"{lead} ({'; '.join(parts)})", _src(run, paths.FORGETTING_JSON))


def _cost(run: RunResults) -> Claim:
    claim = f"Fine-tuning cuts the cost per request by {SEED_COST_REDUCTION_PCT}%"
    measured = (run.roi or {}).get("measured")
    if not measured:
        return _missing(claim, run, "roi")
    pct = measured["inference"].get("reduction_pct")
    if not fmt.is_number(pct):
        return Claim(claim, NOT_CONFIRMED, "no per-request cost for the prompted model", _src(run, paths.ROI_JSON))
    status = CONFIRMED if round(pct) >= SEED_COST_REDUCTION_PCT else NOT_CONFIRMED
    annual = measured["annual"].get("savings_pct")
    text = f"{fmt.num(pct)}% per request; {fmt.num(annual)}% of the annual cost incl. training"
    return Claim(claim, status, text, _src(run, paths.ROI_JSON))
