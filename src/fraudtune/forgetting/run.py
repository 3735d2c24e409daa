"""Catastrophic forgetting: the base model (before) against the fine-tuned model (after) on general skills.

`fraudtune forgetting --run-dir RUN` writes RUN/forgetting.json and RUN/forgetting.md; `fraudtune forgetting
strategies` trains the prevention strategies (strategies.py) and writes RUN/forgetting_strategies.json and .md.
Scoring primitives live in probes.py.

Built-in probe sets, in src/fraudtune/resources/forgetting/, one JSON object per line:

- general_knowledge.jsonl, reasoning.jsonl, fraud_plus_general.jsonl (questions), and any `--benchmark FILE`:
  {"id": "gk-001", "topic": "capitals", "question": "What is the capital of France?",
   "choices": ["Paris", "Lyon", "Marseille", "Nice"], "answer": 0, "aliases": []}
  `answer` is the index of the right choice. Multiple choice: the choice with the highest log-likelihood per
  character wins. Generated answers: right when they name choices[answer] or an alias before any wrong choice
  (for reasoning: the last candidate named, since worked answers end with the result). A benchmark needs only
  question, choices (2 or more strings) and answer; ARC-style {"id", "question", "choices", "answer"} works.
- language_tasks.jsonl: {"id", "kind": "email" | "child" | "summarise" | "formal", "instruction",
  "text" (optional passage to summarise or rewrite), "min_words", "max_words"}
- corpus.jsonl: {"id", "title", "text"}: original general prose (over 5,000 tokens) for perplexity and KL.
- general_instructions.jsonl: {"id", "question", "answer"}: training-only pairs for the 80/20 mixing strategy,
  kept apart from every test question.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from fraudtune import paths
from fraudtune.config import RunConfig
from fraudtune.errors import FraudtuneError
from fraudtune.files import read_jsonl, write_json, write_text_atomic
from fraudtune.forgetting import probes
from fraudtune.modeling.inference import device_of
from fraudtune.profile import Profile, load_profile
from fraudtune.stats import bootstrap_ci, paired_bootstrap

log = logging.getLogger(__name__)

RESOURCES = paths.PACKAGE_ROOT / "resources" / "forgetting"
CATEGORIES = ("general_knowledge", "language", "reasoning", "fraud", "fraud_plus_general")
LANGUAGE_KINDS = ("email", "child", "summarise", "formal")


# ---------------------------------------------------------------- probe sets


def load_questions(path: Path, require_id: bool = True) -> list[dict[str, Any]]:
    """Multiple-choice questions (the format above); a bad line is an error naming file:line: field."""
    path = Path(path)
    if not path.exists():
        raise FraudtuneError(f"{path}: benchmark file not found; pass a JSONL of question, choices, answer")
    items = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if line.strip():
                items.append(_check_question(line, f"{path}:{lineno}", require_id))
    if not items:
        raise FraudtuneError(f"{path}: no questions")
    return items


def _check_question(line: str, where: str, require_id: bool) -> dict[str, Any]:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise FraudtuneError(f"{where}: invalid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise FraudtuneError(f"{where}: expected an object with question, choices, answer")
    if not isinstance(row.get("question"), str) or not row["question"].strip():
        raise FraudtuneError(f"{where}: question: missing or not a non-empty string")
    choices = row.get("choices")
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
        raise FraudtuneError(f"{where}: choices: need a list of at least 2 non-empty strings")
    answer = row.get("answer")
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise FraudtuneError(f"{where}: answer: need the index of the right choice (0..{len(choices) - 1})")
    aliases = row.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise FraudtuneError(f"{where}: aliases: need a list of strings")
    if require_id and not isinstance(row.get("id"), str):
        raise FraudtuneError(f"{where}: id: missing")
    return {**row, "id": str(row.get("id", where)), "aliases": aliases}


def load_resource(name: str) -> list[dict[str, Any]]:
    """One built-in set by file stem (general_knowledge, reasoning, language_tasks, corpus, ...)."""
    path = RESOURCES / f"{name}.jsonl"
    if name in ("general_knowledge", "reasoning", "fraud_plus_general"):
        return load_questions(path)
    return read_jsonl(path)


@dataclass
class ProbeSets:
    """The items one forgetting measurement runs on (subsets when forgetting.fast)."""

    general_knowledge: list[dict[str, Any]]
    benchmark: list[dict[str, Any]]
    language: list[dict[str, Any]]
    corpus: list[dict[str, Any]]
    reasoning: list[dict[str, Any]]
    fraud: list[dict[str, Any]]  # {"transaction", "label"} rows of the run's test split
    fraud_plus_general: list[dict[str, Any]]  # questions, each paired with a test transaction and its label

    def sizes(self) -> dict[str, int]:
        return {name: len(items) for name, items in asdict(self).items()}


def load_sets(cfg: RunConfig, run_dir: Path) -> ProbeSets:
    """Built-in sets, the optional benchmark and the run's test split, subset with cfg.seed when fast."""
    fc = cfg.forgetting

    def fast(share: float) -> int:  # 0 means every item
        return max(1, round(fc.fast_n * share)) if fc.fast else 0

    fraud = _subset(fraud_test_rows(Path(run_dir)), fast(2), cfg.seed)
    questions = _subset(load_resource("fraud_plus_general"), fast(1), cfg.seed)
    paired = [{**q, **fraud[i % len(fraud)]} for i, q in enumerate(questions)]
    benchmark = load_questions(fc.benchmark, require_id=False) if fc.benchmark else []
    return ProbeSets(
        general_knowledge=_subset(load_resource("general_knowledge"), fast(1), cfg.seed),
        benchmark=_subset(benchmark, fast(3) if fc.fast else fc.benchmark_n, cfg.seed),
        language=_subset(load_resource("language_tasks"), fast(1 / 2), cfg.seed),
        corpus=_subset(load_resource("corpus"), fast(1 / 4), cfg.seed),
        reasoning=_subset(load_resource("reasoning"), fast(1), cfg.seed),
        fraud=fraud,
        fraud_plus_general=paired,
    )


