"""`fraudtune predict`: a run's adapter as a Predictor that scores and explains SPEC transactions.

Scoring and generation are modeling.inference's (the one inference path): label and fraud_probability from the
verdict token (after the greedily written evidence when the model answers evidence first), score, flags and
reasoning from a greedy answer.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraudtune.data.chat import LABELS, parse_answer, parse_evidence, to_messages
from fraudtune.modeling.inference import encode_prompts, generate_all, verdict_scores
from fraudtune.profile import Profile

log = logging.getLogger(__name__)


@dataclass
class Predictor:
    """A base model + adapter ready to score and explain SPEC transactions."""

    model: Any
    tokenizer: Any
    profile: Profile
    max_new_tokens: int = 96
    system_prompt: str | None = None
    answer_order: str = "verdict_first"

    def chats(self, transactions: list[dict[str, Any]]) -> list[list[dict[str, str]]]:
        chats = [to_messages(t, self.profile) for t in transactions]
        if self.system_prompt is not None:
            for chat in chats:
                chat[0]["content"] = self.system_prompt
        return chats

    def score(
        self, transactions: list[dict[str, Any]], batch_size: int = 16, progress: bool = False
    ) -> list[dict[str, Any]]:
        """Label and fraud_probability from the verdict token: one forward pass per transaction, after the
        greedily written flags and score when the model answers evidence first (those are returned too)."""
        began = time.perf_counter()
        prompts = encode_prompts(self.model, self.tokenizer, self.chats(transactions))
        probs, evidence = verdict_scores(
            self.model, self.tokenizer, prompts, batch_size, progress, self.answer_order, self.max_new_tokens
        )
        per_ms = (time.perf_counter() - began) * 1000 / max(1, len(transactions))
        records = [
            {
                "label": LABELS[0] if p >= 0.5 else LABELS[1],
                "fraud_probability": p,
                "prompt_tokens": len(ids),
                "latency_ms": per_ms,
            }
            for p, ids in zip(probs, prompts.ids, strict=True)
        ]
        for record, e in zip(records, evidence or [], strict=False):
            risk_score, signals, error = parse_evidence(e.text, self.profile)
            red_flags = signals if record["label"] == LABELS[0] else []  # SPEC 2: a LEGITIMATE record lists none
            record.update(risk_score=risk_score, red_flags=red_flags, evidence=e.text)
            record.update(completion_tokens=e.completion_tokens + 1)
            if error:
                record["error"] = error
        return records

    def explain(
        self,
        transactions: list[dict[str, Any]],
        batch_size: int = 8,
        temperature: float | None = None,
        seed: int = 0,
        progress: bool = False,
    ) -> list[dict[str, Any]]:
        """Generated answers parsed per SPEC 2; an unparseable answer keeps label None and says why."""
        prompts = encode_prompts(self.model, self.tokenizer, self.chats(transactions))
        answers = generate_all(
            self.model, self.tokenizer, prompts, self.max_new_tokens, batch_size, temperature, seed, progress=progress
        )
        out = []
        for answer in answers:
            parsed = parse_answer(answer.text, self.profile)
            out.append(
                {
                    "label": parsed.label,
                    "risk_score": parsed.risk_score,
                    "red_flags": parsed.red_flags,
                    "reasoning": parsed.reasoning,
                    "raw_text": answer.text,
                    "error": parsed.error,
                    "completion_tokens": answer.completion_tokens,
                    "latency_ms": answer.total_ms,
                }
            )
        return out

    def predict(
        self, transactions: list[dict[str, Any]], explain: bool = True, batch_size: int = 16, progress: bool = False
    ) -> list[dict[str, Any]]:
        """SPEC 2 records: label and probability from scoring; score, flags and reasoning from generation."""
        scores = self.score(transactions, batch_size, progress)
        explanations = self.explain(transactions, max(1, batch_size // 2), progress=progress) if explain else None
        records = []
        for i, (txn, s) in enumerate(zip(transactions, scores, strict=True)):
            rec = {
                "transaction_id": txn["transaction_id"],
                "label": s["label"],
                "fraud_probability": round(s["fraud_probability"], 6),
                "risk_score": s.get("risk_score"),  # evidence first: the flags and score it wrote before the verdict
                "red_flags": s.get("red_flags"),
                "reasoning": None,
                "raw_text": None,
                "latency_ms": round(s["latency_ms"], 2),
            }
            if explanations is not None:
                e = explanations[i]
                rec.update(
                    risk_score=e["risk_score"],
                    red_flags=e["red_flags"],
                    reasoning=e["reasoning"],
                    raw_text=e["raw_text"],
                    latency_ms=round(s["latency_ms"] + e["latency_ms"], 2),
                )
                if e["label"] is None:
                    rec.update(label=None, error=e["error"])
                elif e["error"]:
                    rec["error"] = e["error"]
            records.append(rec)
        return records


def load(adapter_dir: Path, merge: bool = True, profile_path: Path | None = None, precision: str = "fp32") -> Predictor:
    """Predictor from a run's adapter folder (base model named in the run's config).

    precision: fp32 (exact, as `fraudtune evaluate` scores), bf16, or auto (bf16 where the hardware is fast at it).
    """
    from fraudtune.modeling.loading import load_for_inference
    from fraudtune.profile import load_profile

    model, tokenizer, cfg = load_for_inference(Path(adapter_dir), merge=merge, precision=precision)
    profile = load_profile(profile_path or cfg.data.profile)
    return Predictor(
        model=model,
        tokenizer=tokenizer,
        profile=profile,
        max_new_tokens=cfg.eval.max_new_tokens,
        answer_order=cfg.data.answer_order,
    )


def predict_file(
    adapter_dir: Path,
    input_path: Path,
    output_path: Path,
    explain: bool = True,
    batch_size: int = 16,
    precision: str = "fp32",
) -> dict[str, Any]:
    """`fraudtune predict`: valid lines are scored and written; invalid lines are reported and skipped."""
    from fraudtune.data.schema import parse_lines
    from fraudtune.files import check_output_path, write_jsonl

    check_output_path(Path(output_path), [Path(input_path)])  # before the model loads and scores everything
    transactions, errors = parse_lines(Path(input_path))
    if not transactions:  # every line rejected: keep the previous predictions file rather than empty it
        from fraudtune.modeling.loading import check_adapter_folder

        check_adapter_folder(Path(adapter_dir))
        return {
            "output": None,
            "predicted": 0,
            "rejected": len({e.line for e in errors}),
            "errors": [str(e) for e in errors] + [f"{input_path}: no valid transactions; {output_path} not written"],
        }
    predictor = load(adapter_dir, precision=precision)
    records = (
        predictor.predict(transactions, explain=explain, batch_size=batch_size, progress=True) if transactions else []
    )
    write_jsonl(Path(output_path), records)
    rejected_lines = sorted({e.line for e in errors})
    lat = sorted(r["latency_ms"] for r in records)
    return {
        "output": str(output_path),
        "predicted": len(records),
        "rejected": len(rejected_lines),
        "fraud": sum(r["label"] == "FRAUD" for r in records),
        "unparsed": sum(r["label"] is None for r in records),
        "latency_ms_p50": lat[len(lat) // 2] if lat else math.nan,
        "errors": [str(e) for e in errors],
    }
