"""Scoring throughput of an adapter: one forward pass per transaction vs reading the label from generate."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import fraudtune
from fraudtune.files import read_jsonl


def score_rate(adapter: str, txns: list, precision: str) -> tuple[float, list[float], object]:
    """Transactions/s of batched scoring in a precision, the probabilities, and the predictor."""
    predictor = fraudtune.load(Path(adapter), precision=precision)
    predictor.score(txns[:8])  # warm-up
    began = time.perf_counter()
    records = predictor.score(txns, batch_size=16)
    return len(txns) / (time.perf_counter() - began), [r["fraud_probability"] for r in records], predictor


def main(adapter: str, meta_file: str, score_n: int, gen_n: int) -> dict:
    txns = [m["transaction"] for m in read_jsonl(Path(meta_file))]
    txns = (txns * (score_n // len(txns) + 1))[:score_n]
    bf16_tps, bf16_probs, _ = score_rate(adapter, txns, "bf16")
    score_tps, probs, predictor = score_rate(adapter, txns, "fp32")
    began = time.perf_counter()
    answers = predictor.explain(txns[:gen_n], batch_size=gen_n)
    gen_seconds = time.perf_counter() - began
    tokens = sum(a["completion_tokens"] for a in answers)
    return {
        "score_tps": score_tps,
        "score_tps_bf16": bf16_tps,
        "bf16_max_probability_difference": max(abs(a - b) for a, b in zip(probs, bf16_probs, strict=True)),
        "bf16_label_agreement": sum((a >= 0.5) == (b >= 0.5) for a, b in zip(probs, bf16_probs, strict=True))
        / len(probs),
        "generate_tps": gen_n / gen_seconds,
        "generation_tokens_per_second": tokens / gen_seconds,
        "score_n": score_n,
        "gen_n": gen_n,
    }


if __name__ == "__main__":
    a, m, s, g = sys.argv[1:5]
    print(json.dumps(main(a, m, int(s), int(g))))
