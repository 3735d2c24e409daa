"""Scoring throughput of an adapter: one forward pass per transaction vs reading the label from generate."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import fraudtune
from fraudtune.files import read_jsonl
from fraudtune.modeling.inference import encode_prompts, fraud_probabilities, generate_all
from fraudtune.modeling.loading import cpu_has_fast_bf16

NO_FAST_BF16 = "not measured: this CPU has no native bf16 (AVX512-BF16 or AMX), where bf16 runs many times slower"


def score_rate(adapter: str, txns: list, precision: str, repeats: int = 3) -> tuple[float, list[float], object]:
    """Transactions/s of batched scoring in a precision (median of `repeats` runs), the probabilities, the predictor."""
    predictor = fraudtune.load(Path(adapter), precision=precision)
    predictor.score(txns[:8])  # warm-up
    rates = []
    for _ in range(repeats):
        began = time.perf_counter()
        records = predictor.score(txns, batch_size=16)
        rates.append(len(txns) / (time.perf_counter() - began))
    return statistics.median(rates), [r["fraud_probability"] for r in records], predictor


def prefix_ab(predictor: object, txns: list, repeats: int = 3) -> dict:
    """Scoring rate without and with the shared-prefix cache, alternated (medians): what reusing it is worth."""
    chats = predictor.chats(txns)
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for reuse in (False, True):
            began = time.perf_counter()
            fraud_probabilities(predictor.model, predictor.tokenizer, chats, 16, reuse_prefix=reuse)
            rates[reuse].append(len(txns) / (time.perf_counter() - began))
    return {"without": statistics.median(rates[False]), "with": statistics.median(rates[True]), "repeats": repeats}


def decode_batch_ab(predictor: object, txns: list, steps: int = 24, repeats: int = 3) -> dict:
    """Milliseconds per row per decoding step at 16 and at 64 rows per batch (what evidence-first scoring writes
    its evidence with), alternated, medians: a step reads every weight once for the whole batch."""
    prompts = encode_prompts(predictor.model, predictor.tokenizer, predictor.chats(txns))
    model, tokenizer = predictor.model, predictor.tokenizer
    per_step: dict[int, list[float]] = {16: [], 64: []}
    for _ in range(repeats):
        for rows in per_step:
            timed = {}
            for n in (1, steps + 1):  # one token is the prompt's pass alone; the difference is the decoding
                began = time.perf_counter()
                answers = generate_all(model, tokenizer, prompts, n, rows)
                timed[n] = (time.perf_counter() - began, sum(a.completion_tokens for a in answers))
            tokens = timed[steps + 1][1] - timed[1][1]
            per_step[rows].append(1000 * (timed[steps + 1][0] - timed[1][0]) / max(1, tokens))
    m16, m64 = statistics.median(per_step[16]), statistics.median(per_step[64])
    return {"ms_per_row_step_16": m16, "ms_per_row_step_64": m64, "ratio": m16 / m64, "repeats": repeats}


def bf16_fields(probs: list[float], bf16: tuple | None) -> dict:
    """bf16 scoring against fp32: rate, label agreement, largest probability difference (None where not run)."""
    if bf16 is None:
        return {
            "score_tps_bf16": None,
            "bf16_max_probability_difference": None,
            "bf16_label_agreement": None,
            "bf16_skipped": NO_FAST_BF16,
        }
    tps, bf16_probs = bf16
    pairs = list(zip(probs, bf16_probs, strict=True))
    return {
        "score_tps_bf16": tps,
        "bf16_max_probability_difference": max(abs(a - b) for a, b in pairs),
        "bf16_label_agreement": sum((a >= 0.5) == (b >= 0.5) for a, b in pairs) / len(pairs),
    }


def main(adapter: str, meta_file: str, score_n: int, gen_n: int) -> dict:
    import torch

    txns = [m["transaction"] for m in read_jsonl(Path(meta_file))]
    txns = (txns * (score_n // len(txns) + 1))[:score_n]
    bf16, prefix = None, None
    if cpu_has_fast_bf16() or torch.cuda.is_available():
        bf16_tps, bf16_probs, bf16_predictor = score_rate(adapter, txns, "bf16")
        bf16, prefix = (bf16_tps, bf16_probs), {**prefix_ab(bf16_predictor, txns), "precision": "bf16"}
        del bf16_predictor
    score_tps, probs, predictor = score_rate(adapter, txns, "fp32")
    if prefix is None:
        prefix = {**prefix_ab(predictor, txns), "precision": "fp32"}
    decode = decode_batch_ab(predictor, txns[:64])
    began = time.perf_counter()
    answers = predictor.explain(txns[:gen_n], batch_size=gen_n)
    gen_seconds = time.perf_counter() - began
    tokens = sum(a["completion_tokens"] for a in answers)
    return {
        "score_tps": score_tps,
        **bf16_fields(probs, bf16),
        "generate_tps": gen_n / gen_seconds,
        "generation_tokens_per_second": tokens / gen_seconds,
        "prefix_cache": prefix,
        "decode_batch_fp32": decode,
        "score_n": score_n,
        "gen_n": gen_n,
    }


if __name__ == "__main__":
    a, m, s, g = sys.argv[1:5]
    print(json.dumps(main(a, m, int(s), int(g))))
