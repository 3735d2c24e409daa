"""Bad input through the CLI, one row per kind (PEFT's TEST_CASES style).

Every row: exit code != 0; stderr holds exactly one `error: ...` line, or only the per-record
`file:line: field: problem` lines (plus the "nothing written" line); no traceback; and an output that existed
before the command is byte-for-byte unchanged.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import TINY_CONFIG
from spec_oracle import REPO, demo_dataset, sample_txn

from fraudtune import paths
from fraudtune.cli import main
from fraudtune.manifest import write_manifest

PREVIOUS = b'{"previous": "output that must survive a failed command"}\n'
RECORD_LINE = re.compile(r"^\S.*:\d+: [\w.\[\]-]+: .+$")
SUMMARY_LINE = re.compile(r"^\S.*: no valid (rows|transactions); .+$")
CSV = REPO / "tests" / "data" / "transactions.csv"
CSV_MAP = REPO / "configs" / "csv_mapping.example.yaml"
CHAT_LINES = (demo_dataset() / "train.jsonl").read_bytes().splitlines()[:2]


@dataclass(frozen=True)
class Ctx:
    """What a row's builder gets: its own folder and the shared trained tiny run (never written to)."""

    tmp: Path
    run: Path

    @property
    def adapter(self) -> str:
        return str(self.run / paths.ADAPTER_DIR)

    def copy_adapter(self) -> Path:
        target = self.tmp / "adapter"
        shutil.copytree(self.run / paths.ADAPTER_DIR, target)
        return target


@dataclass(frozen=True)
class Case:
    build: Callable[[Ctx], list[str]]  # writes the bad input under ctx.tmp, returns the CLI arguments
    expected: str  # a line of the error output; {tmp} is the row's folder
    keep: str | None = None  # a file under {tmp} that exists before the command and must not change
    stream: str = "err"  # validate reports on stdout
    patch: Callable[[pytest.MonkeyPatch], None] | None = None


# ---------------------------------------------------------------- builders


def _txn(**changes) -> dict:
    txn = copy.deepcopy(sample_txn())
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = txn
        for part in parents:
            node = node[part]
        if value is _DROP:
            del node[leaf]
        else:
            node[leaf] = value
    return txn


_DROP = object()
GOOD_LINE = json.dumps(sample_txn()).encode()


def predict(
    content: bytes | None = None, *extra: str, adapter: Callable[[Ctx], str] | None = None, source: str = "in.jsonl"
):
    """`fraudtune predict` on tmp/<source> (holding `content`) writing tmp/preds.jsonl."""

    def build(ctx: Ctx) -> list[str]:
        if content is not None:
            (ctx.tmp / source).write_bytes(content)
        folder = adapter(ctx) if adapter else ctx.adapter
        out = ["predict", "--adapter", str(folder), "--input", str(ctx.tmp / source)]
        return [*out, "--output", str(ctx.tmp / "preds.jsonl"), "--no-explain", *extra]

    return build


def record(obj) -> bytes:
    return json.dumps(obj).encode() + b"\n"


def adapter_with(change: Callable[[Path], None]) -> Callable[[Ctx], str]:
    def make(ctx: Ctx) -> str:
        folder = ctx.copy_adapter()
        change(folder)
        return str(folder)

    return make


def _truncate(folder: Path) -> None:
    weights = folder / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])


def _other_base(folder: Path) -> None:
    """A genuine-looking adapter (manifest rewritten) whose run config names a wider tiny base model."""
    cfg_path = folder / "fraudtune_config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["model"]["tiny_hidden"] = 32
    cfg_path.write_text(yaml.safe_dump(cfg))
    write_manifest(folder)


def train(*args: str, data: Callable[[Path], None] | None = None):
    """`fraudtune train` into tmp/run (with the tiny run's data, changed by `data`, when given)."""

    def build(ctx: Ctx) -> list[str]:
        run = ctx.tmp / "run"
        if data is not None:
            shutil.copytree(ctx.run / paths.DATA_DIR, run / paths.DATA_DIR)
            data(run / paths.DATA_DIR)
        return ["train", "--config", str(TINY_CONFIG), "--run-dir", str(run), *args]

    return build


