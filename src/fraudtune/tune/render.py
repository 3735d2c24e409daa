"""RUN/training_results.md and RUN/advanced_techniques.md: the tuning results as markdown tables.

Every figure comes from training_results.json / advanced_techniques.json.
"""

from __future__ import annotations

from typing import Any

DASH = "—"
TRIAL_COLUMNS = (
    ("val loss", "val_loss"),
    ("val acc", "val_accuracy"),
    ("val F1", "val_f1"),
    ("train s", "train_seconds"),
    ("peak RSS MB", "peak_rss_mb"),
    ("tokens/s", "tokens_per_second"),
    ("trainable", "trainable_params"),
)
ARM_COLUMNS = (
    ("val loss", "val_loss"),
    ("val acc", "val_accuracy"),
    ("test acc", "test_accuracy"),
    ("test F1", "test_f1"),
    ("train s", "train_seconds"),
    ("tokens/s", "tokens_per_second"),
    ("peak RSS MB", "peak_rss_mb"),
    ("epochs", "epochs_run"),
    ("steps", "steps"),
)


def cell(value: Any) -> str:
    if value is None:
        return DASH
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def results_markdown(results: dict[str, Any], level: int = 1) -> str:
    """RUN/training_results.md: best configuration, the phased grid, every trial, the pruning savings."""
    h = "#" * level
    out = [f"{h} Hyperparameter search results\n"]
    out.append(
        f"Budget **{results.get('budget')}**, model `{results.get('model')}`, data.n {results.get('data_n')}; "
        f"best = {results.get('selection')}.\n"
    )
    if results.get("budget_overrides"):
        out.append(
            "The small budget is the grid config with: "
            + ", ".join(f"`{o}`" for o in results["budget_overrides"])
            + ".\n"
        )
    best = results.get("best")
    if best:
        out.append(f"{h}# Best configuration\n")
        out.append(
            table(
                ["study", "trial", "params", "val acc", "val loss", "val F1", "config"],
                [
                    [
                        best["study"],
                        best["number"],
                        _params(best["params"]),
                        best["val_accuracy"],
                        best["val_loss"],
                        best["val_f1"],
                        f"`{best['config']}`",
                    ]
                ],
            )
        )
    if results.get("grid"):
        out.append(grid_markdown(results["grid"], h))
    if results.get("tpe"):
        out.append(pruning_markdown(results["tpe"], h))
    out.append(f"{h}# All trials\n")
    out.append(trials_table(results.get("trials", [])))
    return "\n".join(out)


def grid_markdown(grid: dict[str, Any], h: str) -> str:
    rows = [
        [p["phase"], p["key"], ", ".join(cell(v) for v in p["values"]), _params(p["fixed"]), p["best"]]
        for p in grid["phases"]
    ]
    text = [f"{h}# Phased grid (study `{grid['study']}`)\n"]
    text.append(table(["phase", "varies", "values", "held fixed", "winner"], rows))
    text.append(
        f"\n{grid['grid_points']} grid points, {grid['distinct_configurations']} distinct configurations, "
        f"{grid['trained']} trained runs, {cell(grid['seconds'])} trial seconds in all "
        "(a configuration an earlier phase already measured is not trained again)"
        + (
            f"; {cell(grid['wall_clock_seconds'])} s ({grid['wall_clock_seconds'] / 3600:.2f} h) from the first "
            f"trial's start to the last one's end with {grid['workers']} worker process(es)"
            + (f" of {'/'.join(map(str, grid['threads']))} torch thread(s)" if grid.get("threads") else "")
            + ".\n"
            if grid.get("wall_clock_seconds")
            else ".\n"
        )
    )
    if grid.get("largest_batch_size") is not None:
        text.append(f"Largest batch size that trained within memory: {grid['largest_batch_size']}.\n")
    return "\n".join(text)


