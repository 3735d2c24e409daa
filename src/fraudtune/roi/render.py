"""docs/COST_BENEFIT_ANALYSIS.md and the `fraudtune roi` summary, rendered from a `fraudtune.roi.roi` result.

Every number comes from the result dict; this module only formats. The guide's prose is its template,
docs/templates/COST_BENEFIT_ANALYSIS.md; prose here may name concepts, never figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fraudtune.files import write_text_atomic
from fraudtune.guides import fill_template

# The guides' prose, one markdown template per guide; in the checkout, not in the installed package.
COST_BENEFIT_TEMPLATE = "COST_BENEFIT_ANALYSIS.md"

Row = tuple[str, Callable[[dict[str, Any]], str]]

SEED_INPUT_NOTES = {
    "requests_per_day": "The seed's volume; its break-even days and annual figures are at this volume.",
    "seed_examples": "The seed's data set (SPEC 4: the 500-example demo set).",
    "dataset_minutes_per_example": "Our decomposition: building, labelling and reviewing one example; x examples = "
    "the seed's dataset hours (one engineer-week).",
    "hourly_rate": "Our decomposition: a blended fraud-analyst / ML-engineer rate. The seed states only the total.",
    "validation_hours": "Our decomposition: the engineer time left in the seed's total after data and compute.",
    "seed_train_hours": "Our decomposition: a working day of one GPU (a 7B-class LoRA run with a retry).",
    "gpu_per_hour": "Our decomposition: an on-demand price of one mid-range cloud GPU.",
    "seed_prompted_prompt_tokens": "Rulebook + flag table + few-shot examples + the transaction. The seed states "
    "only $ per request; tokens x prices are chosen to give it.",
    "seed_prompted_completion_tokens": "The SPEC 2 answer (label, score, flags, reasoning).",
    "seed_finetuned_prompt_tokens": "A one-line instruction + the transaction: the rulebook lives in the weights.",
    "seed_finetuned_completion_tokens": "The same SPEC 2 answer as the prompted model.",
    "prompted_prompt_per_1k": "A large hosted instruct model's price per 1K tokens (blended, prompt = completion).",
    "prompted_completion_per_1k": "Same as the prompt price in the seed's scenario.",
    "finetuned_prompt_per_1k": "Hosted fine-tuned models cost more per token than their base; the seed's per-request "
    "figure then follows from the shorter prompt.",
    "finetuned_completion_per_1k": "Same as the fine-tuned prompt price.",
}
NOT_IN_SEED_NOTES = {
    "retrains_per_year": "Not in the seed (its TCO trains once): used only by the 'with retraining' rows.",
    "retrain_dataset_hours": "Not in the seed: new examples for a changed rule, per retrain.",
    "prompt_update_hours": "Not in the seed: editing and re-testing the rulebook prompt, per rule change.",
    "cpu_per_hour": "Not in the seed: a small cloud CPU machine (CPU training, self-hosting).",
    "min_examples": "Not in the seed: below this the framework recommends prompting.",
    "fraud_rate": "Not in the seed: share of scored transactions that are fraud (analysis 5); card-wide rates "
    "are lower, transactions pre-filtered by rules higher: set your own.",
    "avg_fraud_loss": "Not in the seed: loss per missed fraud (analysis 5).",
    "review_cost": "Not in the seed: analyst cost per false-positive review (analysis 5).",
    "serving_concurrency": "Not in the seed: parallel requests per self-hosted machine.",
}
FIGURE_NAMES = {
    "training_cost": ("Training cost", "dataset + compute + validation (analysis 1)"),
    "prompted_per_request": ("Prompted $/request", "tokens x price per 1K (analysis 2)"),
    "finetuned_per_request": ("Fine-tuned $/request", "tokens x price per 1K (analysis 2)"),
    "break_even_requests": ("Break-even requests", "training cost / saving per request"),
    "break_even_days": ("Break-even days", "requests / volume, rounded up"),
    "annual_prompted": ("Annual prompted", "$/request x volume x 365"),
    "annual_finetuned": ("Annual fine-tuned", "$/request x volume x 365 + training cost"),
    "annual_savings": ("Annual savings", "prompted - fine-tuned"),
    "annual_savings_pct": ("Annual savings %", "savings / prompted"),
}


def write_cost_benefit_doc(result: dict[str, Any], out_path: Path) -> Path:
    """Write the cost-benefit guide for a roi result (atomically) and return its path."""
    out_path = Path(out_path)
    write_text_atomic(out_path, render_doc(result))
    return out_path


def render_markdown(result: dict[str, Any]) -> str:
    """The short summary `fraudtune roi` prints: key figures, the seed check and the verdict."""
    primary = result[result["preset"]]
    verdict = primary["decision"]["current"]
    lines = [f"# ROI ({result['preset']} preset): `{result['command']}`", "", *_summary(result), ""]
    check = result["seed_check"]
    lines.append(
        f"Seed figures reproduced: {'all' if check['all_match'] else 'NOT all'} "
        f"({sum(f['match'] for f in check['figures'])}/{len(check['figures'])})."
    )
    lines.append(
        f"Decision at {_num(verdict['requests_per_day'])} requests/day and "
        f"{_num(verdict['rule_changes_per_year'])} rule changes/year: **{verdict['verdict']}** "
        f"({verdict['reason']}; first-year net {_usd(verdict['net_first_year'])})."
    )
    return "\n".join(lines) + "\n"


def render_doc(result: dict[str, Any]) -> str:
    """The whole guide as markdown: its template filled with the result's tables and figures."""
    return fill_template(
        COST_BENEFIT_TEMPLATE,
        command=result["command"],
        measured_figures=_measured_figures(result),
        summary=_lines(_summary(result)),
        **_seed_values(result["seed_check"], result["seed"]),
        **_contradiction_values(result["seed_check"], result["seed"]),
        **_input_values(result),
        training=_lines(_side_by_side(result, _training_rows())),
        inference=_lines(_side_by_side(result, _inference_rows())),
        self_hosted=_self_hosted(result),
        break_even=_lines(_side_by_side(result, _break_even_rows())),
        annual=_lines(_side_by_side(result, _annual_rows())),
        quality=_quality(result),
        decision_tables=_decision_tables(result),
        sensitivity_tables=_sensitivity_tables(result),
    )