def fraud_test_rows(run_dir: Path) -> list[dict[str, Any]]:
    """{"transaction", "label"} of RUN/data/test.meta.jsonl (written beside test.jsonl by the data stage)."""
    meta = paths.meta_file(paths.split_file(run_dir / paths.DATA_DIR, "test"))
    if not meta.exists():
        raise FraudtuneError(f"{meta}: not found; train the run first (fraudtune train --run-dir {run_dir})")
    rows = [{"transaction": r["transaction"], "label": r["label"]} for r in read_jsonl(meta)]
    if not rows:
        raise FraudtuneError(f"{meta}: empty test split")
    return rows


def _subset(items: list[dict[str, Any]], n: int, seed: int) -> list[dict[str, Any]]:
    """n items drawn with the seed, kept in file order (all items when n is 0 or covers the set)."""
    if n <= 0 or n >= len(items):
        return items
    keep = np.random.default_rng(seed).choice(len(items), size=n, replace=False)
    return [items[i] for i in sorted(keep)]


# ---------------------------------------------------------------- one model's measurements


def measure(
    model: Any, tokenizer: Any, sets: ProbeSets, cfg: RunConfig, profile: Profile, answer_order: str = "verdict_first"
) -> dict[str, Any]:
    """Per-item results of one model on every probe set, and the seconds each took (cross-model: cross_measure).

    answer_order: where the model writes its verdict (the fine-tuned model: the run's data.answer_order)."""
    fc, bs = cfg.forgetting, cfg.forgetting.batch_size
    probes_to_run = {
        "general_knowledge": lambda: probes.questions(
            model, tokenizer, sets.general_knowledge, probes.GK_PROMPT, "first", fc.max_new_tokens, bs
        ),
        "benchmark": lambda: probes.multiple_choice(model, tokenizer, sets.benchmark, 2 * bs),
        "reasoning": lambda: probes.questions(
            model, tokenizer, sets.reasoning, probes.REASONING_PROMPT, "last", fc.max_new_tokens, bs
        ),
        "language": lambda: probes.language(model, tokenizer, sets.language, fc.long_max_new_tokens, bs),
        "fraud": lambda: probes.fraud_predictions(
            model, tokenizer, sets.fraud, profile, bs, answer_order, cfg.eval.max_new_tokens
        ),
        "fraud_plus_general": lambda: probes.fraud_plus_general(
            model, tokenizer, sets.fraud_plus_general, profile, fc.long_max_new_tokens, bs
        ),
    }
    out: dict[str, Any] = {"seconds": {}}
    for name, run in probes_to_run.items():
        if name == "benchmark" and not sets.benchmark:
            continue
        began = time.perf_counter()
        out[name] = run()
        out["seconds"][name] = round(time.perf_counter() - began, 1)
        log.info("forgetting:   %s (%d items) %.0f s", name, len(getattr(sets, name)), out["seconds"][name])
    return out


