"""PNG charts of a run (matplotlib, Agg): loss curves, model metrics, cumulative cost, tuning sensitivity.

Each chart is drawn on an Axes by a `draw_*` function so the combined `comparison_charts.png` reuses them; a chart
whose input is missing is skipped with a note saying which command produces it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import PIL.Image
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, PercentFormatter

from fraudtune.report.fmt import is_number
from fraudtune.report.runfiles import MODEL_COLORS, MODEL_NAMES, RunResults, completed_trials, roi_primary, trial_param

LOSS_PNG = "loss_curves.png"
METRICS_PNG = "model_metrics.png"
COST_PNG = "cumulative_cost.png"
SENSITIVITY_PNG = "hyperparameter_sensitivity.png"
CALIBRATION_PNG = "calibration.png"
COMPARISON_PNG = "comparison_charts.png"
BAR_METRICS = ("accuracy", "precision", "recall", "f1")
DPI = 110


@dataclass
class Charts:
    """Which charts were written (name -> path) and which were skipped (name -> why)."""

    written: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def make_charts(run: RunResults, out_dir: Path) -> Charts:
    """Write every chart whose input exists into `out_dir`; note the others."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = Charts()
    singles: list[tuple[str, Callable[[RunResults], str | None], Callable[[Figure, RunResults], None], tuple]] = [
        (LOSS_PNG, _loss_missing, lambda f, r: draw_loss(f.subplots(), r), (8, 4.5)),
        (METRICS_PNG, _eval_missing, lambda f, r: draw_metrics(f.subplots(), r), (8, 4.5)),
        (CALIBRATION_PNG, _calibration_missing, lambda f, r: draw_calibration(f.subplots(), r), (6, 5)),
        (COST_PNG, _roi_missing, lambda f, r: draw_cost(f.subplots(), r), (8, 4.5)),
        (SENSITIVITY_PNG, _tuning_missing, lambda f, r: draw_sensitivity(f.subplots(1, 2), r), (11, 4.5)),
    ]
    for name, missing, draw, size in singles:
        note = missing(run)
        if note:
            charts.skipped[name] = note
            continue
        fig = Figure(figsize=size, layout="constrained")
        draw(fig, run)
        charts.written[name] = _save(fig, out_dir / name)
    if charts.written:
        charts.written[COMPARISON_PNG] = _save(draw_comparison(run), out_dir / COMPARISON_PNG)
    else:
        charts.skipped[COMPARISON_PNG] = "no chart input in the run yet"
    return charts


def draw_comparison(run: RunResults) -> Figure:
    """All panels on one page; a panel without input says which command produces it."""
    fig = Figure(figsize=(18, 10), layout="constrained")
    fig.suptitle(f"fraudtune run {run.run_dir.name}: training, quality, cost and tuning", fontsize=15)
    axes = fig.subplots(2, 3)
    panels = [
        (axes[0][0], _loss_missing, draw_loss, "Training"),
        (axes[0][1], _eval_missing, draw_metrics, "Test metrics"),
        (axes[0][2], _calibration_missing, draw_calibration, "Calibration"),
        (axes[1][0], _roi_missing, draw_cost, "Cumulative cost"),
    ]
    for ax, missing, draw, title in panels:
        note = missing(run)
        if note:
            _note(ax, title, note)
        else:
            draw(ax, run)
    note = _tuning_missing(run)
    if note:
        _note(axes[1][1], "Rank sensitivity", note)
        _note(axes[1][2], "Learning-rate sensitivity", note)
    else:
        draw_sensitivity(axes[1][1:], run)
    return fig


def draw_loss(ax: Axes, run: RunResults) -> None:
    """Training and validation loss over optimizer steps; validation accuracy on a second axis."""
    train = _series(run.metrics, "train", "loss")
    val = _series(run.metrics, "val", "loss")
    if train:
        ax.plot(*_xy(train), color="#0072B2", label="training loss")
    if val:
        ax.plot(*_xy(val), "o-", color="#D55E00", label="validation loss")
    ax.set(xlabel="optimizer step", ylabel="cross-entropy loss on answer tokens", title="Training and validation")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    acc = _series(run.metrics, "val", "val_accuracy")
    if acc:
        twin = ax.twinx()
        twin.plot(*_xy(acc), "s--", color="#009E73", label="validation accuracy")
        twin.set_ylabel("validation accuracy")
        twin.set_ylim(0, 1.05)
        twin.yaxis.set_major_formatter(PercentFormatter(1.0))
        more = twin.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, loc="upper right", fontsize=9)


