"""Scoring throughput of an adapter: one forward pass per transaction vs reading the label from generate."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import fraudtune
from fraudtune.files import read_jsonl


def main(adapter: str, meta_file: str, score_n: int, gen_n: int) -> dict:
    predictor = fraudtune.load(Path(adapter))
    txns = [m["transaction"] for m in read_jsonl(Path(meta_file))]
    txns = (txns * (score_n // len(txns) + 1))[:score_n]
    predictor.score(txns[:8])  # warm-up
    began = time.perf_counter()
    predictor.score(txns, batch_size=16)
    score_seconds = time.perf_counter() - began
    began = time.perf_counter()
    answers = predictor.explain(txns[:gen_n], batch_size=gen_n)
    gen_seconds = time.perf_counter() - began
    tokens = sum(a["completion_tokens"] for a in answers)
    return {
        "score_tps": score_n / score_seconds,
        "generate_tps": gen_n / gen_seconds,
        "generation_tokens_per_second": tokens / gen_seconds,
        "score_n": score_n,
        "gen_n": gen_n,
    }


if __name__ == "__main__":
    a, m, s, g = sys.argv[1:5]
    print(json.dumps(main(a, m, int(s), int(g))))