# ---------------------------------------------------------------- before and after together


@dataclass
class ModelPair:
    """The base model (before) and the fine-tuned one (after); a PEFT model is both, via disable_adapter()."""

    tokenizer: Any
    tuned: Any
    base: Any | None = None  # None: `tuned` is a PeftModel and its disabled adapter is the base model

    @contextmanager
    def before(self) -> Iterator[Any]:
        if self.base is not None:
            yield self.base
        else:
            with self.tuned.disable_adapter():
                yield self.tuned

    @contextmanager
    def after(self) -> Iterator[Any]:
        yield self.tuned


def load_pair(adapter_dir: Path, base: Any | None = None) -> tuple[ModelPair, RunConfig]:
    """The run's model unmerged (LoRA: one model serves as both), or a full fine-tune beside its base model."""
    from fraudtune.modeling.loading import load_base, load_for_inference

    tuned, tokenizer, run_cfg = load_for_inference(adapter_dir, merge=False)
    if hasattr(tuned, "disable_adapter"):
        return ModelPair(tokenizer, tuned), run_cfg
    if base is None:
        base, _ = load_base(run_cfg.model)
    return ModelPair(tokenizer, tuned, base.to(device_of(tuned))), run_cfg


def cross_measure(pair: ModelPair, sets: ProbeSets, before: dict, after: dict, cfg: RunConfig) -> dict[str, Any]:
    """Numbers that need both models: corpus perplexity and KL, and both models' outputs scored by the base."""
    from fraudtune.modeling.tokens import prompt_text

    prompts = [prompt_text(probes.user_chat(probes.language_prompt(t)), pair.tokenizer) for t in sets.language]
    with pair.before() as base:
        out_before = probes.output_nll(base, pair.tokenizer, prompts, before["language"]["texts"])
        out_after = probes.output_nll(base, pair.tokenizer, prompts, after["language"]["texts"])
    return {
        "corpus": corpus_divergence(pair, sets.corpus, cfg.forgetting.corpus_max_tokens),
        "output_before": out_before,
        "output_after": out_after,
    }


@torch.inference_mode()
def corpus_divergence(pair: ModelPair, passages: list[dict[str, Any]], window: int) -> np.ndarray:
    """Rows per corpus window: (NLL sum before, NLL sum after, KL(base || tuned) sum, predicted tokens)."""
    rows = []
    for passage in tqdm(passages, desc="corpus KL", leave=False):
        ids = pair.tokenizer(passage["text"], add_special_tokens=False)["input_ids"]
        for start in range(0, len(ids) - 1, window):
            chunk = torch.tensor([ids[start : start + window]])
            if chunk.shape[1] < 2:
                continue
            with pair.before() as model:
                logits_before = model(input_ids=chunk.to(device_of(model))).logits[0, :-1].cpu()
            with pair.after() as model:
                logits_after = model(input_ids=chunk.to(device_of(model))).logits[0, :-1].cpu()
            kl, nll_before, nll_after = probes.kl_and_nll(logits_before, logits_after, chunk[0, 1:])
            rows.append((float(nll_before.sum()), float(nll_after.sum()), float(kl.sum()), chunk.shape[1] - 1))
    return np.array(rows).reshape(-1, 4)


