"""Peak RSS and step time of the default recipe on its longest batches, with a given train.mmap_threshold_kb.

The longest examples first, so the steps hold the most activations the data asks for; run once per setting in a
fresh process (the allocator's state is per process). Prints JSON: peak RSS before the steps and after them, RSS
at the end, seconds per step.
Usage: python bench/memory.py TRAIN_JSONL MMAP_THRESHOLD_KB [STEPS]
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

from profile_step import recipe_steps

from fraudtune.files import read_jsonl
from fraudtune.train import memory_mb


def main(train_file: str, threshold_kb: int, steps: int = 12, batch_size: int = 4) -> dict:
    rows = sorted(read_jsonl(Path(train_file)), key=lambda r: -sum(len(m["content"]) for m in r["messages"]))
    step, batches, _ = recipe_steps(rows, batch_size, steps, [f"train.mmap_threshold_kb={threshold_kb}"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    began = time.perf_counter()
    for batch in batches:
        step(batch)
    seconds = (time.perf_counter() - began) / steps
    rss_end, peak = memory_mb()
    return {
        "mmap_threshold_kb": threshold_kb,
        "steps": steps,
        "peak_before_steps_mb": round(before, 1),
        "peak_mb": peak,
        "rss_end_mb": rss_end,
        "step_seconds": round(seconds, 3),
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(main(args[0], int(args[1]), *(int(a) for a in args[2:3]))))