def _summary(result: dict[str, Any]) -> list[str]:
    rows: list[Row] = [
        ("Training cost", lambda a: _usd(a["training"]["total"])),
        ("Prompted $/request", lambda a: _usd(a["inference"]["prompted_base"]["cost_per_request"])),
        ("Fine-tuned $/request", lambda a: _usd(a["inference"]["fine_tuned"]["cost_per_request"])),
        ("Break-even", lambda a: _break_even_text(a["break_even"])),
        ("Annual prompted", lambda a: _usd(a["annual"]["prompted"])),
        ("Annual fine-tuned (training once)", lambda a: _usd(a["annual"]["fine_tuned"])),
        ("Annual savings", lambda a: f"{_usd(a['annual']['savings'])} ({_pct(a['annual']['savings_pct'])})"),
        (
            "Annual savings with retraining",
            lambda a: (
                f"{_usd(a['annual']['savings_with_retraining'])} ({_pct(a['annual']['savings_with_retraining_pct'])})"
            ),
        ),
        ("Quality value a year", lambda a: _usd(a["quality"]["net_value"]) if a["quality"] else "not in the seed"),
        ("Decision", lambda a: a["decision"]["current"]["verdict"]),
    ]
    return _side_by_side(result, rows)


def _lines(lines: list[str]) -> str:
    return "\n".join(lines).rstrip()


def _measured_figures(result: dict[str, Any]) -> str:
    if result["measured"] is not None:
        return (
            f"- **Measured** figures: run `{result['run_dir']}` (its `eval.json`, `train_summary.json`, "
            f"`data/data_card.json`), same command; the result is also in `{result['run_dir']}/roi.json`."
        )
    return (
        "- **Measured** figures: none in this version. `fraudtune roi --run-dir runs/demo` (run by "
        "`make demo`) reads a run's measured tokens, train time and quality and adds them beside the seed."
    )


def _seed_values(check: dict[str, Any], seed: dict[str, Any]) -> dict[str, str]:
    lines = ["| figure | seed says | computed | how | match |", "|---|---|---|---|---|"]
    for fig in check["figures"]:
        name, how = FIGURE_NAMES[fig["figure"]]
        fmt = (
            _pct
            if fig["figure"].endswith("pct")
            else _num
            if "requests" in fig["figure"] or "days" in fig["figure"]
            else _usd
        )
        published = f"{fig['published']}%" if fig["figure"].endswith("pct") else fmt(fig["published"])
        lines.append(f"| {name} | {published} | {fmt(fig['computed'])} | {how} | {'yes' if fig['match'] else 'NO'} |")
    return {
        "seed_figures": _lines(lines),
        "all_reproduced": "yes" if check["all_match"] else "no",
        "seed_training": _usd(seed["training"]["total"]),
        "seed_prompted": _usd(_prompted(seed)),
        "seed_tuned": _usd(_tuned(seed)),
        "seed_break_even_requests": _num(seed["break_even"]["requests"]),
        "seed_break_even_days_exact": _num(seed["break_even"]["days_exact"]),
        "seed_volume": _num(seed["break_even"]["requests_per_day"]),
        "seed_break_even_days": str(seed["break_even"]["days"]),
    }


