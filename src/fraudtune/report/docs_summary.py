"""docs/WEEK22_SUMMARY.md: what was built, what the run measured, the ROI, and the lessons, from run files only."""

from __future__ import annotations

from typing import Any

from fraudtune.guides import fill_template
from fraudtune.report import fmt
from fraudtune.report.docs_claims import claims_table, consistency_value, seed_claims
from fraudtune.report.runfiles import MODEL_NAMES, RunResults, completed_trials, roi_primary

TEMPLATE = "WEEK22_SUMMARY.md"  # in docs/templates/, named as the guide it renders


def results_table(run: RunResults) -> list[str]:
    """One row per model: the figures a reader compares first."""
    if not run.models():
        return [f"not measured yet: run `{run.command('evaluate')}`"]
    rows = []
    for key in run.models():
        m = run.eval["models"][key]
        ci = m.get("ci") or {}
        knowledge = (m.get("company_knowledge") or {}).get("accuracy")
        rows.append(
            [
                MODEL_NAMES.get(key, key),
                fmt.with_ci(m.get("accuracy"), ci.get("accuracy")),
                fmt.with_ci(m.get("f1"), ci.get("f1")),
                fmt.pct(knowledge),
                fmt.pct(consistency_value(m.get("consistency"))),
                fmt.num(m.get("latency_ms_p50")),
                fmt.usd(m.get("cost_per_1k")),
            ]
        )
    n = (run.eval.get("test") or {}).get("n")
    header_row = [
        "model",
        "accuracy [95% CI]",
        "F1 [95% CI]",
        "company knowledge acc.",
        "consistency",
        "latency p50 (ms)",
        "$ / 1K requests",
    ]
    return [f"Test set: {fmt.num(n)} transactions.", "", *fmt.md_table(header_row, rows)]


def render_summary(run: RunResults) -> str:
    """docs/templates/WEEK22_SUMMARY.md filled with the run's results, insights, claims, ROI and metrics."""
    bullets = fmt.block([f"- {i}" for i in insights(run)])
    return fill_template(
        TEMPLATE,
        **fmt.provenance(run.run_dir, run.meta),
        results=fmt.block(results_table(run)),
        insights=f"\n\n{bullets}" if bullets else "",  # on the heading's line: without insights it stands alone
        claims=fmt.block(claims_table(seed_claims(run))),
        roi=fmt.block(_roi(run)),
        technical=fmt.block(_technical(run)),
        data_lessons="".join(f"\n- {lesson}" for lesson in _data_lessons(run)).rstrip(),
        run_name=run.run_dir.name,
    )


def insights(run: RunResults) -> list[str]:
    """Sentences built from the measurements; each says what it compares."""
    out = []
    models = (run.eval or {}).get("models") or {}
    tuned = models.get("fine_tuned")
    if tuned and fmt.is_number(tuned.get("f1")):
        for key in run.models():
            other = models[key]
            if key == "fine_tuned" or not fmt.is_number(other.get("f1")):
                continue
            p = other.get("mcnemar_p")
            sig = f" (McNemar p = {fmt.num(p)})" if fmt.is_number(p) else ""
            out.append(
                f"Fine-tuned vs {MODEL_NAMES.get(key, key)}: F1 {fmt.num(tuned['f1'])} vs {fmt.num(other['f1'])}, "
                f"{fmt.points(tuned['f1'] - other['f1'])}{sig}."
            )
        know = [(k, (models[k].get("company_knowledge") or {}).get("accuracy")) for k in run.models()]
        know = [(k, v) for k, v in know if fmt.is_number(v)]
        if know:
            out.append(
                "Company-knowledge accuracy (rulebook and historical-pattern cases): "
                + ", ".join(f"{MODEL_NAMES.get(k, k)} {fmt.pct(v)}" for k, v in know)
                + "."
            )
    else:
        out.append(f"Model comparison: not measured yet: run `{run.command('evaluate')}`.")
    out += _forgetting_insight(run)
    trials = completed_trials(run.tuning)
    if trials:
        best = max(trials, key=lambda t: t["val_accuracy"])
        out.append(
            f"Best of {len(trials)} tuning trials: {best.get('params')} at validation accuracy "
            f"{fmt.pct(best['val_accuracy'])}."
        )
    return out


