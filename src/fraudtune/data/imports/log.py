"""`fraudtune data import` of a raw transaction log: SPEC transactions with point-in-time customer features.

One pass over the rows in time order (ties in file order): each row is read through the mapping, its card number
becomes a keyed token, the card's earlier rows give its customer fields (history.py), personal columns never leave
the reader, and the example is streamed to disk. Memory holds the per-card state, a few bytes per written row
(split stratum, leakage columns, a hash of the transaction id) and one chunk of rows; see DatasetWriter for the
files and timesort for the order.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import random
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fraudtune import paths
from fraudtune.config import DataConfig
from fraudtune.data.csv_mapping import CsvMapping, load_mapping
from fraudtune.data.importers import issuer_example
from fraudtune.data.imports.history import History
from fraudtune.data.imports.leakage import MIN_AUC, MIN_ROWS, MIN_SHARE, FeatureTable, leakage_warnings
from fraudtune.data.imports.output import DatasetWriter, NearDuplicates
from fraudtune.data.imports.report import SHOWN_PII, Rejections, column_report, scrubbed
from fraudtune.data.imports.rows import LogRow, LogRowReader, complete, pii_findings
from fraudtune.data.imports.sources import RawRow, Source, open_source
from fraudtune.data.imports.timesort import Keyed, external_sort, is_sorted, keyed
from fraudtune.data.imports.tokens import card_token, key_id, load_key
from fraudtune.data.schema import validate_transaction
from fraudtune.errors import FraudtuneError
from fraudtune.files import progress
from fraudtune.profile import Profile, load_profile

log = logging.getLogger(__name__)


def import_log(
    path: Path,
    map_path: Path,
    out_dir: Path,
    profile_path: Path,
    data_cfg: DataConfig | None = None,
    key_file: Path | None = None,
    key_env: str | None = None,
    keep_warmup: bool | None = None,
) -> dict[str, Any]:
    """Read a labelled transaction log (CSV or Parquet) and write the chat data set with an import report.

    Args:
        path: the log, one row per card transaction, with a label column.
        map_path: mapping YAML with a `log:` section (configs/cardlog_mapping.example.yaml).
        out_dir: folder for the data set files, data_card.json, import_report.json, rejected_rows.jsonl and
            warmup.meta.jsonl.
        profile_path: issuer profile used to explain each label (never to change it).
        data_cfg: seed, split method and fractions, chunk size (defaults from DataConfig).
        key_file, key_env: where the card token key is (default: the mapping's log.key_file / log.key_env).
        keep_warmup: write warm-up rows into the splits too, marked in the meta (default: log.keep_warmup).
    """
    data_cfg = data_cfg or DataConfig()
    mapping = load_mapping(Path(map_path))
    if mapping.log is None:
        raise FraudtuneError(f"{map_path}: log: missing; a transaction log needs log: {{card: COLUMN}} in the mapping")
    source = open_source(Path(path), mapping)
    key, key_source = load_key(
        key_file or mapping.log.key_file, key_env or mapping.log.key_env, Path(out_dir), f"{map_path}: log.card"
    )
    run = LogImport(mapping, load_profile(profile_path), data_cfg, key, source, Path(out_dir))
    if keep_warmup is not None:
        run.keep_warmup = keep_warmup
    try:
        return run.execute({"mapping": str(map_path), "profile": str(profile_path), "token_key": key_source})
    except BaseException:
        run.writer.abort()
        raise


class LogImport:
    """One import: the rows' reader, the cards' history, the writer and the counts for the report."""

    def __init__(
        self, mapping: CsvMapping, profile: Profile, data_cfg: DataConfig, key: bytes, source: Source, out_dir: Path
    ) -> None:
        assert mapping.log is not None
        self.mapping, self.spec, self.profile, self.cfg = mapping, mapping.log, profile, data_cfg
        self.key, self.source, self.out_dir = key, source, out_dir
        self.reader = LogRowReader(mapping)
        self.columns = column_report(source.header, mapping)
        self.history, self.table, self.rejections = History(), FeatureTable(), Rejections()
        self.rng = random.Random(data_cfg.seed)
        self.keep_warmup = self.spec.keep_warmup
        self.ids: set[int] = set()
        self.near = NearDuplicates()
        self.counts = {"rows": 0, "imported": 0, "warmup": 0, "near_duplicates": 0, "agree": 0, "pii_values": 0}
        self.pii: list[dict[str, Any]] = []
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.import-", dir=out_dir.parent))
        self.writer = DatasetWriter(out_dir, work)

    def execute(self, names: dict[str, str]) -> dict[str, Any]:
        rows, self.counts["rows"], self.order = self.ordered_rows()
        for seconds, raw in progress(rows, total=self.counts["rows"], desc="importing", unit="row"):
            self.take(seconds, raw)
        if not self.counts["imported"]:
            self.writer.abort()
            why = "no rows past the warm-up (see log.warmup_min_history)" if self.counts["warmup"] else "no valid rows"
            return {**self.summary([]), "errors": [*self.errors(), f"{self.source.path}: {why}; nothing written"]}
        cfg = self.cfg
        ratios = {"train": cfg.legit_per_fraud, "val": cfg.legit_per_fraud, "test": cfg.test_legit_per_fraud}
        counts = self.writer.finish(self.cfg.split, self.cfg.train_frac, self.cfg.val_frac, self.cfg.seed, ratios)
        warnings, skipped = leakage_warnings(self.table)
        report = self.report(names, counts, warnings, skipped)
        files = self.writer.publish(scrubbed(self.card(names, counts)), scrubbed(report))
        return {**self.summary(files), "leakage_warnings": [w["message"] for w in report["leakage"]["warnings"]]}

    def ordered_rows(self) -> tuple[Iterator[Keyed], int, str]:
        """The rows by (time, file order), the row count, and how the order was obtained."""
        chunk = self.cfg.chunk_rows
        time_column = self.mapping.columns["timestamp"]
        ordered, n_rows = is_sorted(self.source.chunks([time_column], chunk), lambda r: self.reader.time_of(r, 0))
        chunks = self.tokenised(self.source.chunks(self.reader.columns, chunk))
        if ordered:
            return keyed(itertools.chain.from_iterable(chunks), self.reader.time_of), n_rows, "in time order already"
        log.info("%s is not in time order: sorting it on disk in runs of %d rows", self.source.path, chunk)
        how = f"sorted by time with an external merge sort (runs of {chunk} rows on disk)"
        return external_sort(chunks, self.reader.time_of, self.writer.work), n_rows, how

    def tokenised(self, chunks: Iterator[list[RawRow]]) -> Iterator[list[RawRow]]:
        """The chunks with each card number replaced by its token as soon as it is read: the number reaches
        neither the sort's temporary files nor anything after them."""
        at = self.reader.columns.index(self.spec.card)
        for chunk in chunks:
            for i, row in enumerate(chunk):
                card = str(row.cells[at]).strip() if row.cells is not None else ""
                if card:
                    chunk[i] = row._replace(cells=(*row.cells[:at], card_token(self.key, card), *row.cells[at + 1 :]))
            yield chunk

    def take(self, seconds: float, raw: RawRow) -> None:
        """Read one row, derive its customer fields from the card's past, and write it (or say why not)."""
        row, problems = self.reader.read(raw)
        if row is None:
            return self.reject(raw, problems)
        id_hash = int.from_bytes(hashlib.blake2b(row.txn["transaction_id"].encode(), digest_size=8).digest())
        if id_hash in self.ids:
            return self.reject(raw, [("transaction_id", f"duplicate id {row.txn['transaction_id'][:40]!r}")])
        token = row.card  # tokenised when read
        merchant = row.txn["merchant"]["id"]
        past = self.history.features(token, seconds, merchant, row.device)
        txn = complete(row, token, past, self.reader.derived, seconds)
        problems = validate_transaction(txn) or self.check_pii(raw, txn)
        if problems:
            return self.reject(raw, problems)
        self.history.add(token, seconds, txn["amount"], txn["merchant"]["category"], merchant, row.device)
        self.ids.add(id_hash)
        warmup = past.history_count < self.spec.warmup_min_history or past.observed_days < self.spec.warmup_min_days
        self.counts["warmup"] += warmup
        if warmup and not self.keep_warmup:
            return self.writer.add_warmup(_warmup_meta(row, txn, past.observed_days))
        self.write(row, txn, seconds, {"warmup": warmup, "merchant_new": past.merchant_new})

    def write(self, row: LogRow, txn: dict[str, Any], seconds: float, marks: dict[str, bool]) -> None:
        """The training example of a row past its warm-up; a near-duplicate of an earlier one is only counted
        (SPEC 4: none across splits; the row still counts in its card's history)."""
        if self.near.seen(txn):
            self.counts["near_duplicates"] += 1
            return
        source = {"source_row": row.number, **marks}
        example = issuer_example(
            txn, row.label, self.profile, self.rng, source, self.cfg.answer_order, self.cfg.score_tally
        )
        self.writer.add(example)
        self.table.add(txn, row.label == "FRAUD", seconds, marks["merchant_new"])
        self.counts["imported"] += 1
        self.counts["agree"] += example.meta["agrees_with_profile"]

    def check_pii(self, raw: RawRow, txn: dict[str, Any]) -> list[tuple[str, str]]:
        """Scrub (or, with pii: refuse, refuse the row for) text values that look like personal data."""
        found = pii_findings(txn, scrub_them=self.mapping.pii == "scrub")
        self.counts["pii_values"] += len(found)
        for field, kinds in found[: max(0, SHOWN_PII - len(self.pii))]:
            self.pii.append({"where": self.source.where(raw.line), "field": field, "looks_like": kinds})
        if self.mapping.pii == "refuse":
            return [(field, f"looks like personal data ({kinds}); row refused (pii: refuse)") for field, kinds in found]
        return []

    def reject(self, raw: RawRow, problems: list[tuple[str, str]]) -> None:
        where_key = "line" if self.source.kind == "csv" else "row"
        for entry in self.rejections.add(self.source.where(raw.line), problems):
            self.writer.reject({where_key: raw.line, **entry})

    def errors(self) -> list[str]:
        more = self.rejections.rows - len(self.rejections.first)
        tail = (
            [f"... and more rejected rows ({self.rejections.rows} in all): see {paths.REJECTED_ROWS}"]
            if more > 0
            else []
        )
        return [*self.rejections.first, *tail]

    def summary(self, files: list[str]) -> dict[str, Any]:
        c = self.counts
        return {
            "file": str(self.source.path),
            "format": self.source.kind,
            "out_dir": str(self.out_dir),
            "rows": c["rows"],
            "imported": c["imported"],
            "warmup_rows": c["warmup"],
            "warmup_excluded": 0 if self.keep_warmup else c["warmup"],
            "near_duplicates_dropped": c["near_duplicates"],
            "rejected_rows": self.rejections.rows,
            "pii_values": c["pii_values"],
            "dropped_columns": {d["column"]: d["reason"] for d in self.columns["dropped"]},
            "files": files,
            "errors": self.errors(),
        }

    def card(self, names: dict[str, str], counts: dict[str, Any]) -> dict[str, Any]:
        return {
            "source": "import-log",
            "file": str(self.source.path),
            "mapping": names["mapping"],
            "n": self.counts["imported"],
            "seed": self.cfg.seed,
            "profile": names["profile"],
            "train_frac": self.cfg.train_frac,
            "val_frac": self.cfg.val_frac,
            "split": self.cfg.split,
            "splits": {s: sum(sum(v.values()) for v in counts.get(s, {}).values()) for s in paths.SPLITS},
            "counts": counts,
            "agree_with_profile": self.counts["agree"],
            "warmup_rows": self.counts["warmup"],
            "warmup_in_splits": self.keep_warmup,
            "near_duplicates_dropped": self.counts["near_duplicates"],
            "token_key_id": key_id(self.key),
            "imported_at_rows": self.counts["rows"],
            "subsampled": self.writer.subsampled,
        }

    def report(
        self, names: dict[str, str], counts: dict[str, Any], warnings: list[dict[str, Any]], skipped: str | None
    ) -> dict[str, Any]:
        spec = self.spec
        return {
            **{k: v for k, v in self.summary([]).items() if k not in ("files", "errors", "dropped_columns")},
            "mapping": names["mapping"],
            "time_order": self.order,
            "columns": self.columns,
            "token_key": {"source": names["token_key"], "key_id": key_id(self.key)},
            "warmup": {
                "rows": self.counts["warmup"],
                "in_splits": self.keep_warmup,
                "min_history": spec.warmup_min_history,
                "min_days": spec.warmup_min_days,
                "file": None if self.keep_warmup else paths.WARMUP_META,
            },
            "split": {"method": self.cfg.split, **self.split_ranges(counts)},
            "subsampled": self.writer.subsampled,
            "pii": {"action": self.mapping.pii, "values": self.counts["pii_values"], "first": self.pii},
            "rejected": {**self.rejections.summary(), "file": paths.REJECTED_ROWS},
            "leakage": {
                "warnings": warnings,
                "skipped": skipped,
                "thresholds": {"min_auc": MIN_AUC, "min_rows": MIN_ROWS, "min_share": MIN_SHARE},
            },
            "memory": {"chunk_rows": self.cfg.chunk_rows, "cards": len(self.history.cards)},
        }

    def split_ranges(self, counts: dict[str, Any]) -> dict[str, Any]:
        """Rows per split and, for a split by time, the first and last time in each."""
        sizes = {s: sum(sum(v.values()) for v in counts.get(s, {}).values()) for s in paths.SPLITS}
        if self.cfg.split != "time":
            return {"rows": sizes}
        times, start, ranges = self.table.numbers["time"], 0, {}
        for split in paths.SPLITS:
            if sizes[split]:
                first, last = times[start], times[start + sizes[split] - 1]
                ranges[split] = [_iso(first), _iso(last)]
            start += sizes[split]
        return {"rows": sizes, "time_ranges": ranges}


def _warmup_meta(row: LogRow, txn: dict[str, Any], observed_days: int) -> dict[str, Any]:
    return {
        "transaction_id": txn["transaction_id"],
        "label": row.label,
        "source_row": row.number,
        "warmup": True,
        "history_count": txn["customer"]["history_count"],
        "observed_days": observed_days,
        "transaction": txn,
    }


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None).isoformat()
