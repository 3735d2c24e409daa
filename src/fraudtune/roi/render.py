"""docs/COST_BENEFIT_ANALYSIS.md and the `fraudtune roi` summary, rendered from a `fraudtune.roi.roi` result.

Every number comes from the result dict; this module only formats. Prose here may name concepts, never figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fraudtune.files import write_text_atomic

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
    """The whole guide as markdown."""
    sections = [
        _header(result),
        _summary_section(result),
        _seed_section(result),
        _inputs_section(result),
        _training_section(result),
        _inference_section(result),
        _break_even_section(result),
        _annual_section(result),
        _quality_section(result),
        _decision_section(result),
        _sensitivity_section(result),
        _reproduce_section(result),
    ]
    return "\n\n".join("\n".join(s).rstrip() for s in sections) + "\n"


def _header(result: dict[str, Any]) -> list[str]:
    lines = [
        "# Cost-benefit analysis: fine-tune or prompt?",
        "",
        f"Generated by `{result['command']}` (`fraudtune.roi.roi` -> `write_cost_benefit_doc`). Every number below "
        "comes from that command's result; do not edit by hand, rerun the command.",
        "",
        "- **Seed preset** figures: the seed's scenario, every input a named `roi.*` config field "
        "(`fraudtune roi --preset seed`, the default without a run).",
    ]
    if result["measured"] is not None:
        lines.append(
            f"- **Measured** figures: run `{result['run_dir']}` (its `eval.json`, `train_summary.json`, "
            f"`data/data_card.json`), same command; the result is also in `{result['run_dir']}/roi.json`."
        )
    else:
        lines.append(
            "- **Measured** figures: none in this version. `fraudtune roi --run-dir runs/demo` (run by "
            "`make demo`) reads a run's measured tokens, train time and quality and adds them beside the seed."
        )
    return lines


def _summary_section(result: dict[str, Any]) -> list[str]:
    return ["## Summary", "", *_summary(result)]


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


def _seed_section(result: dict[str, Any]) -> list[str]:
    check, seed = result["seed_check"], result["seed"]
    lines = [
        "## Seed reproduction",
        "",
        "Figures from the seed preset (`fraudtune roi --preset seed`).",
        "",
        "| figure | seed says | computed | how | match |",
        "|---|---|---|---|---|",
    ]
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
    lines += [
        "",
        f"All seed figures reproduced: **{'yes' if check['all_match'] else 'no'}**. "
        f"Break-even: {_usd(seed['training']['total'])} / ({_usd(_prompted(seed))} - {_usd(_tuned(seed))}) = "
        f"{_num(seed['break_even']['requests'])} requests = {_num(seed['break_even']['days_exact'])} days at "
        f"{_num(seed['break_even']['requests_per_day'])}/day, rounded up to {seed['break_even']['days']}.",
    ]
    lines += ["", "### Where the seed contradicts itself", "", *_contradictions(check, seed)]
    return lines


def _contradictions(check: dict[str, Any], seed: dict[str, Any]) -> list[str]:
    case, claim = check["business_case"], check["claimed_reduction"]
    volume = seed["break_even"]["requests_per_day"]
    same = case["monthly_savings_recomputed"] == case["monthly_savings"]
    follows = "its monthly figure follows from its own prices" if same else "not its own monthly figure"
    return [
        f"- **Business case vs cost model.** The seed's business case quotes {_usd(case['prompted_per_request'])} vs "
        f"{_usd(case['finetuned_per_request'])} per request and {_usd(case['monthly_savings'])}/month; its cost model "
        f"uses {_usd(_prompted(seed))} vs {_usd(_tuned(seed))}. At {_num(volume)} requests/day the business case's "
        f"prices give {_usd(case['monthly_savings_recomputed'])}/month ({follows}), while the cost model's give "
        f"{_usd(case['monthly_savings_from_seed_prices'])}/month: the business "
        f"case is {_num(case['price_factor'])}x the cost model. This guide follows the cost model, from which every "
        "other seed figure derives.",
        f"- **The {claim['claimed_pct']}% cost reduction.** "
        + ("Confirmed" if claim["confirmed_per_request"] else "Not confirmed")
        + f" for the per-request inference cost ({_pct(claim['per_request_pct'])} = 1 - fine-tuned / prompted $); "
        + ("also" if claim["confirmed_annual"] else "not")
        + f" for the annual total cost, which includes training ({_pct(claim['annual_tco_pct'])}).",
    ]


def _inputs_section(result: dict[str, Any]) -> list[str]:
    config = result["config"]
    lines = [
        "## Inputs",
        "",
        "Seed inputs: together they reproduce every seed figure. Override any with `--set roi.<key>=<value>`.",
        "",
        "| seed input (`roi.` key) | value | where it comes from |",
        "|---|---|---|",
    ]
    lines += [f"| `{key}` | {_num(config[key])} | {note} |" for key, note in SEED_INPUT_NOTES.items()]
    lines += [
        "",
        "Inputs the seed does not have (used by the extra analyses):",
        "",
        "| input | value | note |",
        "|---|---|---|",
    ]
    lines += [f"| `{key}` | {_num(config[key])} | {note} |" for key, note in NOT_IN_SEED_NOTES.items()]
    if result["measured"] is not None:
        inp = result["measured"]["inputs"]
        lines += [
            "",
            f"Measured inputs from `{result['run_dir']}`: {_num(inp['examples'])} examples "
            f"(data card), {_num(inp['train_hours'] * 3600)} s of training on `{inp['train_device']}` "
            f"(train_summary.json), tokens per request and quality on {_num(inp['quality']['test_n'])} test "
            "transactions (eval.json).",
        ]
    return lines


def _training_section(result: dict[str, Any]) -> list[str]:
    rows: list[Row] = [
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
    return [
        "## Analysis 1: training cost",
        "",
        "Engineer hours to build the data (examples x minutes each) and to validate the model, at an hourly rate, "
        "plus the training run's machine time at a GPU or CPU price. The measured column uses the run's own "
        "train time and device; the engineer hours are an estimate in both columns, since a real issuer labels "
        "by hand what the demo generates.",
        "",
        *_side_by_side(result, rows),
    ]


def _inference_section(result: dict[str, Any]) -> list[str]:
    rows: list[Row] = []
    for regime, name in (("prompted_base", "Prompted (rulebook in prompt)"), ("fine_tuned", "Fine-tuned")):
        rows.append((name, lambda a, r=regime: _regime_text(a["inference"][r])))
    rows += [
        ("Saving per request", lambda a: _usd(a["inference"]["saving_per_request"])),
        ("Reduction", lambda a: _pct(a["inference"]["reduction_pct"])),
    ]
    lines = [
        "## Analysis 2: inference cost per request",
        "",
        "(prompt tokens x price + completion tokens x price) / 1000 for each regime. The prompted base model "
        "carries the written rulebook and few-shot examples in every prompt; the fine-tuned model gets a short "
        "instruction and the transaction. Measured tokens are means per test request from `fraudtune evaluate`.",
        "",
        *_side_by_side(result, rows),
    ]
    hosted = result["measured"]["self_hosted"] if result["measured"] else None
    lines += ["", "### Alternative: self-host the fine-tuned model on CPU", ""]
    if hosted is None:
        lines.append(
            "Needs a measured run whose eval.json has `models.fine_tuned.latency_ms_p50` "
            "(written by `fraudtune evaluate`)."
        )
        return lines
    lines += [
        f"At the measured p50 latency of {_num(hosted['latency_ms_p50'])} ms, one CPU machine serving "
        f"{hosted['concurrency']} request(s) at a time handles 3,600,000 / latency x concurrency = "
        f"{_num(hosted['requests_per_hour'])} requests/hour. At {_usd(hosted['cpu_per_hour'])}/hour that is "
        f"{_usd(hosted['cost_per_request'])} per request when fully used, vs "
        f"{_usd(hosted['token_priced_cost_per_request'])} at hosted token prices. The volume needs "
        f"{hosted['machines']} machine(s): {_usd(hosted['annual_always_on'])}/year always on "
        f"({_usd(hosted['annual_at_full_use'])}/year if billed only for busy time).",
    ]
    return lines


def _break_even_section(result: dict[str, Any]) -> list[str]:
    rows: list[Row] = [
        (
            "Training cost / saving per request",
            lambda a: f"{_usd(a['training']['total'])} / {_usd(a['inference']['saving_per_request'])}",
        ),
        ("Break-even", lambda a: _break_even_text(a["break_even"])),
    ]
    return [
        "## Analysis 3: break-even",
        "",
        "Requests until the per-request saving has paid for training, and the days that takes at the volume "
        "(rounded up to whole days).",
        "",
        *_side_by_side(result, rows),
    ]


def _annual_section(result: dict[str, Any]) -> list[str]:
    rows: list[Row] = [
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
    return [
        "## Analysis 4: annual total cost of ownership",
        "",
        "A year of requests at each regime's price. The seed counts the fine-tuned model's training once; the "
        "retraining rows add a retrain (new data + compute + validation) per rule change, against an edit of the "
        "rulebook prompt for the prompted model.",
        "",
        *_side_by_side(result, rows),
    ]


def _quality_section(result: dict[str, Any]) -> list[str]:
    lines = [
        "## Analysis 5: quality ROI",
        "",
        "Recall and false-positive-rate deltas (fine-tuned - prompted) on the test set, applied to a year of "
        "transactions at the production fraud rate: extra frauds caught x average fraud loss, minus extra false "
        "positives x review cost. Recall and false-positive rate are rates within each true class, so they carry "
        "over to production prevalence; precision does not, so it is shown but not priced.",
        "",
    ]
    quality = result["measured"]["quality"] if result["measured"] else None
    if quality is None:
        return lines + ["The seed states no recall or false-positive figures, so this analysis needs a measured run."]
    lines += [
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
    return lines


def _decision_section(result: dict[str, Any]) -> list[str]:
    lines = [
        "## Decision framework: fine-tune or prompt",
        "",
        "Three questions, in order:",
        "",
        "1. **Data size.** Fewer labelled examples than `roi.min_examples` -> prompt (and collect data).",
        "2. **Per request.** Is the fine-tuned model cheaper per request (plus the quality value per request, "
        "when measured)? If not -> prompt.",
        "3. **Volume vs rule changes.** First-year net = value per request x volume x 365 - training cost - "
        "rule changes x (retrain cost - prompt edit cost). Positive -> fine-tune; else prompt. Frequent rule "
        "changes favour prompting (an edit is cheaper than a retrain); high volume favours fine-tuning.",
        "",
    ]
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
    return lines


def _sensitivity_section(result: dict[str, Any]) -> list[str]:
    lines = [
        "## Sensitivity: volume x price ratio",
        "",
        "Break-even days and first-year savings (training counted once) when the prompted model costs "
        "*ratio* x the fine-tuned model per request, the fine-tuned price and training cost held fixed.",
        "",
    ]
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
    return lines


def _reproduce_section(result: dict[str, Any]) -> list[str]:
    return [
        "## Reproduce",
        "",
        "```bash",
        "fraudtune roi --preset seed                 # the seed's figures",
        "fraudtune roi --run-dir runs/demo           # measured: writes runs/demo/roi.json and this guide",
        "fraudtune roi --set roi.requests_per_day=50000 --json   # any input, whole result as JSON",
        "```",
        "",
        f"This version: `{result['command']}`.",
    ]


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