def draw_metrics(ax: Axes, run: RunResults) -> None:
    """Accuracy, precision, recall and F1 per model on the test set, with the 95% intervals as error bars."""
    models = run.models()
    width = 0.8 / max(len(models), 1)
    for i, key in enumerate(models):
        m = run.eval["models"][key]
        bars = [(j, m[metric]) for j, metric in enumerate(BAR_METRICS) if is_number(m.get(metric))]
        xs = [j - 0.4 + width * (i + 0.5) for j, _ in bars]
        ax.bar(xs, [v for _, v in bars], width, color=MODEL_COLORS.get(key, "#999999"), label=_name(key))
        for x, (j, value) in zip(xs, bars, strict=True):
            ci = (m.get("ci") or {}).get(BAR_METRICS[j])
            if isinstance(ci, list | tuple) and len(ci) == 2 and all(is_number(c) for c in ci):
                err = [[max(value - ci[0], 0)], [max(ci[1] - value, 0)]]
                ax.errorbar([x], [value], yerr=err, fmt="none", ecolor="black", capsize=3, lw=1)
        for j, metric in enumerate(BAR_METRICS):  # undefined (e.g. precision with nothing flagged): say so
            if not is_number(m.get(metric)):
                x = j - 0.4 + width * (i + 0.5)
                ax.text(x, 0.01, "n/a", rotation=90, ha="center", va="bottom", fontsize=7, color="#555555")
    ax.set_xticks(range(len(BAR_METRICS)), [m.upper() if m == "f1" else m for m in BAR_METRICS])
    ax.set_ylim(0, 1.22)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    n = (run.eval.get("test") or {}).get("n")
    ax.set(ylabel="score (error bars: 95% interval)", title=f"Test set{f' (n={n})' if n else ''}: models compared")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", ncols=min(len(models), 4), frameon=False)


def draw_calibration(ax: Axes, run: RunResults) -> None:
    """Reliability diagram: predicted fraud probability against the observed fraud share per bin."""
    ax.plot([0, 1], [0, 1], ":", color="gray", label="perfect calibration")
    for key in run.models():
        m = run.eval["models"][key]
        bins = [b for b in m.get("calibration") or [] if b.get("count")]
        if not bins:
            continue
        brier = m.get("brier")
        label = _name(key) + (f" (Brier {brier:.3f})" if is_number(brier) else "")
        xs, ys = [b["mean_predicted"] for b in bins], [b["fraction_positive"] for b in bins]
        ax.plot(xs, ys, "o-", color=MODEL_COLORS.get(key, "#999999"), label=label)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted fraud probability", ylabel="observed fraud share")
    ax.set_title("Calibration (reliability diagram)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")