def evaluate_pair(
    pair: ModelPair, cfg: RunConfig, sets: ProbeSets, profile: Profile, before: dict | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The five categories for one before/after pair, and the before measurements (reusable across strategies)."""
    began = time.perf_counter()
    if before is None:
        log.info("forgetting: measuring the base model")
        with pair.before() as model:
            before = measure(model, pair.tokenizer, sets, cfg, profile)
    log.info("forgetting: measuring the fine-tuned model")
    with pair.after() as model:
        after = measure(model, pair.tokenizer, sets, cfg, profile, cfg.data.answer_order)
    began_cross = time.perf_counter()
    cross = cross_measure(pair, sets, before, after, cfg)
    timing = {  # keys avoid before/after: readers take any dict holding both for a metric
        "total": round(time.perf_counter() - began, 1),
        "base_model": before["seconds"],
        "fine_tuned": after["seconds"],
        "cross_model": round(time.perf_counter() - began_cross, 1),
    }
    result = {
        "fast": cfg.forgetting.fast,
        "sizes": sets.sizes(),
        "bootstrap": cfg.forgetting.bootstrap,
        "seed": cfg.seed,
        **compare(before, after, cross, cfg),
        "examples": _examples(sets, before, after),
        "timing_s": timing,
    }
    return result, before


# ---------------------------------------------------------------- before vs after


def _paired(before: Any, after: Any, stat: Any, higher_is_better: bool, cfg: RunConfig) -> dict[str, Any]:
    b, a = stat(np.asarray(before, dtype=float)), stat(np.asarray(after, dtype=float))
    lo, hi = paired_bootstrap(before, after, stat, cfg.forgetting.bootstrap, cfg.seed)
    return {
        "before": round(b, 4),
        "after": round(a, 4),
        "delta": round(a - b, 4),
        "ci": [round(lo, 4), round(hi, 4)],
        "n": len(before),
        "higher_is_better": higher_is_better,
    }


def _category(headline: str, metrics: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"metric": headline, **metrics[headline], "metrics": metrics}


def compare(before: dict, after: dict, cross: dict, cfg: RunConfig) -> dict[str, Any]:
    """before/after/delta/95% CI per metric; each category's headline metric is also at its top level."""
    mean, ppl = probes.mean, probes.perplexity

    def pair(key: str, field: str, stat: Any = mean, higher: bool = True) -> dict[str, Any]:
        return _paired(before[key][field], after[key][field], stat, higher, cfg)

    gk = {
        "mc_accuracy": pair("general_knowledge", "mc"),
        "answer_match": pair("general_knowledge", "match"),
        "verdict_format_share": pair("general_knowledge", "verdict", higher=False),
    }
    if "benchmark" in before:
        gk["benchmark_accuracy"] = _paired(before["benchmark"], after["benchmark"], mean, True, cfg)
    corpus = cross["corpus"]
    language = {
        "corpus_perplexity": _paired(corpus[:, [0, 3]], corpus[:, [1, 3]], ppl, False, cfg),
        "output_perplexity": _paired(cross["output_before"], cross["output_after"], ppl, False, cfg),
        "distinct_2": pair("language", "distinct_2"),
        "length_ok": pair("language", "length_ok"),
        "verdict_format_share": pair("language", "verdict", higher=False),
    }
    reasoning = {
        "answer_match": pair("reasoning", "match"),
        "mc_accuracy": pair("reasoning", "mc"),
        "verdict_format_share": pair("reasoning", "verdict", higher=False),
    }
    correct = {k: (m["fraud"][:, 0] == m["fraud"][:, 1]).astype(float) for k, m in (("b", before), ("a", after))}
    fraud = {
        "f1": _paired(before["fraud"], after["fraud"], probes.f1_fraud, True, cfg),
        "accuracy": _paired(correct["b"], correct["a"], mean, True, cfg),
    }
    combined = {
        "both_correct": pair("fraud_plus_general", "both"),
        "fraud_correct": pair("fraud_plus_general", "fraud"),
        "general_correct": pair("fraud_plus_general", "general"),
    }
    kl_ci = bootstrap_ci(corpus[:, [2, 3]], _ratio, cfg.forgetting.bootstrap, cfg.seed)
    return {
        "general_knowledge": _category("mc_accuracy", gk),
        "language": {
            **_category("corpus_perplexity", language),
            "kl_divergence": {
                "mean": round(_ratio(corpus[:, [2, 3]]), 5),
                "ci": [round(kl_ci[0], 5), round(kl_ci[1], 5)],
                "tokens": int(corpus[:, 3].sum()),
            },
        },
        "reasoning": _category("answer_match", reasoning),
        "fraud": _category("f1", fraud),
        "fraud_plus_general": _category("both_correct", combined),
    }


def _ratio(rows: np.ndarray) -> float:
    """Token-weighted mean: sum of column 0 / sum of column 1."""
    return float(rows[:, 0].sum() / max(rows[:, 1].sum(), 1))


def _examples(sets: ProbeSets, before: dict, after: dict, k: int = 3) -> dict[str, list[dict[str, str]]]:
    """A few answers before and after, so a reader sees what changed and not just by how much."""
    prompts = {
        "general_knowledge": [q["question"] for q in sets.general_knowledge],
        "reasoning": [q["question"] for q in sets.reasoning],
        "language": [t["instruction"] for t in sets.language],
        "fraud_plus_general": [q["question"] for q in sets.fraud_plus_general],
    }
    return {
        key: [
            {"prompt": p, "before": b, "after": a}
            for p, b, a in zip(items[:k], before[key]["texts"][:k], after[key]["texts"][:k], strict=True)
        ]
        for key, items in prompts.items()
    }


# ---------------------------------------------------------------- the stage


def forgetting(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """`fraudtune forgetting`: base vs fine-tuned on the five categories -> RUN/forgetting.json and .md.

    Args:
        cfg: run config; its `forgetting` section sets the probe sizes and the bootstrap.
        run_dir: a trained run (RUN/fraud-lora-adapter and RUN/data/test.jsonl).
    """
    run_dir = Path(run_dir)
    adapter_dir = run_dir / paths.ADAPTER_DIR
    pair, run_cfg = load_pair(adapter_dir)
    sets = load_sets(cfg, run_dir)
    result, _ = evaluate_pair(pair, cfg, sets, load_profile(run_cfg.data.profile))
    result = {"adapter": str(adapter_dir), "base_model": run_cfg.model.name, **result}
    write_json(run_dir / paths.FORGETTING_JSON, result)
    markdown = render_markdown(result)
    write_text_atomic(run_dir / paths.FORGETTING_MD, markdown)
    return {**result, "markdown": markdown}


def render_markdown(result: dict[str, Any]) -> str:
    """forgetting.md: one row per metric, the headline metric of each category first and in bold."""
    lines = [
        "# Catastrophic forgetting: base model (before) vs fine-tuned (after)",
        "",
        f"Probe sets: {'fast subsets' if result['fast'] else 'full sets'} "
        f"({', '.join(f'{k} {v}' for k, v in result['sizes'].items() if v)}). Delta = after - before, with a 95% "
        f"paired bootstrap interval ({result['bootstrap']} resamples, seed {result['seed']}). "
        "Arrows say which direction is better.",
        "",
        "| category | metric | before | after | delta | 95% CI | n |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for category in CATEGORIES:
        block = result[category]
        for name, m in block["metrics"].items():
            label = f"**{name}**" if name == block["metric"] else name
            arrow = "↑" if m["higher_is_better"] else "↓"
            lines.append(
                f"| {category} | {label} {arrow} | {m['before']:.4g} | {m['after']:.4g} | "
                f"{m['delta']:+.4g} | [{m['ci'][0]:+.4g}, {m['ci'][1]:+.4g}] | {m['n']} |"
            )
    kl = result["language"]["kl_divergence"]
    lines += [
        "",
        f"KL(base || fine-tuned) of next-token distributions, mean over {kl['tokens']} corpus tokens: "
        f"{kl['mean']:.4g} nats (95% CI [{kl['ci'][0]:.4g}, {kl['ci'][1]:.4g}]).",
        "",
    ]
    return "\n".join(lines)
