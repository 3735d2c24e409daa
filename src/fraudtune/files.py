"""Atomic writes (temp file + rename) so a killed stage never leaves a half-written artifact."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from fraudtune.errors import FraudtuneError

_UMASK = os.umask(0)
os.umask(_UMASK)


def write_text_atomic(path: Path, text: str) -> None:
    """Write text to a temp file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise FraudtuneError(f"{path}: cannot write here ({exc.strerror}); pass a writable output path") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; artifacts get the usual permissions
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise FraudtuneError(f"{path}: write failed ({exc.strerror}); nothing was replaced") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_output_path(path: Path, inputs: Iterable[Path] = ()) -> None:
    """Fail now, before any long work, where an output could not be written later: a folder, a place where
    nothing can be created, or one of the command's own inputs (it would be overwritten)."""
    path = Path(path)
    for source in inputs:
        if Path(source).exists() and path.exists() and os.path.samefile(source, path):
            raise FraudtuneError(f"{path}: is also the input; write the output to another file")
    if path.is_dir():
        raise FraudtuneError(f"{path}: is a folder; pass a file path for the output")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise FraudtuneError(f"{path}: cannot write here ({exc.strerror}); pass a writable output path") from exc
    os.close(fd)
    os.unlink(probe)


def write_json(path: Path, obj: Any) -> None:
    """Atomic pretty JSON."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    """Atomic JSONL, one compact object per line."""
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False, default=_json_default) + "\n" for r in rows))


def write_yaml(path: Path, obj: Any) -> None:
    """Atomic YAML."""
    write_text_atomic(path, yaml.safe_dump(obj, sort_keys=False, allow_unicode=True))


def append_jsonl(path: Path, row: Any) -> None:
    """Append one line (metrics.jsonl is append-only; a torn last line is skipped by read_jsonl_lenient)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, default=_json_default) + "\n")


def read_user_text(path: Path, what: str) -> str:
    """A text file the user points at (config, profile, mapping): a folder, an unreadable or a binary file is a
    one-line error, not a traceback."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FraudtuneError(f"{path}: not a UTF-8 text file (byte {exc.start}); expected a {what}") from exc
    except OSError as exc:
        raise FraudtuneError(f"{path}: cannot read ({exc.strerror}); expected a {what}") from exc


def read_user_bytes(path: Path, what: str) -> bytes:
    """The bytes of an input file the user points at: unreadable (permissions, a folder) is a one-line error."""
    path = Path(path)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FraudtuneError(f"{path}: cannot read ({exc.strerror}); expected {what}") from exc


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line report as one line: 'line 1, column 7: expected ',' or ']', but got ...'."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return where + " ".join(str(problem).split())


def read_json(path: Path) -> Any:
    """Read JSON, with a clear error on a missing or damaged file."""
    path = Path(path)
    if not path.exists():
        raise FraudtuneError(f"{path}: not found; run the stage that writes it first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FraudtuneError(f"{path}: damaged JSON ({exc}); delete it and rerun the stage that writes it") from exc


def read_jsonl(path: Path) -> list[Any]:
    """Read a JSONL file written by fraudtune; any bad line is an error naming the line."""
    path = Path(path)
    if not path.exists():
        raise FraudtuneError(f"{path}: not found")
    rows = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise FraudtuneError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from exc
    return rows


def read_jsonl_lenient(path: Path) -> list[Any]:
    """Read an append-only log, skipping a torn last line left by a kill."""
    rows = []
    if not Path(path).exists():
        return rows
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def progress(iterable: Any = None, **kwargs: Any) -> Any:
    """A tqdm bar that also reaches a log file: redrawn every 2 s on a terminal, a line every 30 s elsewhere
    (a batch job's log shows how far a long import got); nothing for work done within 5 s."""
    import sys

    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(iterable, mininterval=2 if tty else 30, delay=5, disable=False, **kwargs)
