"""Dashboard sections that compare the models on the test set: metrics, slices, confusion, calibration, knowledge."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from fraudtune.report import fmt
from fraudtune.report.charts import CALIBRATION_PNG, METRICS_PNG
from fraudtune.report.html import esc, image, missing, note, table
from fraudtune.report.runfiles import MODEL_NAMES, RunResults

QUALITY = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "brier", "red_flag_f1", "mcnemar_p")
OPERATIONS = (  # eval.json key, column title, format
    ("consistency", "consistency", fmt.pct),
    ("parse_rate", "parse rate", fmt.pct),
    ("risk_score_mae", "risk score MAE", fmt.num),
    ("latency_ms_p50", "latency p50 (ms)", fmt.num),
    ("latency_ms_p95", "latency p95 (ms)", fmt.num),
    ("prompt_tokens_per_request", "prompt tokens / request", fmt.num),
    ("completion_tokens_per_request", "completion tokens / request", fmt.num),
    ("cost_per_1k", "$ per 1K requests", fmt.usd),
)
SLICE_KEYS = ("slices", "by_category", "per_category")


def name(key: str) -> str:
    return MODEL_NAMES.get(key, key.replace("_", " "))


def metrics_section(run: RunResults, charts: dict[str, Path]) -> str:
    """Quality with 95% intervals, then operating figures (tokens, latency, cost); "—" where a model has none."""
    if not run.models():
        return missing(f"not measured yet: run `{run.command('evaluate')}`")
    test = run.eval.get("test") or {}
    intro = note(
        f"Test set: {test.get('n', fmt.DASH)} transactions from {test.get('source', fmt.DASH)}. "
        "Brackets: 95% interval. mcnemar_p: McNemar test of the baseline against the fine-tuned model."
    )
    quality_rows = []
    for key in run.models():
        m = run.eval["models"][key]
        ci = m.get("ci") or {}
        quality_rows.append([name(key), *(fmt.with_ci(m.get(k), ci.get(k)) for k in QUALITY)])
    ops_rows = [
        [name(key), *(fn(_value(run.eval["models"][key].get(k))) for k, _, fn in OPERATIONS)] for key in run.models()
    ]
    chart = image(charts[METRICS_PNG], "accuracy, precision, recall and F1 per model") if METRICS_PNG in charts else ""
    return (
        intro
        + "<h3>Quality</h3>"
        + table(["model", *QUALITY], quality_rows)
        + "<h3>Operations</h3>"
        + table(["model", *(title for _, title, _ in OPERATIONS)], ops_rows)
        + chart
    )


def slices_section(run: RunResults) -> str:
    """Accuracy per test category and per true label, from the saved predictions (or eval.json's own slices)."""
    per_model = {m: _slices_from_predictions(run, m) for m in run.predictions}
    per_model = {m: s for m, s in per_model.items() if s}
    if not per_model:
        per_model = {m: _slices_from_eval(run.eval["models"][m]) for m in run.models()}
        per_model = {m: s for m, s in per_model.items() if s}
    if not per_model:
        return missing(f"not measured yet: run `{run.command('evaluate')}` (writes predictions/<model>.jsonl)")
    models = [m for m in run.models() if m in per_model] + sorted(m for m in per_model if m not in run.models())
    names = sorted({s for slices in per_model.values() for s in slices}, key=_slice_order)
    rows = []
    for s in names:
        cells = []
        for m in models:
            acc, n = per_model[m].get(s, (None, None))
            cells.append(fmt.DASH if acc is None else fmt.pct(acc) + (f" (n={n})" if n else ""))
        rows.append([s, *cells])
    return note("Share of transactions each model labels correctly; an unparseable answer counts as wrong.") + table(
        ["slice", *(name(m) for m in models)], rows
    )


def confusion_section(run: RunResults) -> str:
    """One 2x2 matrix per model (rows: truth, columns: prediction)."""
    cards = []
    for key in run.models():
        c = run.eval["models"][key].get("confusion")
        if not isinstance(c, dict):
            continue
        rows = [
            ["true FRAUD", fmt.num(c.get("tp")), fmt.num(c.get("fn"))],
            ["true LEGITIMATE", fmt.num(c.get("fp")), fmt.num(c.get("tn"))],
        ]
        body = table(["", "predicted FRAUD", "predicted LEGITIMATE"], rows)
        cards.append(f'<div class="card"><h3>{esc(name(key))}</h3>{body}</div>')
    if not cards:
        return missing(f"not measured yet: run `{run.command('evaluate')}`")
    return f'<div class="grid">{"".join(cards)}</div>'


def calibration_section(run: RunResults, charts: dict[str, Path]) -> str:
    """The reliability diagram and each model's bins (mean predicted vs observed fraud share)."""
    if not run.models():
        return missing(f"not measured yet: run `{run.command('evaluate')}`")
    parts = [image(charts[CALIBRATION_PNG], "calibration reliability diagram")] if CALIBRATION_PNG in charts else []
    for key in run.models():
        bins = run.eval["models"][key].get("calibration") or []
        if bins:
            rows = [
                [
                    fmt.leaf(b.get("bin")),
                    fmt.num(b.get("mean_predicted")),
                    fmt.num(b.get("fraction_positive")),
                    fmt.num(b.get("count")),
                ]
                for b in bins
            ]
            brier = run.eval["models"][key].get("brier")
            parts.append(f'<div class="card"><h3>{esc(name(key))} (Brier {esc(fmt.num(brier))})</h3>')
            parts.append(table(["bin", "mean predicted", "fraud share", "count"], rows) + "</div>")
    if len(parts) == 0:
        return missing("eval.json has no calibration bins")
    return f'<div class="grid">{"".join(parts)}</div>'


def knowledge_section(run: RunResults) -> str:
    """Company-knowledge and edge-case results, whatever their inner layout (flattened to dotted keys)."""
    blocks = []
    for field, title in (("company_knowledge", "Company knowledge"), ("edge_cases", "Edge cases")):
        values = {m: fmt.flatten(run.eval["models"][m][field]) for m in run.models() if field in run.eval["models"][m]}
        if not values:
            continue
        keys = list(dict.fromkeys(k for v in values.values() for k in v))
        rows = [[k, *(fmt.leaf(values[m].get(k)) if m in values else fmt.DASH for m in run.models())] for k in keys]
        blocks.append(f"<h3>{esc(title)}</h3>" + table(["measure", *(name(m) for m in run.models())], rows))
    if not blocks:
        return missing(f"not measured yet: run `{run.command('evaluate')}`")
    return "".join(blocks)


def _value(v: Any) -> Any:
    """A scalar from a metric that may be a dict ({"rate": .., "n": ..})."""
    if isinstance(v, dict):
        for key in ("rate", "mean", "value", "agreement", "accuracy"):
            if fmt.is_number(v.get(key)):
                return v[key]
    return v


def _slices_from_predictions(run: RunResults, model: str) -> dict[str, tuple[float, int | None]]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in run.predictions[model]:
        meta = run.test_meta.get(row.get("transaction_id")) or {}
        truth, category = meta.get("label", row.get("truth")), meta.get("category", row.get("category"))
        if truth is None:
            continue
        right = int(row.get("label") == truth)
        for s in ("all", f"label {truth}") + ((str(category),) if category else ()):
            counts[s][0] += right
            counts[s][1] += 1
    return {s: (c / n, n) for s, (c, n) in counts.items()}


def _slices_from_eval(model: dict[str, Any]) -> dict[str, tuple[float, int | None]]:
    for key in SLICE_KEYS:
        slices = model.get(key)
        if isinstance(slices, dict):
            out = {}
            for s, v in slices.items():
                acc = v.get("accuracy") if isinstance(v, dict) else v
                n = v.get("n") if isinstance(v, dict) else None
                if fmt.is_number(acc):
                    out[str(s)] = (acc, n if isinstance(n, int) else None)
            return out
    return {}


def _slice_order(s: str) -> tuple[int, str]:
    return (0 if s == "all" else 2 if s.startswith("label ") else 1, s)
