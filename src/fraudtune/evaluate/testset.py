"""The transactions every model is tested on: the run's test split, a given file, or a fresh draw from the profile."""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fraudtune import paths
from fraudtune.config import DataConfig, EvalConfig
from fraudtune.errors import FraudtuneError
from fraudtune.files import read_jsonl

log = logging.getLogger(__name__)
META_KEYS = ("transaction", "label", "category")


@dataclass
class TestSet:
    """Test rows (the generator's meta records: transaction, label, category, red_flags, rule_kind, near_miss...)."""

    rows: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def transactions(self) -> list[dict[str, Any]]:
        return [r["transaction"] for r in self.rows]


def read_meta(chat_file: Path) -> list[dict[str, Any]]:
    """The .meta.jsonl beside a chat JSONL file; every row must carry the transaction and its label."""
    meta_path = paths.meta_file(Path(chat_file))
    if not meta_path.exists():
        raise FraudtuneError(
            f"{meta_path}: metadata missing; evaluation needs the .meta.jsonl written beside {Path(chat_file).name}"
        )
    rows = read_jsonl(meta_path)
    for lineno, row in enumerate(rows, 1):
        missing = [k for k in META_KEYS if k not in row]
        if missing:
            raise FraudtuneError(f"{meta_path}:{lineno}: missing {', '.join(missing)}; regenerate the data set")
    return rows


def fingerprint(txn: dict[str, Any]) -> str:
    """The transaction's content without its ids: equal fingerprints are the same transaction drawn twice."""
    content = {k: v for k, v in txn.items() if k != "transaction_id"}
    content["customer"] = {k: v for k, v in txn["customer"].items() if k != "id"}
    return json.dumps(content, sort_keys=True)


def without_overlap(rows: list[dict[str, Any]], seen: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Rows whose transaction (by id or by content) is not among `seen`."""
    ids = {t["transaction_id"] for t in seen}
    prints = {fingerprint(t) for t in seen}
    kept = [
        r for r in rows if r["transaction"]["transaction_id"] not in ids and fingerprint(r["transaction"]) not in prints
    ]
    return kept, len(rows) - len(kept)


def fresh_test_set(
    data_cfg: DataConfig, ecfg: EvalConfig, run_dir: Path, n: int, training: list[dict[str, Any]]
) -> TestSet:
    """`n` new transactions from the run's profile (seed eval.test_seed) in RUN/eval_data, minus any seen in training.

    The generator's whole output is used (all of its splits), so the SPEC 4 category mix is kept.
    """
    from fraudtune.data.generate import generate

    if ecfg.test_seed == data_cfg.seed:
        raise FraudtuneError(
            f"eval.test_seed ({ecfg.test_seed}) equals the run's data.seed: a fresh test set would repeat the "
            "training data; set eval.test_seed to another value"
        )
    out_dir = run_dir / paths.EVAL_DATA_DIR
    # the SPEC 4 shares, whatever per-rule minimum the training data had: every run is tested on the same mix
    test_cfg = data_cfg.model_copy(update={"rule_min": 0})
    generate(out_dir, profile_path=data_cfg.profile, n=n, seed=ecfg.test_seed, data_cfg=test_cfg)
    rows, dropped = without_overlap(read_meta(out_dir / paths.DATASET), training)
    if dropped:
        log.info("dropped %d fresh test transactions that also occur in the training data", dropped)
    return TestSet(rows, {"source": str(out_dir / paths.DATASET), "seed": ecfg.test_seed, "overlap_dropped": dropped})


def load_test_set(
    data_cfg: DataConfig,
    ecfg: EvalConfig,
    run_dir: Path,
    test_file: Path | None,
    test_n: int | None,
    training: list[dict[str, Any]],
) -> TestSet:
    """--test FILE, else --test-n N (or eval.test_n), else RUN/data/test.jsonl."""
    n = test_n if test_n is not None else ecfg.test_n
    if test_file is not None:
        test = TestSet(read_meta(test_file), {"source": str(test_file)})
    elif n:
        test = fresh_test_set(data_cfg, ecfg, run_dir, n, training)
    else:
        chat_file = paths.split_file(run_dir / paths.DATA_DIR, "test")
        if not chat_file.exists():
            raise FraudtuneError(f"{chat_file}: not found; train the run first or pass --test FILE / --test-n N")
        test = TestSet(read_meta(chat_file), {"source": str(chat_file)})
    if not test.rows:
        raise FraudtuneError(f"{test.info['source']}: no test transactions")
    test.info = {**test.info, **describe(test.rows)}
    return test


def describe(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """n, fraud share and {category: {n, fraud}} of the test rows."""
    by_category: dict[str, dict[str, int]] = {}
    for r in rows:
        cell = by_category.setdefault(r["category"], {"n": 0, "fraud": 0})
        cell["n"] += 1
        cell["fraud"] += r["label"] == "FRAUD"
    return {
        "n": len(rows),
        "fraud_share": sum(r["label"] == "FRAUD" for r in rows) / len(rows),
        "by_category": dict(sorted(by_category.items())),
    }


def generation_subset(rows: list[dict[str, Any]], size: int, seed: int) -> list[int]:
    """Indices of `size` rows (0: all) taken from each category in turn, so every slice is represented; seeded."""
    if size == 0 or size >= len(rows):
        return list(range(len(rows)))
    rng = random.Random(seed)
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(r["category"], []).append(i)
    for members in groups.values():
        rng.shuffle(members)
    queues = [groups[c] for c in sorted(groups)]
    chosen: list[int] = []
    while len(chosen) < size:
        for q in queues:
            if q and len(chosen) < size:
                chosen.append(q.pop())
    return sorted(chosen)