def _contradiction_values(check: dict[str, Any], seed: dict[str, Any]) -> dict[str, str]:
    case, claim = check["business_case"], check["claimed_reduction"]
    same = case["monthly_savings_recomputed"] == case["monthly_savings"]
    return {
        "case_prompted": _usd(case["prompted_per_request"]),
        "case_tuned": _usd(case["finetuned_per_request"]),
        "case_monthly": _usd(case["monthly_savings"]),
        "case_monthly_recomputed": _usd(case["monthly_savings_recomputed"]),
        "case_follows": "its monthly figure follows from its own prices" if same else "not its own monthly figure",
        "case_monthly_from_seed_prices": _usd(case["monthly_savings_from_seed_prices"]),
        "case_price_factor": _num(case["price_factor"]),
        "claimed_pct": str(claim["claimed_pct"]),
        "per_request_verdict": "Confirmed" if claim["confirmed_per_request"] else "Not confirmed",
        "per_request_pct": _pct(claim["per_request_pct"]),
        "annual_verdict": "also" if claim["confirmed_annual"] else "not",
        "annual_tco_pct": _pct(claim["annual_tco_pct"]),
    }


def _input_values(result: dict[str, Any]) -> dict[str, str]:
    config = result["config"]
    seed = ["| seed input (`roi.` key) | value | where it comes from |", "|---|---|---|"]
    seed += [f"| `{key}` | {_num(config[key])} | {note} |" for key, note in SEED_INPUT_NOTES.items()]
    other = ["| input | value | note |", "|---|---|---|"]
    other += [f"| `{key}` | {_num(config[key])} | {note} |" for key, note in NOT_IN_SEED_NOTES.items()]
    measured = ""
    if result["measured"] is not None:
        inp = result["measured"]["inputs"]
        measured = (
            f"\n\nMeasured inputs from `{result['run_dir']}`: {_num(inp['examples'])} examples "
            f"(data card), {_num(inp['train_hours'] * 3600)} s of training on `{inp['train_device']}` "
            f"(train_summary.json), tokens per request and quality on {_num(inp['quality']['test_n'])} test "
            "transactions (eval.json)."
        )
    return {"seed_inputs": _lines(seed), "other_inputs": _lines(other), "measured_inputs": measured}


def _training_rows() -> list[Row]:
    return [
        ("Examples", lambda a: _num(a["training"]["examples"])),
        (
            "Dataset",
            lambda a: (
                f"{_num(a['training']['dataset_hours'])} h x {_usd(a['training']['hourly_rate'])} = "
                f"{_usd(a['training']['dataset'])}"
            ),
        ),
        (
            "Compute",
            lambda a: (
                f"{_num(a['training']['train_hours'])} h x {_usd(a['training']['compute_per_hour'])} "
                f"({a['training']['train_device']}) = {_usd(a['training']['compute'])}"
            ),
        ),
        (
            "Validation",
            lambda a: (
                f"{_num(a['training']['validation_hours'])} h x {_usd(a['training']['hourly_rate'])}"
                f" = {_usd(a['training']['validation'])}"
            ),
        ),
        ("**Training cost**", lambda a: f"**{_usd(a['training']['total'])}**"),
        (
            "One retrain",
            lambda a: (
                f"{_num(a['training']['retrain_dataset_hours'])} h of new data + compute + "
                f"validation = {_usd(a['training']['retrain'])}"
            ),
        ),
    ]


def _inference_rows() -> list[Row]:
    rows: list[Row] = []
    for regime, name in (("prompted_base", "Prompted (rulebook in prompt)"), ("fine_tuned", "Fine-tuned")):
        rows.append((name, lambda a, r=regime: _regime_text(a["inference"][r])))
    rows += [
        ("Saving per request", lambda a: _usd(a["inference"]["saving_per_request"])),
        ("Reduction", lambda a: _pct(a["inference"]["reduction_pct"])),
    ]
    return rows


