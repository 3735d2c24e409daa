"""The data set of a log import, written as rows arrive: the same files as `generate`, without holding rows.

Examples go to temporary files in a work folder beside the output folder; `finish` assigns the splits (by time:
rows arrive in time order, so position is time rank; or stratified by category x label), writes the split files
in a second pass, and moves every file into the output folder. A failed import leaves that folder as it was.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import IO, Any

from fraudtune import paths
from fraudtune.data.split import NEAR_DUPLICATE_AMOUNT, Example, assign_splits, near_duplicate_key, time_split_sizes
from fraudtune.files import write_json

_ALL, _ALL_META = "all.jsonl", "all.meta.jsonl"


class DatasetWriter:
    def __init__(self, out_dir: Path, work_dir: Path) -> None:
        self.out_dir, self.work = Path(out_dir), Path(work_dir)
        self._files: dict[str, IO[str]] = {
            name: open(self.work / name, "w", encoding="utf-8")  # closed by finish or abort
            for name in (_ALL, _ALL_META, paths.WARMUP_META, paths.REJECTED_ROWS)
        }
        self.strata: list[str] = []  # category|label of each example, in arrival (time) order
        self.written: Counter[str] = Counter()
        self.subsampled: dict[str, dict[str, Any]] = {}  # per split, when finish subsampled its negatives

    def add(self, example: Example) -> None:
        self._line(_ALL, {"messages": example.messages})
        self._line(_ALL_META, example.meta)
        self.strata.append(sys.intern(f"{example.meta['category']}|{example.meta['label']}"))

    def add_warmup(self, meta: dict[str, Any]) -> None:
        self._line(paths.WARMUP_META, meta)

    def reject(self, entry: dict[str, Any]) -> None:
        self._line(paths.REJECTED_ROWS, entry)

    def _line(self, name: str, obj: Any) -> None:
        self._files[name].write(json.dumps(obj, ensure_ascii=False) + "\n")
        self.written[name] += 1

    def finish(
        self,
        method: str,
        train_frac: float,
        val_frac: float,
        seed: int,
        legit_per_fraud: dict[str, float] | None = None,
    ) -> dict[str, dict[str, dict[str, int]]]:
        """Assign the splits, write the split files, and return {split: {category: {label: count}}}.

        `legit_per_fraud` ({split: ratio}, 0 or absent: keep all) keeps that many LEGITIMATE rows per FRAUD row of
        the split, drawn at random; `self.subsampled` then says per split how many there were and were kept."""
        for handle in self._files.values():
            handle.close()
        names = _split_names(self.strata, method, train_frac, val_frac, seed)
        keep = self._subsample(names, legit_per_fraud or {}, seed)
        targets = {"all": self.work / paths.DATASET, **{s: paths.split_file(self.work, s) for s in paths.SPLITS}}
        handles = {key: _open_pair(path) for key, path in targets.items()}
        counts: dict[str, Counter] = {}
        with open(self.work / _ALL, encoding="utf-8") as chats, open(self.work / _ALL_META, encoding="utf-8") as metas:
            for chat, meta, split, stratum, kept in zip(chats, metas, names, self.strata, keep, strict=True):
                if not kept:
                    continue
                # the meta line gets its split as the last key, as write_dataset writes it
                meta = f'{meta.rstrip()[:-1]}, "split": "{split}"}}\n'
                for key in ("all", split):
                    handles[key][0].write(chat)
                    handles[key][1].write(meta)
                    counts.setdefault(key, Counter())[stratum] += 1
        for pair in handles.values():
            for handle in pair:
                _close_synced(handle)
        (self.work / _ALL).unlink()
        (self.work / _ALL_META).unlink()
        return {split: _nested(counts[split]) for split in ("all", *paths.SPLITS) if split in counts}

    def _subsample(self, names: list[str], ratios: dict[str, float], seed: int) -> list[bool]:
        """Which rows stay: every FRAUD row, and per split with a ratio, round(ratio x its frauds) LEGITIMATE rows
        drawn without replacement (all of them when there are fewer); a split without a FRAUD row stays whole."""
        keep = [True] * len(names)
        rng = random.Random(seed)
        for split in paths.SPLITS:
            ratio = ratios.get(split) or 0
            if ratio <= 0:
                continue
            at = [i for i, name in enumerate(names) if name == split]
            legit = [i for i in at if self.strata[i].endswith("|LEGITIMATE")]
            frauds = len(at) - len(legit)
            if not frauds:  # no fraud to balance against: the split stays whole
                continue
            kept = set(rng.sample(legit, min(len(legit), round(ratio * frauds))))
            for i in legit:
                keep[i] = i in kept
            self.subsampled[split] = {
                "legit_per_fraud": ratio,
                "fraud": frauds,
                "legitimate": len(legit),
                "legitimate_kept": len(kept),
                "natural_fraud_rate": round(frauds / len(at), 6),
            }
        return keep

    def publish(self, card: dict[str, Any], report: dict[str, Any]) -> list[str]:
        """Write data_card.json and the import report, then move every file into the output folder."""
        write_json(self.work / paths.DATA_CARD, card)
        write_json(self.work / paths.IMPORT_REPORT, report)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        names = sorted(p.name for p in self.work.iterdir() if p.is_file() and not p.name.startswith("."))
        for name in names:
            os.replace(self.work / name, self.out_dir / name)
        shutil.rmtree(self.work, ignore_errors=True)
        return names

    def abort(self) -> None:
        for handle in self._files.values():
            handle.close()
        shutil.rmtree(self.work, ignore_errors=True)


class NearDuplicates:
    """The near-duplicate rule of split.dedupe (same merchant, customer and hour of day, amounts within 1%) in a
    few bytes per row: only the amounts are kept, by a hash of the key."""

    def __init__(self) -> None:
        self._amounts: dict[int, list[float]] = {}

    def seen(self, txn: dict[str, Any]) -> bool:
        """True when an earlier kept transaction is a near-duplicate; else remember this one."""
        amounts = self._amounts.setdefault(hash(near_duplicate_key(txn)), [])
        amount = txn["amount"]
        if any(abs(amount - other) <= NEAR_DUPLICATE_AMOUNT * max(amount, other) for other in amounts):
            return True
        amounts.append(amount)
        return False


def _open_pair(chat: Path) -> tuple[IO[str], IO[str]]:
    return open(chat, "w", encoding="utf-8"), open(paths.meta_file(chat), "w", encoding="utf-8")


def _split_names(strata: list[str], method: str, train_frac: float, val_frac: float, seed: int) -> list[str]:
    if method == "stratified":
        return assign_splits(strata, train_frac, val_frac, seed)
    n_train, n_val, n_test = time_split_sizes(len(strata), train_frac, val_frac)
    return [paths.SPLITS[0]] * n_train + [paths.SPLITS[1]] * n_val + [paths.SPLITS[2]] * n_test


def _nested(counts: Counter) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for stratum, n in sorted(counts.items()):
        category, label = stratum.split("|")
        table.setdefault(category, {})[label] = n
    return table


def _close_synced(handle: IO[str]) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