def _forgetting_insight(run: RunResults) -> list[str]:
    if not run.forgetting:
        return [f"Forgetting: not measured yet: run `{run.command('forgetting')}`."]
    parts = []
    for key, block in run.forgetting.items():
        if isinstance(block, dict) and fmt.is_number(block.get("before")) and fmt.is_number(block.get("after")):
            reading = fmt.ci_reading(block.get("ci"), block.get("higher_is_better", True))
            parts.append(f"{key} ({block.get('metric', key)}) {reading}")
    return ["Forgetting, before → after fine-tuning, by headline metric: " + "; ".join(parts) + "."] if parts else []


def _roi(run: RunResults) -> list[str]:
    primary = roi_primary(run.roi)
    if primary is None:
        return [f"not measured yet: run `{run.command('roi')}`"]
    preset, a = primary
    inf, current = a["inference"], a["decision"]["current"]
    rows = [
        ["training cost", fmt.usd(a["training"]["total"])],
        [
            "$ per request, prompted / fine-tuned",
            f"{fmt.usd(inf['prompted_base']['cost_per_request'])} / {fmt.usd(inf['fine_tuned']['cost_per_request'])}",
        ],
        ["per-request reduction", f"{fmt.num(inf.get('reduction_pct'))}%"],
        [
            "break-even",
            f"{fmt.num(a['break_even'].get('days'))} days at {fmt.num(a['break_even']['requests_per_day'])}"
            " requests/day",
        ],
        [
            "annual savings (incl. training)",
            f"{fmt.usd(a['annual']['savings'])} ({fmt.num(a['annual']['savings_pct'])}%)",
        ],
        ["decision", f"{current['verdict']}: {current['reason']}"],
    ]
    return [
        f"{preset} figures from `{run.roi['command']}`; details in COST_BENEFIT_ANALYSIS.md.",
        "",
        *fmt.md_table(["", "value"], rows),
    ]


def _technical(run: RunResults) -> list[str]:
    s = run.train_summary
    if s is None:
        return [f"not measured yet: run `{run.command('train')}`"]
    tuned: dict[str, Any] = ((run.eval or {}).get("models") or {}).get("fine_tuned") or {}
    rows = [
        ["trainable parameters", fmt.num(s.get("trainable_params"))],
        ["training time", f"{fmt.num(s.get('train_seconds'))} s on {s.get('device', fmt.DASH)}"],
        ["training throughput", f"{fmt.num(s.get('tokens_per_second'))} tokens/s"],
        ["peak memory (RSS)", f"{fmt.num(s.get('peak_rss_mb'))} MB"],
        [
            "best checkpoint (validation loss)",
            f"{s.get('best_checkpoint', fmt.DASH)} ({fmt.num(s.get('best_val_loss'))})",
        ],
        ["latency p50 / p95", f"{fmt.num(tuned.get('latency_ms_p50'))} / {fmt.num(tuned.get('latency_ms_p95'))} ms"],
        ["answers parsed", fmt.pct(tuned.get("parse_rate"))],
    ]
    return fmt.md_table(["", "value"], rows)


def _data_lessons(run: RunResults) -> list[str]:
    out = []
    tuned = ((run.eval or {}).get("models") or {}).get("fine_tuned") or {}
    ci = (tuned.get("ci") or {}).get("f1")
    n = ((run.eval or {}).get("test") or {}).get("n")
    if isinstance(ci, list) and len(ci) == 2 and fmt.is_number(n):
        out.append(
            f"With {fmt.num(n)} test transactions the fine-tuned F1 interval is "
            f"{fmt.num(ci[1] - ci[0])} wide: differences smaller than that are not evidence."
        )
    return out