def pruning_markdown(tpe: dict[str, Any], h: str) -> str:
    rows = [
        ["trials (complete / pruned)", f"{tpe['trials']} ({tpe['complete']} / {tpe['pruned']})"],
        ["mean seconds of a complete trial", tpe["mean_complete_seconds"]],
        ["seconds spent in pruned trials", tpe["pruned_seconds"]],
        ["the same trials run to the end (estimated from the complete mean)", tpe["pruned_seconds_if_complete"]],
        ["seconds saved by pruning", tpe["saved_seconds"]],
        ["share of the unpruned cost saved", tpe["saved_fraction"]],
        ["study seconds", tpe["seconds"]],
    ]
    if tpe.get("grid_seconds") is not None:
        rows.append(["phased-grid seconds (same run directory)", tpe["grid_seconds"]])
        rows.append(["TPE seconds / grid seconds", tpe.get("seconds_vs_grid")])
    head = f"{h}# TPE with the {tpe['pruner']} pruner (study `{tpe['study']}`)\n"
    return head + "\n" + table(["measure", "value"], rows)


def trials_table(trials: list[dict[str, Any]]) -> str:
    if not trials:
        return "No trial finished yet.\n"
    keys = list(dict.fromkeys(k for t in trials for k in t.get("params", {})))
    head = ["study", "trial", "phase", *keys, "state", *(label for label, _ in TRIAL_COLUMNS)]
    rows = [
        [
            t["study"],
            t["number"],
            t.get("phase"),
            *(t["params"].get(k) for k in keys),
            t["state"] + (f" ({t['error']})" if t.get("error") else ""),
            *(t.get(field) for _, field in TRIAL_COLUMNS),
        ]
        for t in trials
    ]
    return table(head, rows)


def techniques_markdown(tech: dict[str, Any], level: int = 1) -> str:
    """RUN/advanced_techniques.md: each technique's arms, finding and recommendation."""
    h = "#" * level
    control = tech["control"]
    out = [f"{h} Advanced training techniques\n"]
    out.append(
        f"Each arm changes one thing in the control run ({_params(control)}), same seed and data; "
        f"test accuracy on {tech['test_examples']} held-out examples.\n"
    )
    if tech.get("bf16_reduced_steps"):
        out.append(
            f"This machine has no fast bf16 (no AVX512-BF16/AMX): the bf16-vs-fp32 pair ran "
            f"{tech['bf16_reduced_steps']} optimizer steps each, not the full run.\n"
        )
    for item in tech["techniques"].values():
        out.append(f"{h}# {item['name']}\n")
        if item["arms"]:
            rows = [[a["label"], *(a.get(f) for _, f in ARM_COLUMNS)] for a in item["arms"]]
            out.append(table(["arm", *(label for label, _ in ARM_COLUMNS)], rows))
        if item["name"] == "Checkpoint ensembling":
            out.append(ensemble_table(tech["ensemble"]))
        out.append(f"\n{item['finding']}\n\n**Recommendation:** {item['recommendation']}\n")
    out.append(f"{h}# Recommendations\n")
    out.append(
        table(
            ["technique", "production recommendation"],
            [[i["name"], i["recommendation"]] for i in tech["techniques"].values()],
        )
    )
    return "\n".join(out)


def ensemble_table(ensemble: dict[str, Any]) -> str:
    rows = [[name, s["accuracy"], s["f1"], s["log_loss"]] for name, s in ensemble["per_epoch"].items()]
    rows.append([f"best single ({ensemble['best_single']})", *_scores(ensemble["best_single_scores"])])
    rows.append([f"mean of {len(ensemble['epochs'])} epochs", *_scores(ensemble["ensemble_scores"])])
    return table(["adapter", "test acc", "test F1", "test log loss"], rows)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={cell(v)}" for k, v in params.items())


def _scores(s: dict[str, Any]) -> list[Any]:
    return [s["accuracy"], s["f1"], s["log_loss"]]
