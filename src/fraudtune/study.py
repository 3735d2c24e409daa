"""`fraudtune study`: which recipe teaches the model the issuer's own knowledge?

Every setting of `study.settings` (overrides of the study's config) is one training run in RUN/<name>/; all of
them, and gradient boosting trained on each setting's same rows, are judged on one fresh test set (SPEC 4 shares)
per slice: clear fraud, clear legitimate, borderline, near-miss negatives, documented rules, historical
patterns and rule-only cases. Rerunning resumes: finished settings are read back, a killed one continues from
its last checkpoint (train.save_steps puts some within an epoch), and a killed scoring pass from its last chunk.
Writes RUN/knowledge_study.json, .md and .png.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from fraudtune import paths
from fraudtune.config import RunConfig, config_to_dict, with_overrides
from fraudtune.data.evidence import evidence_steps
from fraudtune.errors import FraudtuneError
from fraudtune.evaluate import metrics
from fraudtune.evaluate.baselines import GradientBoosting, rules_engine
from fraudtune.evaluate.summary import slices
from fraudtune.evaluate.testset import TestSet, read_meta, without_overlap
from fraudtune.files import append_jsonl, read_json, read_jsonl_lenient, write_json, write_jsonl, write_text_atomic
from fraudtune.manifest import sha256
from fraudtune.profile import Profile, load_profile
from fraudtune.runmeta import git_sha

log = logging.getLogger(__name__)
SLICES = (
    "clear_fraud",
    "clear_legitimate",
    "borderline",
    "near_miss",
    "documented",
    "historical",
    "rule_only",
)


def study(
    cfg: RunConfig,
    run_dir: Path,
    docs_dir: Path | None = None,
    finished_only: bool = False,
    only: list[str] | None = None,
    prior: Path | None = None,
) -> dict[str, Any]:
    """Train and judge every setting of cfg.study, then write the study's table and chart.

    Args:
        cfg: the study's config: its `study` section lists the settings, the rest is what they override.
        run_dir: the study folder; each setting trains in RUN/<name>/. The frozen layers' output (lora.top_layers)
            is kept in RUN/frozen_store/ unless a setting names another train.frozen_store: a setting on the same
            rows, model and layers as an earlier one reads it back instead of computing it (about 0.6 MB per
            training example; delete the folder when no setting needs it).
        docs_dir: if given, the json/md/png results are copied there too (docs/results).
        finished_only: train nothing; report the settings judged so far and list the others as pending.
        only: train these settings (in the config's order) and no others; the others are reported if judged.
        prior: an earlier knowledge_study.json (e.g. docs/results/): a setting with no result in run_dir is taken
            from it when its overrides are the config's, instead of being trained again. A study folder need not
            outlive the machine it ran on; the table then still holds every setting judged, each with the commit
            and CPU it was trained on (and marked * if judged on another test draw).
    """
    run_dir = Path(run_dir)
    if not cfg.study.settings:
        raise FraudtuneError("study.settings: no settings; give name: [key=value, ...] pairs in the config")
    unknown = sorted(set(only or []) - set(cfg.study.settings))
    if unknown:
        raise FraudtuneError(f"study --only: no setting {unknown}; the config has {list(cfg.study.settings)}")
    profile = load_profile(cfg.data.profile)
    test = study_test_set(cfg, run_dir)
    earlier = prior_results(prior, cfg.study.settings) if prior is not None else {}
    results, pending = {}, {}
    for i, (name, overrides) in enumerate(cfg.study.settings.items(), 1):
        skip = finished_only or (only is not None and name not in only)
        if not (run_dir / name / paths.STUDY_RESULT).exists():
            if name in earlier:
                results[name] = earlier[name]
                continue
            if skip:
                pending[name] = overrides
                continue
        log.info("study: setting %d/%d: %s (%s)", i, len(cfg.study.settings), name, " ".join(overrides) or "base")
        results[name] = run_setting(cfg, run_dir, name, overrides, test, profile)
        _write_summary(cfg, run_dir, test, profile, results, pending)  # readable while the next one trains
    summary = _write_summary(cfg, run_dir, test, profile, results, pending)
    if docs_dir is not None:
        docs_dir.mkdir(parents=True, exist_ok=True)
        for name in (paths.STUDY_JSON, paths.STUDY_MD, paths.STUDY_CHART):
            shutil.copyfile(run_dir / name, docs_dir / name)
    return summary


def prior_results(prior: Path, settings: dict[str, list[str]]) -> dict[str, Any]:
    """The results of an earlier study summary whose setting is still in `settings` with the same overrides (a
    setting whose overrides changed is another recipe: it is trained again), each marked with where it came
    from."""
    if not Path(prior).is_file():
        raise FraudtuneError(f"study --prior: {prior}: no such file (an earlier knowledge_study.json)")
    try:
        stored = read_json(prior).get("settings") or {}
    except (ValueError, AttributeError) as exc:
        raise FraudtuneError(f"study --prior: {prior}: not a knowledge_study.json ({exc})") from exc
    kept = {}
    for name, result in stored.items():
        if name in settings and list(result.get("overrides", [])) == list(settings[name]):
            kept[name] = {**result, "carried_from": str(prior)}
        elif name in settings:
            log.warning("study --prior: %s: its overrides changed since %s; it will be trained again", name, prior)
    return kept


def _write_summary(
    cfg: RunConfig,
    run_dir: Path,
    test: TestSet,
    profile: Profile,
    results: dict[str, Any],
    pending: dict[str, list[str]],
) -> dict[str, Any]:
    """RUN/knowledge_study.json, .md and .png from the settings judged so far."""
    engine = judge(rules_engine(test.transactions, profile), test.rows, profile)
    engine.pop("correct")
    summary = {
        "test": {**test.info, "n": len(test.rows)},
        "decision_threshold": profile.decision_threshold,
        "rules_engine": engine,
        "settings": results,
        "pending": pending,
        "config": config_to_dict(cfg),
    }
    write_json(run_dir / paths.STUDY_JSON, summary)
    write_text_atomic(run_dir / paths.STUDY_MD, render_markdown(summary))
    if results:
        write_chart(summary, run_dir / paths.STUDY_CHART)
    return summary


def study_test_set(cfg: RunConfig, run_dir: Path) -> TestSet:
    """The one fresh test set of the study (RUN/study_test), drawn once with eval.test_seed and reused."""
    from fraudtune.data.generate import generate

    seeds = {with_overrides(cfg, o, f"study.settings.{k}").data.seed for k, o in cfg.study.settings.items()}
    if cfg.eval.test_seed in seeds:
        raise FraudtuneError(f"eval.test_seed ({cfg.eval.test_seed}) is a setting's data.seed; choose another")
    out = run_dir / paths.STUDY_TEST_DIR
    card = out / paths.DATA_CARD
    wanted = {"n_requested": cfg.study.test_n, "seed": cfg.eval.test_seed, "profile": str(cfg.data.profile)}
    if not card.exists() or {k: read_json(card).get(k) for k in wanted} != wanted:
        generate(
            out, cfg.data.profile, cfg.study.test_n, cfg.eval.test_seed, cfg.data.model_copy(update={"rule_min": 0})
        )
    info = {"source": str(out / paths.DATASET), "seed": cfg.eval.test_seed, "sha256": sha256(out / paths.DATASET)}
    return TestSet(read_meta(out / paths.DATASET), info)


def run_setting(
    cfg: RunConfig, run_dir: Path, name: str, overrides: list[str], test: TestSet, profile: Profile
) -> dict[str, Any]:
    """Train one setting (or read it back) and judge it and gradient boosting on the same training rows."""
    from fraudtune.predict import load
    from fraudtune.train import last_checkpoint, train

    setting_dir = run_dir / name
    done = setting_dir / paths.STUDY_RESULT
    if done.exists():
        result = read_json(done)
        if "train_fit" not in result and (setting_dir / paths.ADAPTER_DIR).is_dir():  # judged before it existed
            result["train_fit"] = train_fit(setting_dir, cfg.study.fit_n, cfg.seed, profile)
            write_json(done, result)
        return result
    scfg = with_overrides(cfg, overrides, f"study.settings.{name}")
    if scfg.train.frozen_store is None:
        store = str(run_dir / paths.STUDY_FROZEN_STORE)
        scfg = scfg.model_copy(update={"train": scfg.train.model_copy(update={"frozen_store": store})})
    if not ((setting_dir / paths.TRAIN_SUMMARY).exists() and (setting_dir / paths.ADAPTER_DIR).is_dir()):
        train(scfg, setting_dir, resume=last_checkpoint(setting_dir) is not None)
    summary = read_json(setting_dir / paths.TRAIN_SUMMARY)
    data_dir = setting_dir / paths.DATA_DIR
    train_metas = read_meta(paths.split_file(data_dir, "train"))
    seen = [m["transaction"] for m in train_metas + read_meta(paths.split_file(data_dir, "val"))]
    rows, dropped = without_overlap(test.rows, seen)
    transactions = [r["transaction"] for r in rows]
    predictor = load(setting_dir / paths.ADAPTER_DIR)
    partial = setting_dir / paths.STUDY_SCORING
    scored, scoring_seconds = score_resumable(
        predictor, setting_dir / paths.ADAPTER_DIR, rows, scfg.train.eval_batch_size, partial
    )
    write_predictions(setting_dir / paths.STUDY_PREDICTIONS, scored, rows)
    gb = GradientBoosting(scfg.seed).fit([m["transaction"] for m in train_metas], [m["label"] for m in train_metas])
    tuned, boosted = judge(scored, rows, profile), judge(gb.predict(transactions), rows, profile)
    meta = read_json(setting_dir / paths.RUN_META)
    result = {
        "name": name,
        "overrides": overrides,
        "train_commit": meta.get("git_sha"),
        "scoring_commit": git_sha(),
        "n_train": len(train_metas),
        "train_seconds": summary.get("train_seconds_total", summary["train_seconds"]),
        "train_cpu": meta.get("host", {}).get("cpu"),
        "epochs_run": summary["epochs_run"],
        "trainable_params": summary["trainable_params"],
        "best_checkpoint": summary["best_checkpoint"],
        "scoring_seconds": round(scoring_seconds, 2),
        "scoring_ms_per_transaction": round(1000 * scoring_seconds / max(1, len(rows)), 2),
        "test_n": len(rows),
        "test_sha256": test.info["sha256"],
        "overlap_dropped": dropped,
        "fine_tuned": tuned,
        "gradient_boosting": boosted,
        "mcnemar_vs_gradient_boosting": metrics.mcnemar_exact(
            np.array(tuned.pop("correct")), np.array(boosted.pop("correct"))
        ),
    }
    result["evidence"] = evidence_steps(scored, rows, profile)
    result["train_fit"] = train_fit(setting_dir, cfg.study.fit_n, cfg.seed, profile, predictor)
    write_json(done, result)
    partial.unlink(missing_ok=True)
    return result


# test transactions scored between two appends to the partial answers file: whole batches of the 64 rows that
# evidence-first answers are written with (modeling.inference.verdict_scores), so a chunk never cuts one short
SCORING_CHUNK = 256


def score_resumable(
    predictor: Any, adapter_dir: Path, rows: list[dict[str, Any]], batch_size: int, partial: Path
) -> tuple[list[dict[str, Any]], float]:
    """The predictor's answers for the test rows and the seconds they took, in chunks appended to `partial`: a
    killed scoring pass continues after the last chunk written (answers of another adapter are not reused)."""
    adapter = adapter_digest(adapter_dir)
    done: dict[str, dict[str, Any]] = {}
    seconds = 0.0
    for line in read_jsonl_lenient(partial):
        if line.get("adapter") == adapter:
            done[line["transaction_id"]] = line["record"]
            seconds += line["seconds"]
    if done:
        log.info("scoring: %d of %d test answers read back from %s", len(done), len(rows), partial)
    todo = [r for r in rows if r["transaction_id"] not in done]
    for start in range(0, len(todo), SCORING_CHUNK):
        chunk = todo[start : start + SCORING_CHUNK]
        began = time.perf_counter()
        records = predictor.score([r["transaction"] for r in chunk], batch_size, progress=True)
        cost = time.perf_counter() - began
        seconds += cost
        for row, record in zip(chunk, records, strict=True):
            done[row["transaction_id"]] = record
            line = {"adapter": adapter, "transaction_id": row["transaction_id"], "seconds": cost / len(chunk)}
            append_jsonl(partial, {**line, "record": record})
        log.info("scoring: %d of %d test transactions", len(rows) - len(todo) + start + len(chunk), len(rows))
    return [done[r["transaction_id"]] for r in rows], seconds


def adapter_digest(adapter_dir: Path) -> str:
    """The adapter's weights' sha256 (manifest.sha256 per file): which model a stored answer came from."""
    return ",".join(sha256(path) for path in sorted(Path(adapter_dir).glob("*.safetensors")))


def train_fit(setting_dir: Path, n: int, seed: int, profile: Profile, predictor: Any = None) -> dict[str, Any] | None:
    """The fine-tuned model judged on (up to n of) its own training rows, every company-specific row among them:
    a rule it misses here it did not fit (capacity, steps, weighting); one it fits here but misses on the test
    set it did not generalise (data)."""
    import random

    from fraudtune.predict import load

    if n <= 0:
        return None
    metas = read_meta(paths.split_file(setting_dir / paths.DATA_DIR, "train"))
    company = [m for m in metas if m.get("category") == "company_specific"]
    rest = [m for m in metas if m.get("category") != "company_specific"]
    random.Random(seed).shuffle(rest)
    rows = company[:n] + rest[: max(0, n - len(company))]
    predictor = predictor or load(setting_dir / paths.ADAPTER_DIR)
    scored = predictor.score([r["transaction"] for r in rows], 16)
    judged = judge(scored, rows, profile)
    judged.pop("correct")
    return {"n": len(rows), "company_specific_n": min(len(company), n), **judged}


def write_predictions(path: Path, records: list[dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    """One line per test transaction: the model's label, probability and answer text beside the row's truth and
    slice facts, so that any later cut (by score, by rule, by near miss, by answer step) needs no second scoring
    pass."""
    keep = ("category", "generic_score", "risk_score", "red_flags", "deciding_rule", "near_miss")
    lines = [
        {
            "transaction_id": row["transaction_id"],
            "label": rec["label"],
            "fraud_probability": rec["fraud_probability"],
            "truth": row["label"],
            **{k: row.get(k) for k in keep},
            "evidence": rec.get("evidence") or rec.get("raw_text"),
        }
        for rec, row in zip(records, rows, strict=True)
    ]
    write_jsonl(path, lines)


def by_generic_score(correct: np.ndarray, rows: list[dict[str, Any]], category: str) -> dict[str, Any]:
    """Accuracy per generic score within one category: where, around the threshold, the decision goes wrong."""
    cells: dict[int, list[bool]] = {}
    for ok, row in zip(correct, rows, strict=True):
        if row.get("category") == category and row.get("generic_score") is not None:
            cells.setdefault(int(row["generic_score"]), []).append(bool(ok))
    return {str(k): {"accuracy": float(np.mean(v)), "n": len(v)} for k, v in sorted(cells.items())}


def judge(records: list[dict[str, Any]], rows: list[dict[str, Any]], profile: Profile) -> dict[str, Any]:
    """Accuracy, F1, ROC AUC and the accuracy per slice (with the rule-only slice per rule)."""
    y = np.array([r["label"] == "FRAUD" for r in rows])
    pred = np.array([r["label"] == "FRAUD" for r in records])
    prob = np.array([float(r["fraud_probability"]) for r in records])
    found = metrics.classification(y, pred, prob)
    cut = slices(pred == y, rows, profile.decision_threshold)
    company = cut["company_knowledge"]
    per_slice = {
        **{c: cut["by_category"].get(c, {"accuracy": None, "n": 0}) for c in SLICES[:3]},
        "near_miss": cut["near_miss"],
        "documented": company["documented"],
        "historical": company["historical"],
        "rule_only": {k: v for k, v in cut["rule_only"].items() if k != "by_rule"},
    }
    return {
        "accuracy": found["accuracy"],
        "f1": found["f1"],
        "roc_auc": found["roc_auc"],
        "slices": per_slice,
        "rule_only_by_rule": cut["rule_only"]["by_rule"],
        "borderline_by_score": by_generic_score(pred == y, rows, "borderline"),
        "correct": (pred == y).tolist(),
    }


def _cpu_note(cpu: dict[str, Any] | None) -> str:
    """' (trained on AMD EPYC, 2 cores, avx2)': train minutes compare only on the same kind of CPU."""
    if not cpu:
        return ""
    features = ", ".join(cpu.get("features") or []) or "no AVX2"
    return f" (trained on {cpu.get('model') or 'a CPU'}, {cpu.get('cores')} cores, {features})"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def render_markdown(summary: dict[str, Any]) -> str:
    """The study's table: per setting, training size and time, accuracy per slice, and gradient boosting."""
    test = summary["test"]
    head = [
        "setting",
        "train rows",
        "train min",
        "accuracy",
        "F1",
        *SLICES,
        "rule-only on train",
        "GB accuracy",
        "GB rule-only",
        "p vs GB",
    ]
    lines = [
        "# Knowledge study",
        "",
        f"Every setting judged on the same {test['n']} fresh transactions ({test['source']}, seed {test['seed']}; "
        "SPEC 4 shares). Accuracy in %; GB = gradient boosting trained on the setting's own training rows; "
        "p = exact McNemar test of the fine-tuned model against it. Test set sha256 "
        f"{test.get('sha256', 'not recorded')[:12]}; a setting judged on another draw (or before it was recorded) is "
        "marked *. Training minutes depend on the CPU each setting trained on (listed under Settings).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for name, r in summary["settings"].items():
        ft, gb = r["fine_tuned"], r["gradient_boosting"]
        other_draw = r.get("test_sha256") != test.get("sha256")
        cells = [
            name + ("*" if other_draw else ""),
            str(r["n_train"]),
            f"{r['train_seconds'] / 60:.1f}",
            _pct(ft["accuracy"]),
            _pct(ft["f1"]),
            *(_pct(ft["slices"][s]["accuracy"]) for s in SLICES),
            _pct((r.get("train_fit") or {}).get("slices", {}).get("rule_only", {}).get("accuracy")),
            _pct(gb["accuracy"]),
            _pct(gb["slices"]["rule_only"]["accuracy"]),
            f"{r['mcnemar_vs_gradient_boosting']['p']:.3g}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    first = next(iter(summary["settings"].values()), None)
    sizes = ", ".join(f"{s} n={first['fine_tuned']['slices'][s]['n']}" for s in SLICES) if first else "–"
    engine = summary["rules_engine"]
    lines += [
        "",
        f"Slice sizes: {sizes}. The written-rules engine (documented rules only): accuracy "
        f"{_pct(engine['accuracy'])}, rule-only {_pct(engine['slices']['rule_only']['accuracy'])}.",
        "",
        "## Settings",
        "",
        *(
            f"- `{name}`: `{' '.join(r['overrides']) or '(the base config)'}`{_cpu_note(r.get('train_cpu'))}"
            + (f"; trained at {r['train_commit'][:7]}, read from {r['carried_from']}" if r.get("carried_from") else "")
            for name, r in summary["settings"].items()
        ),
        *(
            f"- `{name}` (not trained yet): `{' '.join(o) or '(the base config)'}`"
            for name, o in summary["pending"].items()
        ),
        "",
        "## Rule-only accuracy per rule (fine-tuned)",
        "",
    ]
    codes = sorted({c for r in summary["settings"].values() for c in r["fine_tuned"]["rule_only_by_rule"]})
    lines += ["| setting | " + " | ".join(codes) + " |", "|" + "---|" * (len(codes) + 1)]
    for name, r in summary["settings"].items():
        by_rule = r["fine_tuned"]["rule_only_by_rule"]
        lines.append(f"| {name} | " + " | ".join(_pct(by_rule.get(c, {}).get("accuracy")) for c in codes) + " |")
    scored = {n: r for n, r in summary["settings"].items() if "borderline_by_score" in r["fine_tuned"]}
    if scored:
        scores = sorted({int(k) for r in scored.values() for k in r["fine_tuned"]["borderline_by_score"]})
        lines += [
            "",
            f"## Borderline accuracy per generic score (FRAUD iff >= {summary['decision_threshold']})",
            "",
            "| setting | " + " | ".join(str(k) for k in scores) + " |",
            "|" + "---|" * (len(scores) + 1),
        ]
        for name, r in scored.items():
            cells = r["fine_tuned"]["borderline_by_score"]
            lines.append(
                f"| {name} | "
                + " | ".join(
                    f"{_pct(cells[str(k)]['accuracy'])} (n={cells[str(k)]['n']})" if str(k) in cells else "–"
                    for k in scores
                )
                + " |"
            )
    lines += _evidence_lines(summary)
    return "\n".join(lines) + "\n"


def _evidence_lines(summary: dict[str, Any]) -> list[str]:
    """Evidence-first settings: how often each step of the answer agrees with the oracle, the step where each wrong
    verdict first went wrong, and each flag's recall and precision."""
    traced = {n: r["evidence"] for n, r in summary["settings"].items() if r.get("evidence")}
    if not traced:
        return []
    lines = [
        "",
        "## Evidence-first answers: where a wrong verdict first went wrong",
        "",
        "Flags exact: the signals listed are exactly those that fire. Flags F1: micro F1 of the listed signals "
        "against those that fire, every row and flag counted. Score follows: the score written is what the "
        "listed flags add up to (SPEC 3). Verdict follows: the verdict is what flags and score decide. A wrong verdict "
        "is put down to its first wrong step: the flags, else the sum, else the verdict itself "
        "(fraudtune.data.evidence).",
        "",
        "| setting | answers | no score line | flags exact | flags F1 | score follows flags | score exact "
        "| verdict follows | wrong verdicts | first wrong: flags | score | verdict |",
        "|" + "---|" * 12,
    ]
    for name, e in traced.items():
        first = e["first_wrong_step"]
        lines.append(
            f"| {name} | {e['n']} | {e.get('unparsed', 0)} | {_pct(e['flags_exact'])} | {_pct(e.get('flags_f1'))} | "
            f"{_pct(e['score_follows_flags'])} | {_pct(e['score_exact'])} | {_pct(e['verdict_follows_evidence'])} | "
            f"{e['wrong_verdicts']} | {first['flags']} | {first['score']} | {first['verdict']} |"
        )
    codes = sorted({c for e in traced.values() for c, v in e["per_code"].items() if v["n"]})
    lines += [
        "",
        "Per flag, recall / precision in % (n = test rows on which it fires):",
        "",
        "| setting | " + " | ".join(codes) + " |",
        "|" + "---|" * (len(codes) + 1),
    ]
    for name, e in traced.items():
        cells = []
        for code in codes:
            v = e["per_code"].get(code, {"recall": None, "precision": None, "n": 0})
            cells.append(f"{_pct(v['recall'])} / {_pct(v['precision'])} (n={v['n']})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def write_chart(summary: dict[str, Any], path: Path) -> None:
    """Accuracy and rule-only accuracy against training rows: the fine-tuned settings and gradient boosting."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    settings = summary["settings"]
    for ax, key, title in zip(axes, ("accuracy", "rule_only"), ("Accuracy", "Rule-only accuracy"), strict=True):
        for model, marker, label in (
            ("fine_tuned", "o", "fine-tuned"),
            ("gradient_boosting", "x", "gradient boosting"),
        ):
            xs = [r["n_train"] for r in settings.values()]
            ys = [_value(r[model], key) for r in settings.values()]
            ax.scatter(xs, ys, marker=marker, label=label)
            if model == "fine_tuned":
                for name, x, y in zip(settings, xs, ys, strict=True):
                    ax.annotate(name, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set(title=title, xlabel="training examples", ylabel="share correct", ylim=(0, 1.02))
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def _value(judged: dict[str, Any], key: str) -> float | None:
    return judged["accuracy"] if key == "accuracy" else judged["slices"][key]["accuracy"]
