"""Scoring (the probability of the FRAUD verdict token) and explanations (greedy generation).

Verdict first, scoring is one forward pass per transaction. Evidence first (data.answer_order), the model first
writes its red flags and risk score greedily, and the verdict token's probability is read right after them.
"""

from __future__ import annotations

import copy
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList

from fraudtune.data.chat import LABELS, parse_answer, parse_evidence, to_messages
from fraudtune.errors import FraudtuneError
from fraudtune.kvcache import growing_cache
from fraudtune.profile import Profile
from fraudtune.tokens import prompt_text

log = logging.getLogger(__name__)
# evidence first: the answer has stated its flags and score once this line is written; the verdict comes next
EVIDENCE_END = re.compile(r"Risk\s*Score\s*:\s*\d+[^\S\n]*\n")


def label_token_ids(tokenizer: Any) -> tuple[int, int]:
    """First token of 'FRAUD' and of 'LEGITIMATE' as the answer's first word; they must differ."""
    fraud = tokenizer("FRAUD", add_special_tokens=False)["input_ids"][0]
    legit = tokenizer("LEGITIMATE", add_special_tokens=False)["input_ids"][0]
    if fraud == legit:
        raise FraudtuneError("tokenizer: FRAUD and LEGITIMATE start with the same token; scoring needs them distinct")
    return fraud, legit