def _self_hosted(result: dict[str, Any]) -> str:
    hosted = result["measured"]["self_hosted"] if result["measured"] else None
    if hosted is None:
        return (
            "Needs a measured run whose eval.json has `models.fine_tuned.latency_ms_p50` "
            "(written by `fraudtune evaluate`)."
        )
    return (
        f"At the measured p50 latency of {_num(hosted['latency_ms_p50'])} ms, one CPU machine serving "
        f"{hosted['concurrency']} request(s) at a time handles 3,600,000 / latency x concurrency = "
        f"{_num(hosted['requests_per_hour'])} requests/hour. At {_usd(hosted['cpu_per_hour'])}/hour that is "
        f"{_usd(hosted['cost_per_request'])} per request when fully used, vs "
        f"{_usd(hosted['token_priced_cost_per_request'])} at hosted token prices. The volume needs "
        f"{hosted['machines']} machine(s): {_usd(hosted['annual_always_on'])}/year always on "
        f"({_usd(hosted['annual_at_full_use'])}/year if billed only for busy time)."
    )


def _break_even_rows() -> list[Row]:
    return [
        (
            "Training cost / saving per request",
            lambda a: f"{_usd(a['training']['total'])} / {_usd(a['inference']['saving_per_request'])}",
        ),
        ("Break-even", lambda a: _break_even_text(a["break_even"])),
    ]


def _annual_rows() -> list[Row]:
    return [
        ("Requests a year", lambda a: _num(a["annual"]["requests_per_year"])),
        ("Prompted", lambda a: _usd(a["annual"]["prompted"])),
        (
            "Fine-tuned: inference + training once",
            lambda a: (
                f"{_usd(a['annual']['fine_tuned_inference'])} + "
                f"{_usd(a['training']['total'])} = "
                f"{_usd(a['annual']['fine_tuned'])}"
            ),
        ),
        (
            "Savings (seed's definition)",
            lambda a: f"{_usd(a['annual']['savings'])} ({_pct(a['annual']['savings_pct'])})",
        ),
        (
            "Prompted + rulebook edits",
            lambda a: (
                f"{_usd(a['annual']['prompted_with_updates'])} "
                f"({_num(a['annual']['retrains_per_year'])} x "
                f"{_usd(a['training']['prompt_update'])})"
            ),
        ),
        (
            "Fine-tuned + retrains",
            lambda a: (
                f"{_usd(a['annual']['fine_tuned_with_retraining'])} "
                f"({_num(a['annual']['retrains_per_year'])} x "
                f"{_usd(a['training']['retrain'])})"
            ),
        ),
        (
            "Savings with retraining",
            lambda a: (
                f"{_usd(a['annual']['savings_with_retraining'])} ({_pct(a['annual']['savings_with_retraining_pct'])})"
            ),
        ),
    ]


def _quality(result: dict[str, Any]) -> str:
    quality = result["measured"]["quality"] if result["measured"] else None
    if quality is None:
        return "The seed states no recall or false-positive figures, so this analysis needs a measured run."
    lines = [
        "| model | F1 | recall | precision | false-positive rate | confusion (tp/fp/tn/fn) |",
        "|---|---|---|---|---|---|",
    ]
    for key, name in (("prompted_base", "prompted base"), ("fine_tuned", "fine-tuned")):
        m = quality[key]
        conf = "/".join(str(m["confusion"].get(k, "?")) for k in ("tp", "fp", "tn", "fn"))
        lines.append(f"| {name} | {m['f1']:.3f} | {m['recall']:.3f} | {m['precision']:.3f} | {m['fpr']:.3f} | {conf} |")
    lines += [
        "",
        f"On {_num(quality['test_n'])} test transactions: F1 {quality['f1_delta']:+.3f}, recall "
        f"{quality['recall_delta']:+.3f}, false-positive rate {quality['fpr_delta']:+.3f}. A year: "
        f"{_num(quality['frauds_per_year'])} frauds and {_num(quality['legit_per_year'])} legitimate "
        f"transactions; {_num(quality['extra_frauds_caught'])} extra frauds caught = "
        f"{_usd(quality['fraud_loss_avoided'])} of losses avoided; {_num(quality['extra_false_positives'])} "
        f"extra false positives = {_usd(quality['review_cost_added'])} of reviews; net "
        f"**{_usd(quality['net_value'])}/year**. With a test set this small the deltas are noisy: read the "
        "confidence intervals in eval.json before acting on them.",
    ]
    return _lines(lines)