def draw_cost(ax: Axes, run: RunResults) -> None:
    """Cumulative cost over days: prompted base vs fine-tuned (training cost up front), break-even marked."""
    preset, a = roi_primary(run.roi)
    volume = a["break_even"]["requests_per_day"]
    prompted = a["inference"]["prompted_base"]["cost_per_request"] * volume
    tuned = a["inference"]["fine_tuned"]["cost_per_request"] * volume
    upfront = a["training"]["total"]
    even = a["break_even"].get("days_exact")
    horizon = min(365, max(30, math.ceil(2 * even))) if is_number(even) else 365
    days = list(range(horizon + 1))
    ax.plot(days, [prompted * d for d in days], color=MODEL_COLORS["prompted_base"], label="prompted base model")
    ax.plot(days, [upfront + tuned * d for d in days], color=MODEL_COLORS["fine_tuned"], label="fine-tuned (LoRA)")
    if is_number(even) and even <= horizon:
        ax.axvline(even, color="black", ls="--", lw=1)
        ax.annotate(
            f"break-even: day {even:.1f}\n(${upfront + tuned * even:,.0f})",
            (even, upfront + tuned * even),
            xytext=(10, -30),
            textcoords="offset points",
            fontsize=9,
        )
    elif not is_number(even):
        ax.text(0.02, 0.9, "no break-even: fine-tuning saves nothing per request", transform=ax.transAxes)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"${v:,.0f}"))
    ax.set(xlabel="days in production", ylabel="cumulative cost (USD)")
    ax.set_title(f"Cumulative cost at {volume:,.0f} requests/day ({preset} figures)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=9, loc="upper left")


def draw_sensitivity(axes: Any, run: RunResults) -> None:
    """Validation accuracy of each completed tuning trial against LoRA rank and learning rate."""
    trials = completed_trials(run.tuning)
    for ax, param, label in zip(axes, ("r", "lr"), ("LoRA rank r", "peak learning rate"), strict=True):
        values = [(trial_param(t, param), t) for t in trials]
        points = [(x, t["val_accuracy"], t.get("phase")) for x, t in values if is_number(x)]
        if not points:
            _note(ax, f"{label} sensitivity", f"no completed trial varies {param}")
            continue
        phases = sorted({str(p) for _, _, p in points})
        for k, phase in enumerate(phases):
            xs = [x for x, _, p in points if str(p) == phase]
            ys = [y for _, y, p in points if str(p) == phase]
            ax.scatter(xs, ys, s=40, alpha=0.8, color=f"C{k}", label=f"phase {phase}")
        best = {}
        for x, y, _ in points:
            best[x] = max(best.get(x, 0), y)
        xs = sorted(best)
        ax.plot(xs, [best[x] for x in xs], "k--", lw=1, label="best per value")
        if param == "lr":
            ax.set_xscale("log")
        else:
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [str(x) for x in xs])
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set(xlabel=label, ylabel="validation accuracy", title=f"Sensitivity to {label}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)


def _series(rows: list[dict[str, Any]], split: str, key: str) -> list[tuple[float, float]]:
    """(step, value) of one split, the last row per step winning (a resumed run may log a step twice)."""
    points = {r["step"]: r[key] for r in rows if r.get("split") == split and is_number(r.get(key)) and "step" in r}
    return sorted(points.items())


def _xy(points: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [x for x, _ in points], [y for _, y in points]


def _note(ax: Axes, title: str, note: str) -> None:
    ax.set_title(title)
    ax.set_axis_off()
    ax.text(0.5, 0.5, note, ha="center", va="center", wrap=True, fontsize=10, color="#555555", transform=ax.transAxes)


def _save(fig: Figure, path: Path) -> Path:
    """PNG with a 256-colour palette (a third of the size: the charts are copied into docs/ and committed).

    Written beside its final name, then renamed: a killed report leaves no half-written chart.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=DPI)
    image = PIL.Image.open(buffer).convert("RGB").quantize(colors=256, method=PIL.Image.Quantize.MEDIANCUT)
    tmp = path.with_name(f".{path.name}.tmp.png")
    image.save(tmp, optimize=True)
    tmp.replace(path)
    return path


def _name(key: str) -> str:
    return MODEL_NAMES.get(key, key.replace("_", " "))


def _loss_missing(run: RunResults) -> str | None:
    if _series(run.metrics, "train", "loss") or _series(run.metrics, "val", "loss"):
        return None
    return f"not measured yet: run `{run.command('train')}` (writes metrics.jsonl)"


def _eval_missing(run: RunResults) -> str | None:
    return None if run.models() else f"not measured yet: run `{run.command('evaluate')}` (writes eval.json)"


def _calibration_missing(run: RunResults) -> str | None:
    if _eval_missing(run):
        return _eval_missing(run)
    has_bins = any(run.eval["models"][m].get("calibration") for m in run.models())
    return None if has_bins else "eval.json has no calibration bins"


def _roi_missing(run: RunResults) -> str | None:
    return None if roi_primary(run.roi) else f"not measured yet: run `{run.command('roi')}` (writes roi.json)"


def _tuning_missing(run: RunResults) -> str | None:
    if completed_trials(run.tuning):
        return None
    return f"not measured yet: run `{run.command('tune')}` (writes training_results.json)"
