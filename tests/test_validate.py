"""`fraudtune data validate` as users type it: one broken file per kind of error, exact `file:line: field` text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from statistics import mean

import pytest
from spec_oracle import demo_dataset, read_jsonl

from fraudtune.cli import main
from fraudtune.data.validate import validate

DATA = demo_dataset()
LINES = (DATA / "train.jsonl").read_bytes().splitlines()[:3]
EXAMPLE = json.loads(LINES[1])


def _edit(fn) -> bytes:
    """Line 2 of the test file, changed by `fn` (which gets a copy of a valid example)."""
    obj = json.loads(LINES[1])
    out = fn(obj)
    return json.dumps(obj if out is None else out).encode()


def _set(path: tuple, value):
    def fn(obj):
        node = obj
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return fn


def _user(text: str):
    return _set(("messages", 1, "content"), EXAMPLE["messages"][1]["content"] + " " + text)


LONG = b'{"messages": "' + b"a" * 1_000_001 + b'"}'
BROKEN_LINES = [
    ("invalid JSON", b'{"messages": [', "record: invalid JSON (Expecting value)"),
    ("NaN", b'{"messages": NaN}', "record: invalid JSON (NaN is not valid JSON)"),
    ("not an object", b"[1, 2]", "record: expected a JSON object, got list"),
    ("not UTF-8", b'{"messages": "\xff"}', "record: not UTF-8 (byte 14)"),
    ("over-long line", LONG, f"record: line is {len(LONG):,} bytes, over the 1,000,000 limit"),
    (
        "unknown top-level key",
        _edit(lambda o: {**o, "label": "FRAUD"}),
        "label: unknown key; the OpenAI chat format has only 'messages'",
    ),
    ("missing messages", _edit(lambda o: {}), "messages: missing"),
    (
        "empty messages",
        _edit(lambda o: {"messages": []}),
        "messages: expected a non-empty list of {role, content} objects",
    ),
    (
        "message not an object",
        _edit(_set(("messages", 1), "hi")),
        "messages[1]: expected an object with role and content, got str",
    ),
    (
        "unknown message key",
        _edit(_set(("messages", 2, "name"), "bot")),
        "messages[2].name: unknown key; a message has only role and content",
    ),
    ("missing role", _edit(lambda o: o["messages"][1].pop("role") and None), "messages[1].role: missing"),
    (
        "unknown role",
        _edit(_set(("messages", 1, "role"), "bot")),
        "messages[1].role: unknown role 'bot'; expected system, user or assistant",
    ),
    ("empty content", _edit(_set(("messages", 1, "content"), "  ")), "messages[1].content: empty"),
    (
        "content not a string",
        _edit(_set(("messages", 1, "content"), 5)),
        "messages[1].content: expected a string, got int",
    ),
    (
        "no user message",
        _edit(lambda o: {"messages": [o["messages"][0], o["messages"][2]]}),
        "messages: no user message",
    ),
    (
        "assistant not last",
        _edit(lambda o: {"messages": o["messages"][:2]}),
        "messages[1].role: last message is from 'user'; the assistant's answer must come last",
    ),
    (
        "answer not SPEC 2",
        _edit(_set(("messages", 2, "content"), "Looks fine to me.")),
        "messages[2].content: not a SPEC 2 answer (no FRAUD/LEGITIMATE label line; no 'Risk Score: "
        "0-100' line; no 'Red Flags: [...]' line)",
    ),
    ("exact duplicate", LINES[0], "messages: exact duplicate of line 1"),
]


def _write(path: Path, second: bytes) -> Path:
    path.write_bytes(LINES[0] + b"\n" + second + b"\n" + LINES[2] + b"\n")
    return path


def _run(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, list[str]]:
    code = main(["data", "validate", *args])
    return code, capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(("line", "expected"), [c[1:] for c in BROKEN_LINES], ids=[c[0] for c in BROKEN_LINES])
def test_broken_line_is_an_error_naming_file_line_and_field(tmp_path, capsys, line: bytes, expected: str) -> None:
    path = _write(tmp_path / "chat.jsonl", line)
    code, out = _run(capsys, str(path), "--no-tokens")
    assert code == 1
    assert f"  {path}:2: {expected}" in out
    assert out[-1].startswith("FAILED")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "file: empty; expected one chat example per line"),
        (b"\x00\x01binary", "file: binary data; expected UTF-8 JSON lines"),
    ],
    ids=["empty file", "binary file"],
)
def test_unreadable_file(tmp_path, capsys, content: bytes, problem: str) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_bytes(content)
    code, out = _run(capsys, str(path), "--no-tokens")
    assert code == 1 and f"  {path}:1: {problem}" in out


@pytest.mark.parametrize(
    ("text", "kind", "span"),
    [
        ("card 4111 1111 1111 1111", "card number", 5),
        ("mail jane.roe@example.com", "email address", 5),
        ("phone (415) 555-0100", "phone number", 6),
        ("ssn 123-45-6789", "SSN-like id", 4),
    ],
)
def test_personal_data_is_an_error_and_scrub_masks_it(tmp_path, capsys, text: str, kind: str, span: int) -> None:
    path = _write(tmp_path / "chat.jsonl", _edit(_user(text)))
    start = len(EXAMPLE["messages"][1]["content"]) + 1 + span
    end = start + len(text) - span
    code, out = _run(capsys, str(path), "--no-tokens")
    assert code == 1
    assert (
        f"  {path}:2: messages[1].content: personal data ({kind}) at characters {start}-{end}; rerun with --scrub"
        in out
    )

    code, out = _run(capsys, str(path), "--no-tokens", "--scrub")
    scrubbed = tmp_path / "chat.scrubbed.jsonl"
    assert code == 0 and any(str(scrubbed) in line for line in out)
    masked = read_jsonl(scrubbed)[1]["messages"][1]["content"]
    assert "[" in masked and text.split(" ", 1)[1] not in masked
    assert validate(scrubbed, count_tokens=False).ok


def test_near_duplicate_is_a_warning(tmp_path, capsys) -> None:
    first = json.loads(LINES[0])
    user = first["messages"][1]["content"].upper().replace("\n", "\n  ")
    path = _write(
        tmp_path / "chat.jsonl",
        _edit(lambda o: {"messages": [first["messages"][0], {"role": "user", "content": user}, o["messages"][2]]}),
    )
    code, out = _run(capsys, str(path), "--no-tokens")
    assert code == 0
    assert any(line.startswith(f"  {path}:2: messages: near-duplicate of line 1") for line in out)


def test_unknown_flag_head_is_a_warning(tmp_path, capsys) -> None:
    answer = "FRAUD\nRisk Score: 80\nRed Flags: [Moon phase (full)]\nReasoning: Odd."
    path = _write(tmp_path / "chat.jsonl", _edit(_set(("messages", 2, "content"), answer)))
    code, out = _run(capsys, str(path), "--no-tokens")
    assert code == 0
    assert f"  {path}:2: messages[2].content: red flag head(s) not in the profile: Moon phase (full)" in out


def _copy_data(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(DATA, target)
    return target


def test_generated_folder_is_clean(capsys) -> None:
    code, out = _run(capsys, str(DATA), "--no-tokens")
    assert code == 0 and out[-1] == "OK: 0 error(s), 0 warning(s)"
    assert any(line.split()[:2] == ["train.jsonl", "400"] for line in out)
    assert "  borderline               60         60      50%" in out


def test_leak_between_splits(tmp_path, capsys) -> None:
    data = _copy_data(tmp_path)
    train = (data / "train.jsonl").read_bytes().splitlines()
    val = (data / "val.jsonl").read_bytes().splitlines()
    (data / "val.jsonl").write_bytes(b"\n".join([*val[:-1], train[9]]) + b"\n")
    (data / "val.meta.jsonl").unlink()
    code, out = _run(capsys, str(data), "--no-tokens")
    assert code == 1
    assert (
        f"  {data / 'val.jsonl'}:{len(val)}: messages: same transaction as train.jsonl:10 (leak between splits)" in out
    )


def test_near_duplicate_transaction_between_splits(tmp_path, capsys) -> None:
    """Different text, but the metadata shows the same merchant, customer and hour with an amount 0.5% higher."""
    data = _copy_data(tmp_path)
    train_meta = read_jsonl(data / "train.meta.jsonl")
    val_meta = read_jsonl(data / "val.meta.jsonl")
    twin = json.loads(json.dumps(train_meta[4]["transaction"]))
    twin["amount"] = round(twin["amount"] * 1.005, 2)
    val_meta[0]["transaction"] = twin
    (data / "val.meta.jsonl").write_text("".join(json.dumps(m) + "\n" for m in val_meta))
    code, out = _run(capsys, str(data), "--no-tokens")
    assert code == 1
    assert (
        f"  {data / 'val.jsonl'}:1: transaction: near-duplicate of the transaction on train.jsonl:5 (same "
        "merchant, customer, hour; amount within 1%)"
    ) in out


def test_meta_label_must_match_the_answer(tmp_path, capsys) -> None:
    data = _copy_data(tmp_path)
    metas = read_jsonl(data / "test.meta.jsonl")
    flipped = {"FRAUD": "LEGITIMATE", "LEGITIMATE": "FRAUD"}
    metas[2]["label"] = flipped[metas[2]["label"]]
    (data / "test.meta.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metas))
    code, out = _run(capsys, str(data / "test.jsonl"), "--no-tokens")
    answer = flipped[metas[2]["label"]]
    assert code == 1
    assert (
        f"  {data / 'test.meta.jsonl'}:3: label: {metas[2]['label']} but the answer on test.jsonl:3 says {answer}"
        in out
    )


def test_meta_must_have_one_line_per_example(tmp_path, capsys) -> None:
    data = _copy_data(tmp_path)
    lines = (data / "test.meta.jsonl").read_text().splitlines()
    (data / "test.meta.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    code, out = _run(capsys, str(data / "test.jsonl"), "--no-tokens")
    assert code == 1
    assert (
        f"  {data / 'test.meta.jsonl'}:1: file: 49 records but test.jsonl has 50; the metadata must list the "
        "examples in the same order"
    ) in out


def test_missing_path(tmp_path, capsys) -> None:
    assert main(["data", "validate", str(tmp_path / "nope.jsonl"), "--no-tokens"]) == 1
    assert "nope.jsonl: not found" in capsys.readouterr().err


def test_token_counts_with_the_base_tokenizer(tmp_path, capsys, tokenizer) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_bytes(b"\n".join((DATA / "val.jsonl").read_bytes().splitlines()[:12]) + b"\n")
    lengths = [
        len(tokenizer.encode(tokenizer.apply_chat_template(c["messages"], tokenize=False), add_special_tokens=False))
        for c in read_jsonl(path)
    ]
    limit = sorted(lengths)[-3]  # the longest ones (two, or one if the next two tie) are over it
    over = [i for i, n in enumerate(lengths, 1) if n > limit]
    assert 1 <= len(over) <= 2
    code, out = _run(capsys, str(path), "--max-length", str(limit))
    assert code == 0
    row = next(line for line in out if line.startswith("chat.jsonl"))
    assert row.split()[:4] == ["chat.jsonl", "12", f"{min(lengths)}/{mean(lengths):.1f}/{max(lengths)}", str(len(over))]
    for line_no in over:
        assert (
            f"  {path}:{line_no}: messages: {lengths[line_no - 1]} tokens, over the limit of {limit}; training "
            "cuts the end of the answer" in out
        )


def test_declared_twins_are_not_near_duplicates(tmp_path) -> None:
    from fraudtune.config import DataConfig
    from fraudtune.data.generate import generate
    from fraudtune.paths import REPO_ROOT

    generate(tmp_path, REPO_ROOT / "configs/profiles/demo_issuer.yaml", 300, 5, DataConfig(twins=True))
    report = validate(tmp_path, count_tokens=False)
    assert report.ok and not [i for i in report.issues if "near-duplicate" in i.problem]
    train, meta_file = tmp_path / "train.jsonl", tmp_path / "train.meta.jsonl"
    metas = read_jsonl(meta_file)
    twin = next(i for i, m in enumerate(metas) if "twin_of" in m)
    anchor = next(i for i, m in enumerate(metas) if m["transaction_id"] == metas[twin]["twin_of"])
    lines = train.read_text().splitlines()
    row = json.loads(lines[anchor])
    row["messages"][1]["content"] = row["messages"][1]["content"].upper()  # same text up to case: near-duplicate
    lines[twin] = json.dumps(row)
    train.write_text("\n".join(lines) + "\n")

    def near_duplicates() -> list:
        return [i for i in validate(tmp_path, count_tokens=False).issues if "near-duplicate of line" in i.problem]

    assert not near_duplicates()  # declared as the anchor's twin
    del metas[twin]["twin_of"]
    meta_file.write_text("".join(json.dumps(m) + "\n" for m in metas))
    assert len(near_duplicates()) == 1  # the same pair, undeclared