def decoder_and_head(model: Any) -> tuple[Any, Any]:
    """The transformer body and the vocabulary projection, so logits are computed only where needed."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


@torch.no_grad()
def last_token_logits(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    batch_size: int,
    progress: bool = False,
    reuse_prefix: bool = True,
    suffixes: list[list[int]] | None = None,
) -> tuple[torch.Tensor, list[int]]:
    """Next-token logits after each prompt (right padding, hidden state at the last real token -> head).

    A prefix shared by every prompt (a long rulebook system prompt with few-shot examples) is run once and its
    key/value cache reused for every batch, so each transaction costs only its own tokens. Even a short prefix
    pays: the fine-tuned prompt shares its chat header and system prompt, and `make bench` measures scoring with
    and without reusing them (`reuse_prefix=False`; docs/PERFORMANCE.md). `suffixes` are token ids appended to
    each prompt (the evidence an evidence-first answer wrote), kept as generated rather than re-tokenised.
    """
    decoder, head = decoder_and_head(model)
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    if suffixes is not None:
        encoded = [e + list(s) for e, s in zip(encoded, suffixes, strict=True)]
    shared = shared_prefix_length(encoded) if reuse_prefix and len(encoded) > 1 else 0
    device = head.weight.device
    prefix_cache = None
    if shared:
        prefix = torch.tensor([encoded[0][:shared]], device=device)
        prefix_cache = decoder(input_ids=prefix, use_cache=True).cache
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))  # similar lengths together: little padding
    out = torch.empty(len(prompts), head.weight.shape[0])
    for start in tqdm(range(0, len(order), batch_size), disable=not progress, desc="scoring", unit="batch"):
        idx = order[start : start + batch_size]
        ids, mask = _right_padded([encoded[i][shared:] for i in idx], tokenizer.pad_token_id)
        kwargs: dict[str, Any] = {}
        if prefix_cache is not None:
            cache = copy.deepcopy(prefix_cache)
            cache.batch_repeat_interleave(len(idx))
            kwargs = {"cache": cache, "use_cache": True}
            mask = torch.cat([torch.ones(len(idx), shared, dtype=torch.long), mask], dim=1)
        hidden = decoder(input_ids=ids.to(device), attention_mask=mask.to(device), **kwargs).last_hidden_state
        last = mask[:, shared:].sum(1).to(device) - 1
        out[idx] = head(hidden[torch.arange(len(idx)), last]).float().cpu()
    return out, [len(e) for e in encoded]


def shared_prefix_length(encoded: list[list[int]]) -> int:
    """Tokens every prompt starts with, leaving at least one token of each prompt to run."""
    first = encoded[0]
    length = min(len(e) for e in encoded) - 1
    for e in encoded[1:]:
        n = 0
        while n < length and e[n] == first[n]:
            n += 1
        length = n
    return max(0, length)


def _right_padded(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return ids, mask


def fraud_probabilities(
    model: Any,
    tokenizer: Any,
    chats: list[list[dict[str, str]]],
    batch_size: int = 16,
    progress: bool = False,
    reuse_prefix: bool = True,
    answer_order: str = "verdict_first",
    max_evidence_tokens: int = 192,
) -> tuple[list[float], list[int]]:
    """P(FRAUD) from the two label tokens' next-token probabilities at the verdict, renormalised; and prompt token
    counts. Evidence first, the flags and score are written greedily first (verdict_scores)."""
    probs, lengths, _ = verdict_scores(
        model, tokenizer, chats, batch_size, progress, reuse_prefix, answer_order, max_evidence_tokens
    )
    return probs, lengths


def verdict_scores(
    model: Any,
    tokenizer: Any,
    chats: list[list[dict[str, str]]],
    batch_size: int,
    progress: bool,
    reuse_prefix: bool,
    answer_order: str,
    max_evidence_tokens: int,
) -> tuple[list[float], list[int], list[dict[str, Any]] | None]:
    """fraud_probabilities, plus the evidence an evidence-first answer wrote before its verdict: the flags and the
    risk-score line with its newline (generation stops there, so the next token is the verdict; an answer that
    never writes the score line within the token limit is read where it stopped)."""
    evidence = None
    if answer_order == "evidence_first":
        evidence = generate_answers(
            model, tokenizer, chats, max_evidence_tokens, batch_size, progress=progress, until_verdict=True
        )
    fraud_id, legit_id = label_token_ids(tokenizer)
    prompts = [prompt_text(c, tokenizer) for c in chats]
    suffixes = [e["ids"] for e in evidence] if evidence else None
    logits, lengths = last_token_logits(model, tokenizer, prompts, batch_size, progress, reuse_prefix, suffixes)
    if evidence:
        lengths = [n - len(e["ids"]) for n, e in zip(lengths, evidence, strict=True)]
    pair = torch.log_softmax(logits[:, [fraud_id, legit_id]], dim=-1)
    return pair[:, 0].exp().tolist(), lengths, evidence


@torch.no_grad()
def generate_answers(
    model: Any,
    tokenizer: Any,
    chats: list[list[dict[str, str]]],
    max_new_tokens: int,
    batch_size: int = 8,
    temperature: float | None = None,
    seed: int = 0,
    progress: bool = False,
    until_verdict: bool = False,
) -> list[dict[str, Any]]:
    """Greedy (or sampled, with a temperature) answers with the KV cache, batched with left padding.

    until_verdict: stop each answer once it has written its evidence (flags and score), before the verdict."""
    prompts = [prompt_text(c, tokenizer) for c in chats]
    results: list[dict[str, Any]] = [{} for _ in prompts]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    try:
        for start in tqdm(range(0, len(prompts), batch_size), disable=not progress, desc="generating", unit="batch"):
            batch = prompts[start : start + batch_size]
            enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            began = time.perf_counter()
            sampling = (
                {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
                if temperature
                else {"do_sample": False}
            )
            width = enc["input_ids"].shape[1]
            if until_verdict:
                sampling["stopping_criteria"] = StoppingCriteriaList([_AfterEvidence(tokenizer, width)])
            out = model.generate(
                **enc,
                cache=growing_cache(model),  # appends in place: DynamicLayer's torch.cat dominated CPU decoding
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
                **sampling,
            )
            elapsed_ms = (time.perf_counter() - began) * 1000 / len(batch)
            for row, tokens in enumerate(out[:, width:].tolist()):
                ids = _until_stop(tokens, {tokenizer.pad_token_id, tokenizer.eos_token_id})
                text = tokenizer.decode(ids, skip_special_tokens=True).strip()
                results[start + row] = {
                    "text": text,
                    "ids": ids,
                    "completion_tokens": len(ids),
                    "latency_ms": elapsed_ms,
                }
    finally:
        tokenizer.padding_side = side
    return results


def _until_stop(tokens: list[int], stops: set[int]) -> list[int]:
    end = next((i for i, t in enumerate(tokens) if t in stops), len(tokens))
    return tokens[:end]


class _AfterEvidence(StoppingCriteria):
    """Done, per row, once the answer has written its risk-score line (evidence first: the verdict is next)."""

    def __init__(self, tokenizer: Any, prompt_width: int) -> None:
        self.tokenizer, self.prompt_width = tokenizer, prompt_width

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_width :], skip_special_tokens=True)
        return torch.tensor([bool(EVIDENCE_END.search(t)) for t in texts], device=input_ids.device)


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
        probs, lengths, evidence = verdict_scores(
            self.model,
            self.tokenizer,
            self.chats(transactions),
            batch_size,
            progress,
            True,
            self.answer_order,
            self.max_new_tokens,
        )
        per_ms = (time.perf_counter() - began) * 1000 / max(1, len(transactions))
        records = [
            {
                "label": LABELS[0] if p >= 0.5 else LABELS[1],
                "fraud_probability": p,
                "prompt_tokens": n,
                "latency_ms": per_ms,
            }
            for p, n in zip(probs, lengths, strict=True)
        ]
        for record, e in zip(records, evidence or [], strict=False):
            risk_score, red_flags, error = parse_evidence(e["text"], self.profile)
            record.update(risk_score=risk_score, red_flags=red_flags, evidence=e["text"])
            record.update(completion_tokens=len(e["ids"]) + 1)
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
        answers = generate_answers(
            self.model,
            self.tokenizer,
            self.chats(transactions),
            self.max_new_tokens,
            batch_size,
            temperature,
            seed,
            progress,
        )
        out = []
        for answer in answers:
            parsed = parse_answer(answer["text"], self.profile)
            out.append(
                {
                    "label": parsed.label,
                    "risk_score": parsed.risk_score,
                    "red_flags": parsed.red_flags,
                    "reasoning": parsed.reasoning,
                    "raw_text": answer["text"],
                    "error": parsed.error,
                    "completion_tokens": answer["completion_tokens"],
                    "latency_ms": answer["latency_ms"],
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
    from fraudtune.models import load_for_inference
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
    from fraudtune.files import write_jsonl

    transactions, errors = parse_lines(Path(input_path))
    if not transactions:  # every line rejected: keep the previous predictions file rather than empty it
        from fraudtune.models import check_adapter_folder

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