def config_file(text: str | bytes):
    def build(ctx: Ctx) -> list[str]:
        path = ctx.tmp / "cfg.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["train", "--config", str(path), "--run-dir", str(ctx.tmp / "run")]

    return build


def first_train_row(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(data_dir: Path) -> None:
        path = data_dir / "train.jsonl"
        lines = path.read_text().splitlines()
        row = json.loads(lines[0])
        change(row)
        path.write_text("\n".join([json.dumps(row), *lines[1:]]) + "\n")

    return edit


def validate(line: bytes):
    def build(ctx: Ctx) -> list[str]:
        path = ctx.tmp / "chat.jsonl"
        path.write_bytes(CHAT_LINES[0] + b"\n" + line + b"\n")
        return ["data", "validate", str(path), "--no-tokens"]

    return build


def chat_edit(change: Callable[[dict], None]) -> bytes:
    row = json.loads(CHAT_LINES[1])
    change(row)
    return json.dumps(row).encode()


def import_csv(content: bytes, mapping: dict | bytes | None = None):
    """`fraudtune data import-csv` of tmp/cases.csv into tmp/out (which holds a previous train.jsonl)."""

    def build(ctx: Ctx) -> list[str]:
        path = ctx.tmp / "cases.csv"
        path.write_bytes(content)
        map_path = CSV_MAP
        if mapping is not None:
            map_path = ctx.tmp / "map.yaml"
            map_path.write_bytes(mapping if isinstance(mapping, bytes) else yaml.safe_dump(mapping).encode())
        return ["data", "import-csv", str(path), "--map", str(map_path), "--out", str(ctx.tmp / "out")]

    return build


CSV_HEADER, *CSV_ROWS = CSV.read_bytes().splitlines()


def csv_rows(*rows: bytes, header: bytes = CSV_HEADER) -> bytes:
    return b"\n".join([header, *rows]) + b"\n"


def generate(*args: str):
    def build(ctx: Ctx) -> list[str]:
        return ["data", "generate", "--config", str(TINY_CONFIG), "--out", str(ctx.tmp / "out"), *args]

    return build


def _disk_full(monkeypatch: pytest.MonkeyPatch) -> None:
    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)


def _output_is_folder(ctx: Ctx) -> list[str]:
    (ctx.tmp / "in.jsonl").write_bytes(GOOD_LINE + b"\n")
    return ["predict", "--adapter", ctx.adapter, "--input", str(ctx.tmp / "in.jsonl"), "--output", str(ctx.tmp)]


def _output_under_a_file(ctx: Ctx) -> list[str]:
    (ctx.tmp / "in.jsonl").write_bytes(GOOD_LINE + b"\n")
    out = ctx.tmp / "preds.jsonl" / "p.jsonl"  # preds.jsonl is a file: nothing can be created under it
    return ["predict", "--adapter", ctx.adapter, "--input", str(ctx.tmp / "in.jsonl"), "--output", str(out)]


def _unreadable(name: str) -> Callable[[pytest.MonkeyPatch], None]:
    """The file `name` exists but reading it is refused (as chmod 000 does for a user other than root)."""

    def patch(monkeypatch: pytest.MonkeyPatch) -> None:
        read_bytes = Path.read_bytes

        def refuse(self: Path) -> bytes:
            if self.name == name:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
            return read_bytes(self)

        monkeypatch.setattr(Path, "read_bytes", refuse)

    return patch


IN = "{tmp}/in.jsonl"
TEN_MB = b'{"transaction_id": "' + b"x" * 10_000_000 + b'"}'
CATEGORIES = "grocery, restaurant, gas, pharmacy, utilities, subscription, travel, hotel, clothing, entertainment"

# ---------------------------------------------------------------- the table

