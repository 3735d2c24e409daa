"""Forgetting prevention strategies: each a training run scored like the main run, in one table.

LoRA (reference) vs full fine-tuning, 80/20 mixing with general instruction data, a lower learning rate, fewer
epochs, and regularisation (dropout + weight decay). `fraudtune forgetting strategies` runs them under
RUN/forgetting-strategies/<name>/ and writes RUN/forgetting_strategies.json and .md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fraudtune import paths
from fraudtune.config import RunConfig, config_to_dict, validate_config
from fraudtune.dotted import set_dotted
from fraudtune.files import read_json, write_json, write_text_atomic
from fraudtune.forgetting.run import CATEGORIES, evaluate_pair, load_pair, load_sets
from fraudtune.profile import load_profile

log = logging.getLogger(__name__)

STRATEGY_RUNS_DIR = "forgetting-strategies"
SUITE_BASE_DIR = "suite-base"


def strategy_configs(cfg: RunConfig) -> dict[str, tuple[str, RunConfig]]:
    """The LoRA reference and the five prevention strategies, on the reduced settings of forgetting.strategy_*.

    Every run uses data.n = strategy_n, strategy_epochs epochs, warm-up of a tenth of its steps and the fast probe
    sets, so the comparison fits in about an hour on a 2-core CPU; one setting differs per strategy.
    """
    fc, epochs = cfg.forgetting, cfg.forgetting.strategy_epochs
    steps = -(-round(fc.strategy_n * cfg.data.train_frac) // (cfg.train.batch_size * cfg.train.grad_accum)) * epochs
    common = {
        "data.n": fc.strategy_n,
        "train.epochs": epochs,
        "train.max_steps": -1,
        "train.warmup_steps": max(1, steps // 10),
        "forgetting.fast": True,
        "lora.method": "lora",
    }
    variants = {
        "lora": ("LoRA with the run's settings (reference)", {}),
        "full": ("full fine-tuning, same data, epochs and learning rate", {"lora.method": "full"}),
        "mix_80_20": ("80% fraud + 20% general instruction pairs", {"train.general_mix": 0.2}),
        "lower_lr": (f"learning rate / 10 ({cfg.train.lr / 10:g})", {"train.lr": cfg.train.lr / 10}),
        "fewer_epochs": (f"{epochs // 2} epoch(s) instead of {epochs}", {"train.epochs": max(1, epochs // 2)}),
        "regularised": ("LoRA dropout 0.3 + weight decay 0.1", {"lora.dropout": 0.3, "train.weight_decay": 0.1}),
    }
    out = {}
    for name, (description, overrides) in variants.items():
        raw = config_to_dict(cfg)
        for key, value in {**common, **overrides, "name": f"{cfg.name}-{name}"}.items():
            set_dotted(raw, key, value)
        out[name] = (description, validate_config(raw, f"forgetting strategy {name}"))
    return out


def forgetting_strategies(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Train each strategy under RUN/forgetting-strategies/<name>/ and tabulate fraud F1 against forgetting.

    A strategy whose forgetting.json exists is not retrained and one killed mid-training continues from its last
    epoch, so a killed comparison resumes where it stopped.
    The base model is measured once: every strategy starts from it and sees the same probe sets.
    """
    from fraudtune.modeling.loading import load_base
    from fraudtune.train import train

    runs_dir = Path(run_dir) / STRATEGY_RUNS_DIR
    rows, before, base = [], None, None
    chosen = {name: spec for name, spec in strategy_configs(cfg).items() if name in cfg.forgetting.strategies}
    for name, (description, scfg) in chosen.items():
        sdir = runs_dir / name
        if not (sdir / paths.FORGETTING_JSON).exists():
            log.info("forgetting strategy %s: %s", name, description)
            train(scfg, sdir, resume=(sdir / paths.CHECKPOINTS_DIR).exists())  # a killed run continues
            if base is None:
                base, _ = load_base(scfg.model)
            pair, run_cfg = load_pair(sdir / paths.ADAPTER_DIR, base=base)
            profile = load_profile(run_cfg.data.profile)
            result, before = evaluate_pair(pair, scfg, load_sets(scfg, sdir), profile, before)
            write_json(sdir / paths.FORGETTING_JSON, result)
            del pair
        if cfg.forgetting.suite == "standard" and not (sdir / paths.FORGETTING_SUITE_JSON).exists():
            from fraudtune.forgetting.suite import run_suite

            run_suite(scfg, sdir, base_dir=runs_dir / SUITE_BASE_DIR)  # the base model's answers: scored once
        rows.append(_strategy_row(name, description, sdir))
    table = {"settings": _strategy_settings(cfg), "strategies": rows}
    write_json(Path(run_dir) / paths.FORGETTING_STRATEGIES_JSON, table)
    markdown = render_strategies(table)
    if any("suite" in row for row in rows):
        chart = Path(run_dir) / STRATEGIES_CHART
        plot_tradeoff(rows, chart)
        markdown += "\n" + render_suite_tradeoff(rows, chart.name)
    write_text_atomic(Path(run_dir) / paths.FORGETTING_STRATEGIES_MD, markdown)
    return {**table, "markdown": markdown}


def _strategy_settings(cfg: RunConfig) -> dict[str, Any]:
    fc = cfg.forgetting
    return {
        "model": cfg.model.name,
        "data_n": fc.strategy_n,
        "epochs": fc.strategy_epochs,
        "lr": cfg.train.lr,
        "lora_r": cfg.lora.r,
        "probe_sets": f"fast (forgetting.fast_n={fc.fast_n})",
        "bootstrap": fc.bootstrap,
    }


