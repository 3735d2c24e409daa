"""Deduplicate, split train/val/test (stratified by category x label, or by time), and write the data set files.

Shared by `data generate` and `data import-csv`, so both write exactly the same set of files.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fraudtune import paths
from fraudtune.files import write_json, write_jsonl

NEAR_DUPLICATE_AMOUNT = 0.01  # amounts within 1% of each other


@dataclass
class Example:
    """One chat example and its metadata (category, label, score, flag codes, the transaction...)."""

    messages: list[dict[str, str]]
    meta: dict[str, Any]


def near_duplicate_key(txn: dict[str, Any]) -> tuple[str, str, int]:
    """Transactions can only be near-duplicates when merchant, customer and hour of day agree."""
    return txn["merchant"]["id"], txn["customer"]["id"], datetime.fromisoformat(txn["timestamp"]).hour


def is_near_duplicate(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Same merchant, same customer, same hour of day, and amounts within 1%."""
    if near_duplicate_key(a) != near_duplicate_key(b):
        return False
    return abs(a["amount"] - b["amount"]) <= NEAR_DUPLICATE_AMOUNT * max(a["amount"], b["amount"])


class DuplicateIndex:
    """Incremental near-duplicate lookup (the generator asks before keeping a sample)."""

    def __init__(self) -> None:
        self._by_key: dict[tuple, list[dict[str, Any]]] = defaultdict(list)

    def find(self, txn: dict[str, Any]) -> dict[str, Any] | None:
        return next((t for t in self._by_key[near_duplicate_key(txn)] if is_near_duplicate(t, txn)), None)

    def add(self, txn: dict[str, Any]) -> None:
        self._by_key[near_duplicate_key(txn)].append(txn)


def dedupe(examples: list[Example]) -> tuple[list[Example], list[tuple[str, str]]]:
    """Keep the first of each group of near-duplicate transactions; returns (kept, [(dropped id, kept id)])."""
    index, kept, dropped = DuplicateIndex(), [], []
    for ex in examples:
        txn = ex.meta["transaction"]
        twin = index.find(txn)
        if twin is not None:
            dropped.append((txn["transaction_id"], twin["transaction_id"]))
            continue
        index.add(txn)
        kept.append(ex)
    return kept, dropped


def assign_splits(strata: list[str], train_frac: float, val_frac: float, seed: int) -> list[str]:
    """Split name per example: each stratum is shuffled, strata are laid end to end, and each position goes to
    the split furthest below its share so far, so every stratum and the totals match the fractions within one
    example (exactly 400/50/50 for 500)."""
    rng = random.Random(seed)
    shares = {"train": train_frac, "val": val_frac, "test": 1 - train_frac - val_frac}
    order: list[int] = []
    for stratum in sorted(set(strata)):
        members = [i for i, s in enumerate(strata) if s == stratum]
        rng.shuffle(members)
        order += members
    counts = Counter({name: 0 for name in paths.SPLITS})
    result = [""] * len(strata)
    for step, index in enumerate(order, 1):
        name = max(paths.SPLITS, key=lambda s: shares[s] * step - counts[s])
        counts[name] += 1
        result[index] = name
    return result


def split_examples(examples: list[Example], train_frac: float, val_frac: float, seed: int) -> None:
    """Write the split name into each example's meta, stratified by category x label (x the company rule or near
    miss a generated example stands for, so that every rule keeps its share in every split)."""
    strata = [f"{ex.meta['category']}|{ex.meta['label']}|{ex.meta.get('unit') or ''}" for ex in examples]
    for ex, name in zip(examples, assign_splits(strata, train_frac, val_frac, seed), strict=True):
        ex.meta["split"] = name


def time_split_sizes(n: int, train_frac: float, val_frac: float) -> tuple[int, int, int]:
    """(train, val, test) row counts of a split by time: the first rows train, the next validate, the last test."""
    n_train = round(n * train_frac)
    n_val = min(n - n_train, round(n * val_frac))
    return n_train, n_val, n - n_train - n_val


def split_by_time(examples: list[Example], train_frac: float, val_frac: float) -> None:
    """Write the split name into each example's meta by the transaction's time (ties keep the file order)."""
    order = sorted(
        range(len(examples)), key=lambda i: datetime.fromisoformat(examples[i].meta["transaction"]["timestamp"])
    )
    n_train, n_val, _ = time_split_sizes(len(examples), train_frac, val_frac)
    for rank, index in enumerate(order):
        examples[index].meta["split"] = "train" if rank < n_train else "val" if rank < n_train + n_val else "test"


def counts_by_split(examples: list[Example]) -> dict[str, dict[str, dict[str, int]]]:
    """{split: {category: {label: count}}}, plus an "all" entry."""
    table: dict[str, dict[str, dict[str, int]]] = {}
    for ex in examples:
        for split in ("all", ex.meta["split"]):
            cell = table.setdefault(split, {}).setdefault(ex.meta["category"], {})
            cell[ex.meta["label"]] = cell.get(ex.meta["label"], 0) + 1
    return {
        split: {cat: dict(sorted(labels.items())) for cat, labels in sorted(table[split].items())}
        for split in ("all", *paths.SPLITS)
        if split in table
    }


def write_dataset(out_dir: Path, examples: list[Example], card: dict[str, Any]) -> list[str]:
    """fraud_dataset.jsonl (+ .meta), train/val/test.jsonl (+ .meta) and data_card.json, each written atomically.

    Returns the names of the files written."""
    out_dir = Path(out_dir)
    written = []

    def write_pair(chat_file: Path, chosen: list[Example]) -> None:
        write_jsonl(chat_file, ({"messages": ex.messages} for ex in chosen))
        write_jsonl(paths.meta_file(chat_file), (ex.meta for ex in chosen))
        written.extend([chat_file.name, paths.meta_file(chat_file).name])

    write_pair(out_dir / paths.DATASET, examples)
    for split in paths.SPLITS:
        write_pair(paths.split_file(out_dir, split), [ex for ex in examples if ex.meta["split"] == split])
    write_json(out_dir / paths.DATA_CARD, card)
    written.append(paths.DATA_CARD)
    return written