def _decision_tables(result: dict[str, Any]) -> str:
    lines = []
    for key, title in (("seed", "seed preset"), ("measured", "measured")):
        if result[key] is None:
            continue
        dec = result[key]["decision"]
        grid = dec["grid"]
        lines += [
            f"**{title.capitalize()}** ({_num(dec['examples'])} examples, value per request "
            f"{_usd(dec['value_per_request'])}{', quality included' if dec['includes_quality'] else ''}): "
            "verdict and first-year net by volume and rule changes a year.",
            "",
            "| requests/day | " + " | ".join(f"{_num(c['rule_changes_per_year'])} changes/yr" for c in grid[0]) + " |",
            "|---|" + "---|" * len(grid[0]),
        ]
        lines += [
            f"| {_num(row[0]['requests_per_day'])} | "
            + " | ".join(f"{c['verdict']} ({_usd(c['net_first_year'])})" for c in row)
            + " |"
            for row in grid
        ]
        lines.append("")
    return _lines(lines)


def _sensitivity_tables(result: dict[str, Any]) -> str:
    lines = []
    for key, title in (("seed", "Seed preset"), ("measured", "Measured")):
        if result[key] is None:
            continue
        sens = result[key]["sensitivity"]
        rows = sens["rows"]
        lines += [
            f"**{title}** (fine-tuned {_usd(sens['fine_tuned_per_request'])}/request, training "
            f"{_usd(sens['training_total'])}):",
            "",
            "| requests/day | " + " | ".join(f"ratio {_num(c['price_ratio'])}" for c in rows[0]) + " |",
            "|---|" + "---|" * len(rows[0]),
        ]
        lines += [
            f"| {_num(row[0]['requests_per_day'])} | "
            + " | ".join(f"{_days(c['break_even_days'])} / {_usd(c['annual_savings'])}" for c in row)
            + " |"
            for row in rows
        ]
        lines.append("")
    return _lines(lines)


def _side_by_side(result: dict[str, Any], rows: list[Row]) -> list[str]:
    measured = result["measured"]
    head = "| | seed preset |" + (f" measured (`{result['run_dir']}`) |" if measured else "")
    lines = [head, "|---|---|" + ("---|" if measured else "")]
    for label, get in rows:
        lines.append(f"| {label} | {get(result['seed'])} |" + (f" {get(measured)} |" if measured else ""))
    return lines


def _regime_text(r: dict[str, Any]) -> str:
    return (
        f"({_num(r['prompt_tokens'])} x {_usd(r['prompt_per_1k'])} + {_num(r['completion_tokens'])} x "
        f"{_usd(r['completion_per_1k'])}) / 1000 = {_usd(r['cost_per_request'])}"
    )


def _break_even_text(be: dict[str, Any]) -> str:
    if be["requests"] is None:
        return "never (no saving per request)"
    return f"{_num(be['requests'])} requests = {_days(be['days'])} at {_num(be['requests_per_day'])}/day"


def _prompted(a: dict[str, Any]) -> float:
    return a["inference"]["prompted_base"]["cost_per_request"]


def _tuned(a: dict[str, Any]) -> float:
    return a["inference"]["fine_tuned"]["cost_per_request"]


def _days(days: int | None) -> str:
    return "never" if days is None else f"{_num(days)} day{'s' if days != 1 else ''}"


def _usd(x: float | None) -> str:
    """$3,770 / $0.03 / $0.000045: whole dollars from $100, cents from $1, else four significant digits."""
    if x is None:
        return "n/a"
    sign, x = ("-" if x < 0 else ""), abs(x)
    if x >= 100 or float(x).is_integer():
        return f"{sign}${x:,.0f}"
    if x >= 1:
        return f"{sign}${x:,.2f}"
    decimals = max(2, 3 - math.floor(math.log10(x)))
    text = f"{x:.{decimals}f}".rstrip("0")
    return f"{sign}${text if len(text.split('.')[1]) >= 2 else f'{x:.2f}'}"


def _num(x: float | int | None) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, list):
        return ", ".join(_num(v) for v in x)
    if isinstance(x, str):
        return x
    if float(x).is_integer():
        return f"{int(x):,}"
    return f"{x:,.2f}".rstrip("0").rstrip(".") if abs(x) >= 1 else f"{x:.4g}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}%"