def _strategy_row(name: str, description: str, sdir: Path) -> dict[str, Any]:
    result = read_json(sdir / paths.FORGETTING_JSON)
    summary_path = sdir / paths.TRAIN_SUMMARY
    summary = read_json(summary_path) if summary_path.exists() else {}
    row: dict[str, Any] = {
        "name": name,
        "description": description,
        "fraud_f1": result["fraud"]["after"],
        "fraud_f1_ci": result["fraud"]["metrics"]["f1"]["ci"],
        "deltas": {
            c: {"metric": result[c]["metric"], "delta": result[c]["delta"], "ci": result[c]["ci"]}
            for c in CATEGORIES
            if c != "fraud"
        },
        "kl_divergence": result["language"]["kl_divergence"]["mean"],
        "train_seconds": summary.get("train_seconds"),
        "probe_seconds": result["timing_s"]["total"],
    }
    suite_path = sdir / paths.FORGETTING_SUITE_JSON
    if suite_path.exists():
        suite = read_json(suite_path)
        deltas = {name: {"delta": t["delta"], "ci": t["ci"]} for name, t in suite["tasks"].items()}
        row["fraud_accuracy"] = result["fraud"]["metrics"]["accuracy"]["after"]
        row["suite"] = {
            "tasks": deltas,
            "mean_delta": round(sum(d["delta"] for d in deltas.values()) / len(deltas), 2),
            "items": suite["settings"]["n"],
            "perplexity": [suite["language"]["perplexity_base"], suite["language"]["perplexity_fine_tuned"]],
        }
    return row


def render_strategies(table: dict[str, Any]) -> str:
    """forgetting_strategies.md: fraud F1 against each forgetting delta, one row per strategy."""
    cats = [c for c in CATEGORIES if c != "fraud"]
    first = table["strategies"][0]["deltas"] if table["strategies"] else {}
    heads = [f"Δ {c} ({first[c]['metric']})" if c in first else f"Δ {c}" for c in cats]
    s = table["settings"]
    lines = [
        "# Forgetting prevention strategies: fraud F1 vs forgetting",
        "",
        f"Reduced settings (documented): {s['model']}, data.n={s['data_n']}, {s['epochs']} epochs, lr {s['lr']:g}, "
        f"LoRA r={s['lora_r']}; probes on {s['probe_sets']}. Delta = fine-tuned - base; 95% CI in brackets.",
        "",
        "| strategy | fraud F1 | " + " | ".join(heads) + " | KL | train s |",
        "|---|---:|" + "---:|" * len(cats) + "---:|---:|",
    ]
    for row in table["strategies"]:
        cells = [_delta_cell(row["deltas"][c]) for c in cats]
        train_s = f"{row['train_seconds']:.0f}" if row["train_seconds"] is not None else "-"
        lines.append(
            f"| {row['name']}: {row['description']} | {row['fraud_f1']:.3f} | "
            + " | ".join(cells)
            + f" | {row['kl_divergence']:.3g} | {train_s} |"
        )
    return "\n".join(lines + [""])


def _delta_cell(d: dict[str, Any]) -> str:
    return f"{d['delta']:+.3g} [{d['ci'][0]:+.3g}, {d['ci'][1]:+.3g}]"


STRATEGIES_CHART = "forgetting_strategies_suite.png"


def render_suite_tradeoff(rows: list[dict[str, Any]], chart: str) -> str:
    """Each strategy's change on every standard benchmark (points, 95% CI) beside its fraud accuracy."""
    rows = [r for r in rows if "suite" in r]
    tasks = list(rows[0]["suite"]["tasks"])
    lines = [
        "## Retention on the standard benchmarks vs fraud accuracy",
        "",
        f"Change in accuracy points (fine-tuned - base, acc_norm, {rows[0]['suite']['items'] or 'all'} items per "
        "task, 95% paired bootstrap CI); fraud accuracy on the run's test split.",
        "",
        "| strategy | fraud accuracy | " + " | ".join(tasks) + " | mean change | perplexity |",
        "|---|---:|" + "---:|" * len(tasks) + "---:|---:|",
    ]
    for r in rows:
        cells = [f"{d['delta']:+.1f} [{d['ci'][0]:+.1f}, {d['ci'][1]:+.1f}]" for d in r["suite"]["tasks"].values()]
        before, after = r["suite"]["perplexity"]
        lines.append(
            f"| {r['name']} | {r['fraud_accuracy']:.3f} | "
            + " | ".join(cells)
            + f" | {r['suite']['mean_delta']:+.2f} | {before:.1f} -> {after:.1f} |"
        )
    return "\n".join(lines + ["", f"![retention vs fraud accuracy]({chart})", ""])


def plot_tradeoff(rows: list[dict[str, Any]], out: Path) -> None:
    """One point per strategy: mean change on the standard benchmarks (x) against fraud accuracy (y)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if "suite" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.scatter(r["suite"]["mean_delta"], r["fraud_accuracy"])
        ax.annotate(r["name"], (r["suite"]["mean_delta"], r["fraud_accuracy"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)  # fmt: skip
    ax.axvline(0, color="grey", lw=0.8)
    ax.axvline(-1, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("mean change on the standard benchmarks (points)")
    ax.set_ylabel("fraud accuracy (test split)")
    ax.set_title("Forgetting prevention: retention vs fraud accuracy")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
