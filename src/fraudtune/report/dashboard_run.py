"""Dashboard sections about the run around the models: training, forgetting, tuning, ROI, example answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fraudtune.report import fmt
from fraudtune.report.charts import COST_PNG, LOSS_PNG, SENSITIVITY_PNG
from fraudtune.report.dashboard_models import name
from fraudtune.report.html import esc, image, missing, note, table
from fraudtune.report.runfiles import FORGETTING_CATEGORIES, RunResults, completed_trials, roi_primary

TRAIN_FIELDS = (
    "method",
    "trainable",
    "device",
    "precision",
    "examples",
    "epochs_run",
    "steps",
    "train_seconds",
    "tokens_per_second",
    "best_checkpoint",
    "best_val_loss",
    "peak_rss_mb",
)
MAX_EXAMPLES = 6


def training_section(run: RunResults, charts: dict[str, Path]) -> str:
    if run.train_summary is None and LOSS_PNG not in charts:
        return missing(f"not measured yet: run `{run.command('train')}`")
    parts = [image(charts[LOSS_PNG], "training and validation loss")] if LOSS_PNG in charts else []
    if run.train_summary:
        rows = [[k, fmt.leaf(run.train_summary[k])] for k in TRAIN_FIELDS if k in run.train_summary]
        parts.insert(0, table(["train_summary.json", "value"], rows))
    return "".join(parts)


def forgetting_section(run: RunResults) -> str:
    """Every before/after pair in forgetting.json, whatever its nesting; the headline metric of a category first."""
    if not run.forgetting:
        return missing(f"not measured yet: run `{run.command('forgetting')}`")
    keys = [k for k in FORGETTING_CATEGORIES if k in run.forgetting]
    keys += [k for k, v in run.forgetting.items() if k not in keys and isinstance(v, dict)]
    rows, extras = [], []
    for category in keys:
        block = run.forgetting[category]
        if not isinstance(block, dict):
            continue
        source = block["metrics"] if isinstance(block.get("metrics"), dict) else {category: block}
        headline = block.get("metric")
        for path, pair in _pairs(source):
            label = f"{path} (headline)" if path == headline else path
            rows.append([category, label, *_pair_cells(pair)])
        for key, value in block.items():
            if isinstance(value, dict) and key != "metrics" and not _pairs({key: value}):
                extras.append(f"{category}.{key}: " + "; ".join(f"{k} {fmt.leaf(v)}" for k, v in value.items()))
    if not rows:
        return missing("forgetting.json has no before/after figures")
    head = ["category", "metric", "before", "after", "delta", "95% CI", "n", "reading"]
    body = table(head, rows, left=2)
    intro = note(
        "Base model (before) vs fine-tuned (after). Reading: a change counts only when its interval excludes 0."
    )
    return intro + body + "".join(note(e) for e in extras)


def tuning_section(run: RunResults, charts: dict[str, Path]) -> str:
    if run.tuning is None:
        return missing(f"not measured yet: run `{run.command('tune')}`")
    done = completed_trials(run.tuning)
    best = max(done, key=lambda t: t["val_accuracy"]) if done else None
    param_keys = list(dict.fromkeys(k for t in run.tuning for k in t.get("params", {})))
    rows = []
    for t in run.tuning:
        mark = " (best)" if t is best else ""
        rows.append(
            [
                f"{fmt.leaf(t.get('number'))}{mark}",
                fmt.leaf(t.get("phase")),
                fmt.leaf(t.get("state")),
                *(fmt.leaf(t.get("params", {}).get(k)) for k in param_keys),
                fmt.pct(t.get("val_accuracy")),
                fmt.num(t.get("val_loss"), 4),
            ]
        )
    summary = note(f"{len(done)} of {len(run.tuning)} trials completed.")
    chart = image(charts[SENSITIVITY_PNG], "hyperparameter sensitivity") if SENSITIVITY_PNG in charts else ""
    return summary + table(["trial", "phase", "state", *param_keys, "val accuracy", "val loss"], rows, left=3) + chart


def roi_section(run: RunResults, charts: dict[str, Path]) -> str:
    primary = roi_primary(run.roi)
    if primary is None:
        return missing(f"not measured yet: run `{run.command('roi')}`")
    preset, a = primary
    inf, be, annual, verdict = a["inference"], a["break_even"], a["annual"], a["decision"]["current"]
    rows = [
        ["training cost (data + compute + validation)", fmt.usd(a["training"]["total"])],
        ["prompted base: $ per request", fmt.usd(inf["prompted_base"]["cost_per_request"])],
        ["fine-tuned: $ per request", fmt.usd(inf["fine_tuned"]["cost_per_request"])],
        ["per-request cost reduction", f"{fmt.num(inf.get('reduction_pct'))}%"],
        ["break-even", f"{fmt.num(be.get('requests'))} requests = {fmt.num(be.get('days'))} days"],
        ["annual cost, prompted", fmt.usd(annual["prompted"])],
        ["annual cost, fine-tuned (incl. training)", fmt.usd(annual["fine_tuned"])],
        ["annual savings", f"{fmt.usd(annual['savings'])} ({fmt.num(annual.get('savings_pct'))}%)"],
        ["decision", f"{verdict['verdict']}: {verdict['reason']}"],
    ]
    intro = note(f"{preset} figures at {fmt.num(be['requests_per_day'])} requests/day, from `{run.roi['command']}`.")
    chart = image(charts[COST_PNG], "cumulative cost, prompted vs fine-tuned") if COST_PNG in charts else ""
    return intro + table(["figure", "value"], rows) + chart


def examples_section(run: RunResults) -> str:
    """A few test transactions with the truth and every model's answer; disagreements first."""
    if not run.predictions:
        return missing(f"not measured yet: run `{run.command('evaluate')}` (writes predictions/<model>.jsonl)")
    by_model = {m: {r.get("transaction_id"): r for r in rows} for m, rows in run.predictions.items()}
    models = [m for m in run.models() if m in by_model] + sorted(m for m in by_model if m not in run.models())
    ids = list(dict.fromkeys(tid for m in models for tid in by_model[m]))
    disagree = [t for t in ids if len({by_model[m].get(t, {}).get("label") for m in models}) > 1]
    chosen = (disagree + [t for t in ids if t not in disagree])[:MAX_EXAMPLES]
    rows = [
        [
            _transaction_cell(t, run.test_meta.get(t) or _truth_of(t, by_model)),
            *(_answer_cell(by_model[m].get(t)) for m in models),
        ]
        for t in chosen
    ]
    header = ["transaction (truth)", *(name(m) for m in models)]
    return note("Disagreements between models first.") + table(header, rows, left=len(header), raw=True)


