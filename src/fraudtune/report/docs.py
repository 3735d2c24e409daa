"""`fraudtune report --docs`: regenerate the guides under docs/ from a run's results; nothing is typed by hand.

Each guide's prose is a template of the same name in docs/templates/ (in the checkout, not in the installed package);
the modules here fill its placeholders with the run's tables and figures.

Own guides: FINETUNING_GUIDE.md (here), LORA_EXPLAINED.md (docs_lora), WEEK22_SUMMARY.md (docs_summary). The
cost-benefit, tuning and dataset guides are rendered by their owners' modules from the same run.
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from typing import Any

from fraudtune import paths
from fraudtune.config import RunConfig
from fraudtune.files import write_text_atomic
from fraudtune.guides import fill_template
from fraudtune.report import fmt
from fraudtune.report.charts import COMPARISON_PNG, Charts
from fraudtune.report.docs_claims import claims_table, seed_claims
from fraudtune.report.docs_lora import render_lora_doc
from fraudtune.report.docs_summary import render_summary, results_table
from fraudtune.report.runfiles import RunResults, roi_primary

FINETUNING_GUIDE = "FINETUNING_GUIDE.md"  # each guide and its template in docs/templates/ share a name
LORA_EXPLAINED = "LORA_EXPLAINED.md"
WEEK22_SUMMARY = "WEEK22_SUMMARY.md"
COST_BENEFIT = "COST_BENEFIT_ANALYSIS.md"
TUNING_GUIDE = "HYPERPARAMETER_TUNING.md"
RESULTS_DIR = "results"
DATASET_GUIDE = "DATASET_PREPARATION.md"
FIGURES_DIR = "figures"


def write_docs(cfg: RunConfig, run: RunResults, charts: Charts, docs_dir: Path) -> list[Path]:
    """Write every guide into `docs_dir` (charts copied to docs_dir/figures); return the files written."""
    docs_dir = Path(docs_dir)
    written = copy_figures(charts, docs_dir / FIGURES_DIR)
    ranks = sorted({*cfg.tune.ranks, cfg.lora.r})
    guides = {
        FINETUNING_GUIDE: render_finetuning_guide(run),
        LORA_EXPLAINED: render_lora_doc(run, ranks),
        WEEK22_SUMMARY: render_summary(run),
    }
    for name, text in guides.items():
        write_text_atomic(docs_dir / name, text)
        written.append(docs_dir / name)
    written.append(write_cost_benefit(cfg, run, docs_dir / COST_BENEFIT))
    written += write_colleague_docs(cfg, run, docs_dir)
    return written


def copy_figures(charts: Charts, figures_dir: Path) -> list[Path]:
    figures_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for name, src in charts.written.items():
        tmp = figures_dir / f".{name}.tmp"
        shutil.copyfile(src, tmp)
        tmp.replace(figures_dir / name)
        out.append(figures_dir / name)
    return out


def write_cost_benefit(cfg: RunConfig, run: RunResults, out_path: Path) -> Path:
    """From the run's roi.json; without one, the seed preset (computed in memory: nothing is written to the run)."""
    from fraudtune.roi import roi, write_cost_benefit_doc

    result = run.roi
    if result is None:
        seed_cfg = cfg.model_copy(update={"roi": cfg.roi.model_copy(update={"doc_path": None})})
        result = roi(seed_cfg, None, preset="seed")
    return write_cost_benefit_doc(result, out_path)


def write_colleague_docs(cfg: RunConfig, run: RunResults, docs_dir: Path) -> list[Path]:
    """The dataset and tuning guides, when their renderers are installed."""
    out = []
    dataset = _optional("fraudtune.report.docs_dataset", "write_dataset_doc")
    if dataset is not None:
        from fraudtune.profile import load_profile

        profile_path = ((run.config or {}).get("data") or {}).get("profile") or cfg.data.profile
        out.append(Path(dataset(load_profile(paths.resolve_resource(Path(profile_path))), docs_dir / DATASET_GUIDE)))
    tuning = _optional("fraudtune.report.docs_tuning", "write_tuning_doc")
    if tuning is not None:  # training_results.json and advanced_techniques.json, either may be absent
        found = [
            tuning_source(run.run_dir, docs_dir, name) for name in (paths.TRAINING_RESULTS_JSON, paths.ADVANCED_JSON)
        ]
        out.append(Path(tuning(*found, docs_dir / TUNING_GUIDE)))
    return out