CASES: dict[str, Case] = {
    # transactions JSONL (`fraudtune predict`): file-level problems
    "empty file": Case(
        predict(b""), f"error: {IN}: file is empty; expected one JSON transaction per line", "preds.jsonl"
    ),
    "blank lines only": Case(predict(b"\n \n\n"), f"error: {IN}: file is empty", "preds.jsonl"),
    "binary file": Case(
        predict(b"\x00\x01\x02\xff" * 64), f"error: {IN}: binary file; expected UTF-8 JSON lines", "preds.jsonl"
    ),
    "input missing": Case(predict(None), f"error: {IN}: file not found", "preds.jsonl"),
    "input not readable": Case(
        predict(GOOD_LINE + b"\n"),
        f"error: {IN}: cannot read (Permission denied); expected a JSONL file of transactions",
        "preds.jsonl",
        patch=_unreadable("in.jsonl"),
    ),
    "input is a folder": Case(
        predict(None, source="."),
        "error: {tmp}: is a folder, expected a JSONL file",
        "preds.jsonl",
    ),
    # transactions JSONL: per-record problems (every line bad: the previous predictions are kept)
    "non-UTF-8 line": Case(
        predict(b'{"transaction_id": "\xff\xfe"}\n'), f"{IN}:1: record: not UTF-8 (byte 20)", "preds.jsonl"
    ),
    "truncated last line": Case(predict(GOOD_LINE + b"\n" + GOOD_LINE[:90]), f"{IN}:2: record: invalid JSON ("),
    "10 MB line": Case(
        predict(TEN_MB + b"\n"),
        f"{IN}:1: record: line is {len(TEN_MB):,} bytes, over the 1,000,000 limit",
        "preds.jsonl",
    ),
    "JSON array, not an object": Case(
        predict(b"[1, 2]\n"), f"{IN}:1: record: expected a JSON object, got a list", "preds.jsonl"
    ),
    "JSON string, not an object": Case(
        predict(b'"T-0001"\n'), f"{IN}:1: record: expected a JSON object, got a string", "preds.jsonl"
    ),
    "missing key": Case(predict(record(_txn(amount=_DROP))), f"{IN}:1: amount: missing", "preds.jsonl"),
    "missing nested key": Case(
        predict(record(_txn(customer__home_country=_DROP))), f"{IN}:1: customer.home_country: missing", "preds.jsonl"
    ),
    "extra key": Case(predict(record(_txn(mcc="5411"))), f"{IN}:1: mcc: unknown field", "preds.jsonl"),
    "wrong type (string amount)": Case(
        predict(record(_txn(amount="12.50"))), f"{IN}:1: amount: expected a number, got a string", "preds.jsonl"
    ),
    "wrong type (object field)": Case(
        predict(record(_txn(velocity=[1, 2]))), f"{IN}:1: velocity: expected an object, got a list", "preds.jsonl"
    ),
    "negative amount": Case(predict(record(_txn(amount=-5))), f"{IN}:1: amount: must be > 0, got -5", "preds.jsonl"),
    "zero amount": Case(predict(record(_txn(amount=0))), f"{IN}:1: amount: must be > 0, got 0", "preds.jsonl"),
    "NaN amount": Case(
        predict(GOOD_LINE.replace(b'"amount": 54.2', b'"amount": NaN') + b"\n"),
        f"{IN}:1: record: invalid JSON (NaN is not a valid number)",
        "preds.jsonl",
    ),
    "inf amount": Case(
        predict(GOOD_LINE.replace(b'"amount": 54.2', b'"amount": Infinity') + b"\n"),
        f"{IN}:1: record: invalid JSON (Infinity is not a valid number)",
        "preds.jsonl",
    ),
    "amount too large": Case(
        predict(record(_txn(amount=1e300))), f"{IN}:1: amount: must be <= 1,000,000,000, got 1e+300", "preds.jsonl"
    ),
    "customer average too large": Case(
        predict(record(_txn(customer__avg_amount=1e12))),
        f"{IN}:1: customer.avg_amount: must be <= 1,000,000,000, got 1e+12",
        "preds.jsonl",
    ),
    "unknown category": Case(
        predict(record(_txn(merchant__category="toys"))),
        f"{IN}:1: merchant.category: unknown value 'toys'; expected one of {CATEGORIES}",
        "preds.jsonl",
    ),
    "unknown channel": Case(
        predict(record(_txn(channel="phone"))),
        f"{IN}:1: channel: unknown value 'phone'; expected one of in_person, online, recurring, atm",
        "preds.jsonl",
    ),
    "bad timestamp": Case(
        predict(record(_txn(timestamp="13/04/2026 2:30"))),
        f"{IN}:1: timestamp: not an ISO-8601 date-time: '13/04/2026 2:30'",
        "preds.jsonl",
    ),
    "unknown txn code": Case(
        predict(record(_txn(txn_code="TC-99"))),
        f"{IN}:1: txn_code: unknown value 'TC-99'; expected one of TC-01",
        "preds.jsonl",
    ),
    "bad country code": Case(
        predict(record(_txn(merchant__country="USA"))),
        f"{IN}:1: merchant.country: expected an ISO-3166 alpha-2 code like US, got 'USA'",
        "preds.jsonl",
    ),
    "predict batch size 0": Case(
        predict(GOOD_LINE + b"\n", "--batch-size", "0"), "error: --batch-size 0: must be at least 1", "preds.jsonl"
    ),
    # adapters
    "adapter missing": Case(
        predict(GOOD_LINE + b"\n", adapter=lambda ctx: str(ctx.tmp / "nope")),
        "error: {tmp}/nope: adapter folder not found; train first or pass RUN/fraud-lora-adapter",
        "preds.jsonl",
    ),
    "adapter truncated": Case(
        predict(GOOD_LINE + b"\n", adapter=adapter_with(_truncate)),
        "error: {tmp}/adapter/adapter_model.safetensors: does not match its sha256 in manifest.json "
        "(truncated or replaced)",
        "preds.jsonl",
    ),
    "adapter weights deleted": Case(
        predict(GOOD_LINE + b"\n", adapter=adapter_with(lambda f: (f / "adapter_model.safetensors").unlink())),
        "error: {tmp}/adapter/adapter_model.safetensors: missing (listed in manifest.json); the artifact is incomplete",
        "preds.jsonl",
    ),
    "adapter without manifest": Case(
        predict(GOOD_LINE + b"\n", adapter=adapter_with(lambda f: (f / "manifest.json").unlink())),
        "error: {tmp}/adapter: manifest.json missing; the folder was not written completely by fraudtune",
        "preds.jsonl",
    ),
    "adapter holding a pickle": Case(
        predict(GOOD_LINE + b"\n", adapter=adapter_with(lambda f: (f / "adapter_model.bin").write_bytes(b"\x80\x04."))),
        "error: {tmp}/adapter: holds pickle weights (.bin/.pt); only safetensors adapters are loaded",
        "preds.jsonl",
    ),
    "adapter for another base model": Case(
        predict(GOOD_LINE + b"\n", adapter=adapter_with(_other_base)),
        "error: {tmp}/adapter: adapter does not fit base model tiny-random (",
        "preds.jsonl",
    ),
    "not an adapter folder": Case(
        predict(GOOD_LINE + b"\n", adapter=lambda ctx: str(ctx.tmp)),
        "error: {tmp}: fraudtune_config.yaml missing; not an adapter written by fraudtune train",
        "preds.jsonl",
    ),
    # output paths
    "output path is a folder": Case(_output_is_folder, "error: {tmp}: is a folder; pass a file path for the output"),
    "output is the input": Case(
        lambda ctx: [
            *predict(GOOD_LINE + b"\n")(ctx)[:-3],
            "--output",
            str(ctx.tmp / "in.jsonl"),
            "--no-explain",
        ],
        f"error: {IN}: is also the input; write the output to another file",
        "in.jsonl",
    ),
    "output under a file (not writable)": Case(
        _output_under_a_file, "error: {tmp}/preds.jsonl/p.jsonl: cannot write here (File exists)", "preds.jsonl"
    ),
    "disk full on write": Case(
        predict(GOOD_LINE + b"\n"),
        "error: {tmp}/preds.jsonl: write failed (No space left on device); nothing was replaced",
        "preds.jsonl",
        patch=_disk_full,
    ),
    # chat rows (`fraudtune data validate` reports on stdout; `fraudtune train` refuses them)
    "validate a file that is not readable": Case(
        validate(CHAT_LINES[1]),
        "error: {tmp}/chat.jsonl: cannot read (Permission denied)",
        patch=_unreadable("chat.jsonl"),
    ),
    "chat row with a wrong role": Case(
        validate(chat_edit(lambda r: r["messages"][1].update(role="bot"))),
        "  {tmp}/chat.jsonl:2: messages[1].role: unknown role 'bot'; expected system, user or assistant",
        stream="out",
    ),
    "chat row with empty content": Case(
        validate(chat_edit(lambda r: r["messages"][1].update(content=" "))),
        "  {tmp}/chat.jsonl:2: messages[1].content: empty",
        stream="out",
    ),
    "train on a chat row with a wrong role": Case(
        train(data=first_train_row(lambda r: r["messages"][1].update(role="bot"))),
        "error: {tmp}/run/data/train.jsonl:1: messages[1].role: unknown role 'bot'; expected system, user or "
        "assistant; check it with `fraudtune data validate`",
    ),
    "train on a chat row with empty content": Case(
        train(data=first_train_row(lambda r: r["messages"][2].update(content=""))),
        "error: {tmp}/run/data/train.jsonl:1: messages[2].content: empty",
    ),
    "train on a row without messages": Case(
        train(data=first_train_row(lambda r: r.pop("messages"))),
        "error: {tmp}/run/data/train.jsonl:1: messages: missing",
    ),
    # CSV import (tmp/out holds a previous data set)
    "CSV missing columns": Case(
        import_csv(csv_rows(*CSV_ROWS, header=CSV_HEADER.replace(b"is_fraud", b"fraud"))),
        "error: {tmp}/cases.csv:1: header: missing column(s) 'is_fraud' (label)",
        "out/train.jsonl",
    ),
    "CSV wrong delimiter": Case(
        import_csv(csv_rows(*(r.replace(b",", b";") for r in CSV_ROWS), header=CSV_HEADER.replace(b",", b";"))),
        "the file looks ';'-separated: set delimiter: ';' in the mapping",
        "out/train.jsonl",
    ),
    "CSV unmapped label": Case(
        import_csv(csv_rows(CSV_ROWS[0][:-1] + b"maybe")),
        "{tmp}/cases.csv:2: label: value 'maybe' (column 'is_fraud') is not in the mapping's label.values",
        "out/train.jsonl",
    ),
    "CSV bad number": Case(
        import_csv(csv_rows(CSV_ROWS[0].replace(b",54.20,", b",54.2x,", 1))),
        "{tmp}/cases.csv:2: amount: not a number: '54.2x' (column 'amount')",
        "out/train.jsonl",
    ),
    "CSV row with a field too many": Case(
        import_csv(csv_rows(CSV_ROWS[0].replace(b",54.20,", b",54,20,", 1))),
        "{tmp}/cases.csv:2: row: 23 fields, the header has 22",
        "out/train.jsonl",
    ),
    "CSV not UTF-8": Case(
        import_csv(csv_rows(CSV_ROWS[0].replace(b"FreshMart", b"Fr\xe9shMart"))),
        "error: {tmp}/cases.csv: not UTF-8 (byte",
        "out/train.jsonl",
    ),
    "CSV empty file": Case(import_csv(b""), "error: {tmp}/cases.csv: empty file", "out/train.jsonl"),
    "CSV mapping is binary": Case(
        import_csv(csv_rows(*CSV_ROWS), b"\xff\xfe\x00binary"),
        "error: {tmp}/map.yaml: not a UTF-8 text file (byte 0); expected a YAML column mapping",
        "out/train.jsonl",
    ),
    # run config (`fraudtune train`: nothing in tmp/run may change)
    "resume a run that does not exist": Case(
        lambda ctx: ["train", "--config", str(TINY_CONFIG), "--run-dir", str(ctx.tmp / "none"), "--resume"],
        "error: {tmp}/none: no run to resume (no config.yaml); drop --resume to start one",
    ),
    "data folder generated for another data.n": Case(
        train("--set", "data.n=16", data=lambda folder: None),
        "generated with other settings than the config asks (data.n=16 vs",
        "run/config.yaml",
    ),
    "config names a profile that does not exist": Case(
        train("--set", "data.profile=/nonexistent.yaml"), "error: /nonexistent.yaml", "run/config.yaml"
    ),
    "config LoRA target that names no module": Case(
        train("--set", "lora.target_modules=[nonexistent_proj]"),
        "error: lora.target_modules (['nonexistent_proj']): no such module in the model; its linear layers are",
    ),
    "config with an unknown key": Case(
        config_file("lora:\n  rank: 8\n"), "error: {tmp}/cfg.yaml: lora.rank: unknown key", "run/config.yaml"
    ),
    "config r=0": Case(
        train("--set", "lora.r=0"), "lora.r (0): Input should be greater than or equal to 1", "run/config.yaml"
    ),
    "config negative learning rate": Case(
        train("--set", "train.lr=-0.0001"), "train.lr (-0.0001): Input should be greater than 0", "run/config.yaml"
    ),
    "config batch size 0": Case(
        train("--set", "train.batch_size=0"),
        "train.batch_size (0): Input should be greater than or equal to 1",
        "run/config.yaml",
    ),
    "config wrong type": Case(
        train("--set", "train.epochs=many"), "train.epochs ('many'): Input should be a valid integer", "run/config.yaml"
    ),
    "config invalid YAML": Case(config_file("lora: [r: 8\n"), "error: {tmp}/cfg.yaml: invalid YAML", "run/config.yaml"),
    "config not a mapping": Case(
        config_file("- lora\n"),
        "error: {tmp}/cfg.yaml: a config must be a mapping of sections, got list",
        "run/config.yaml",
    ),
    "config is binary": Case(
        config_file(b"\x7fELF\x02\x01\x01\x00\xff\xfe"),
        "error: {tmp}/cfg.yaml: not a UTF-8 text file (byte 8); expected a YAML run config",
        "run/config.yaml",
    ),
    "config is a folder": Case(
        lambda ctx: ["train", "--config", str(ctx.tmp), "--run-dir", str(ctx.tmp / "run")],
        "error: {tmp}: cannot read (Is a directory); expected a YAML run config",
        "run/config.yaml",
    ),
    "config override without =": Case(
        train("--set", "lora.r"), "error: override 'lora.r': expected section.key=value, e.g. lora.r=16"
    ),
    # data generation
    "generate too few examples": Case(
        generate("--n", "3"), "error: --n 3: need at least 8 examples (one per category and split)", "out/train.jsonl"
    ),
    "generate --n 0": Case(generate("--n", "0"), "error: --n 0: need at least 8 examples", "out/train.jsonl"),
    "profile is binary": Case(
        generate("--profile", "/bin/sh"),
        "error: /bin/sh: not a UTF-8 text file",
        "out/train.jsonl",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_clear_error_and_loses_nothing(case: Case, trained_tiny_run, tmp_path, capsys, monkeypatch):
    ctx = Ctx(tmp_path, trained_tiny_run)
    argv = case.build(ctx)
    kept = tmp_path / case.keep if case.keep else None
    if kept is not None and not kept.exists():
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_bytes(PREVIOUS)
    before = kept.read_bytes() if kept else None
    if case.patch:
        case.patch(monkeypatch)
    code = main(argv)
    monkeypatch.undo()
    out, err = capsys.readouterr()
    expected = case.expected.format(tmp=tmp_path)

    assert code != 0
    assert "Traceback" not in out + err
    shown = (out if case.stream == "out" else err).splitlines()
    assert any(expected in line for line in shown), f"{expected!r} not in:\n{out if case.stream == 'out' else err}"
    lines = [x for x in err.splitlines() if x.strip() and "%|" not in x]  # progress bars of a partly valid file
    if case.stream == "err":
        errors = [line for line in lines if line.startswith("error: ")]
        if errors:
            assert lines == errors and len(errors) == 1, err
        else:
            assert lines and all(RECORD_LINE.match(x) or SUMMARY_LINE.match(x) for x in lines), err
    if kept is not None:
        assert kept.read_bytes() == before, f"{case.keep} changed"
    assert not [p for p in tmp_path.rglob("*.tmp")], "a temp file was left behind"


def test_there_are_at_least_forty_kinds():
    assert len(CASES) >= 40


def test_the_reliability_page_lists_every_kind_with_its_message():
    from reliability_doc import DOC, case_groups, render

    assert [name for _, name in case_groups()] == list(CASES), "a case outside the table's groups"
    assert DOC.read_text(encoding="utf-8") == render(CASES), "run `python tests/reliability_doc.py`"


def test_debug_shows_the_traceback(tmp_path):
    """--debug re-raises the error (for bug reports); without it the CLI prints one line."""
    from fraudtune.errors import FraudtuneError

    with pytest.raises(FraudtuneError, match="lora.r"):
        main(["--debug", "train", "--set", "lora.r=0", "--run-dir", str(tmp_path)])