def _pairs(obj: dict[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(dotted path, dict) for every nested dict whose `before` and `after` are numbers."""
    out = []
    for key, value in obj.items():
        if not isinstance(value, dict):
            continue
        path = f"{prefix}.{key}" if prefix else str(key)
        if "before" in value and "after" in value:
            if fmt.is_number(value["before"]) or fmt.is_number(value["after"]):
                out.append((path, value))
        else:
            out.extend(_pairs(value, path))
    return out


def _pair_cells(pair: dict[str, Any]) -> list[str]:
    delta, ci = pair.get("delta"), pair.get("ci")
    if not fmt.is_number(delta) and fmt.is_number(pair.get("before")) and fmt.is_number(pair.get("after")):
        delta = pair["after"] - pair["before"]
    return [
        fmt.leaf(pair.get("before")),
        fmt.leaf(pair.get("after")),
        f"{delta:+.4g}" if fmt.is_number(delta) else fmt.DASH,
        fmt.interval(ci, 4),
        fmt.leaf(pair.get("n")),
        fmt.ci_reading(ci, pair.get("higher_is_better", True)),
    ]


def _truth_of(tid: str, by_model: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """Truth and category from a prediction line when the test metadata file is not at hand."""
    for rows in by_model.values():
        row = rows.get(tid) or {}
        if "truth" in row:
            return {"label": row["truth"], "category": row.get("category")}
    return None


def _transaction_cell(tid: str, meta: dict[str, Any] | None) -> str:
    if meta is None:
        return esc(tid)
    t = meta.get("transaction") or {}
    merchant = t.get("merchant") or {}
    lines = [
        f"<b>{esc(tid)}</b> · truth <b>{esc(meta.get('label'))}</b> ({esc(meta.get('category'))})",
        f"{esc(fmt.num(t.get('amount'), 6))} {esc(t.get('currency', ''))} at “{esc(merchant.get('name'))}”",
        f"{esc(merchant.get('category'))}, {esc(merchant.get('country'))}, {esc(t.get('channel'))}, "
        f"{esc(t.get('timestamp'))}",
    ]
    return '<div class="reason">' + "<br>".join(lines) + "</div>"


def _answer_cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return fmt.DASH
    if row.get("label") is None:
        return f'<span class="bad">unparsed</span>: {esc(row.get("error", "no label"))}'
    flags = ", ".join(str(f) for f in row.get("red_flags") or []) or "none"
    reasoning = str(row.get("reasoning") or "")[:240]
    return (
        f"<b>{esc(row['label'])}</b> · risk {esc(fmt.leaf(row.get('risk_score')))} · "
        f"p(fraud) {esc(fmt.num(row.get('fraud_probability')))}<br>flags: {esc(flags)}"
        + (f'<div class="reason">{esc(reasoning)}</div>' if reasoning else "")
    )