def tuning_source(run_dir: Path, docs_dir: Path, name: str) -> Path:
    """RUN/<name> when the run has it (a study run into the run directory), else the committed docs/results/<name>
    (a study is a run of its own: `fraudtune tune --run-dir runs/tune`, results copied to docs/results/)."""
    own = Path(run_dir) / name
    return own if own.exists() else Path(docs_dir) / RESULTS_DIR / name


def _optional(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def render_finetuning_guide(run: RunResults) -> str:
    """docs/templates/FINETUNING_GUIDE.md filled with the run's decision, pipeline, claims and results."""
    return fill_template(
        FINETUNING_GUIDE,
        **fmt.provenance(run.run_dir, run.meta),
        decision=fmt.block(_decision(run)),
        pipeline=fmt.block(_pipeline(run)),
        claims=fmt.block(claims_table(seed_claims(run))),
        results=fmt.block(results_table(run)),
        run_name=run.run_dir.name,
        chart=f"{FIGURES_DIR}/{COMPARISON_PNG}",
    )


def _decision(run: RunResults) -> list[str]:
    primary = roi_primary(run.roi)
    if primary is None:
        return [f"Decision for this run: not measured yet: run `{run.command('roi')}`."]
    preset, a = primary
    d = a["decision"]
    current = d["current"]
    lines = [
        f"Decision for this run ({preset} figures, `{run.roi['command']}`): **{current['verdict']}** at "
        f"{fmt.num(current['requests_per_day'])} requests/day and {fmt.num(current['rule_changes_per_year'])} rule "
        f"changes/year: {current['reason']} (first-year net {fmt.usd(current['net_first_year'])}). "
        f"Break-even: {fmt.num(a['break_even'].get('days'))} days.",
        "",
        "The same decision over volume and rule-change frequency (first-year net value of fine-tuning):",
        "",
    ]
    changes = [c["rule_changes_per_year"] for c in d["grid"][0]] if d["grid"] else []
    rows = [
        [fmt.num(row[0]["requests_per_day"]), *(f"{c['verdict']} ({fmt.usd(c['net_first_year'])})" for c in row)]
        for row in d["grid"]
    ]
    return [*lines, *fmt.md_table(["requests/day", *(f"{fmt.num(c)} changes/yr" for c in changes)], rows)]


PIPELINE = (  # stage, command verb, what it writes
    ("data", "data generate --out RUN/data", "data/ train/val/test chat JSONL + metadata, data_card.json"),
    ("train", "train", "fraud-lora-adapter/, checkpoints/, metrics.jsonl, train_summary.json"),
    ("evaluate", "evaluate", "eval.json, predictions/<model>.jsonl"),
    ("forgetting", "forgetting", "forgetting.json"),
    ("tune", "tune", "training_results.json"),
    ("roi", "roi", "roi.json"),
    ("report", "report --docs", "report/*.png, report/dashboard.html, docs/*.md"),
)


def _pipeline(run: RunResults) -> list[str]:
    rows = []
    for stage, verb, writes in PIPELINE:
        command = f"fraudtune {verb}".replace("RUN", str(run.run_dir))
        if stage != "data":
            command += f" --run-dir {run.run_dir}"
        rows.append([stage, f"`{command}`", writes, _stage_result(run, stage)])
    return fmt.md_table(["stage", "command", "writes", "this run"], rows, right_from=9)


def _stage_result(run: RunResults, stage: str) -> str:
    s, card = run.train_summary or {}, run.data_card or {}
    tuned = ((run.eval or {}).get("models") or {}).get("fine_tuned") or {}
    results = {
        "data": f"{fmt.num(card.get('n'))} examples ({fmt.splits(card.get('splits'))})" if card else None,
        "train": f"{fmt.num(s.get('steps'))} steps in {fmt.num(s.get('train_seconds'))} s on {s.get('device')}"
        if s
        else None,
        "evaluate": f"fine-tuned F1 {fmt.with_ci(tuned.get('f1'), (tuned.get('ci') or {}).get('f1'))}"
        if tuned
        else None,
        "forgetting": "see the claims table" if run.forgetting else None,
        "tune": f"{len(run.tuning)} trials" if run.tuning is not None else None,
        "roi": (roi_primary(run.roi) or (None, {}))[1].get("decision", {}).get("current", {}).get("verdict"),
        "report": "this guide",
    }
    return results[stage] or "not run yet"
