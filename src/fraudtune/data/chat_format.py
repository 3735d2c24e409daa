"""One line of a chat JSONL file against the OpenAI fine-tuning format and the SPEC 2 answer.

{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}: no other keys, no empty content,
at least one user turn, the assistant's answer last, and that answer parses as label, score, flags, reasoning.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fraudtune.data.chat import parse_answer
from fraudtune.data.schema import MAX_LINE_BYTES
from fraudtune.profile import Profile

ROLES = ("system", "user", "assistant")


@dataclass
class LineCheck:
    """The parsed object (None if unreadable) and (field, problem) errors and warnings."""

    obj: Any
    errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)


def check_line(line: bytes, profile: Profile) -> LineCheck:
    """Decode, parse and check one non-blank line."""
    if len(line) > MAX_LINE_BYTES:
        return LineCheck(None, [("record", f"line is {len(line):,} bytes, over the {MAX_LINE_BYTES:,} limit")])
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return LineCheck(None, [("record", f"not UTF-8 (byte {exc.start})")])
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        return LineCheck(None, [("record", f"invalid JSON ({getattr(exc, 'msg', str(exc))})")])
    check = LineCheck(obj, format_problems(obj))
    if not check.errors:
        _check_answer(obj["messages"], profile, check)
    return check


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def format_problems(obj: Any) -> list[tuple[str, str]]:
    """(field, problem) pairs of a parsed line against the OpenAI chat format (training checks its splits too)."""
    if not isinstance(obj, dict):
        return [("record", f"expected a JSON object, got {type(obj).__name__}")]
    problems = [
        (str(k)[:40], "unknown key; the OpenAI chat format has only 'messages'") for k in obj if k != "messages"
    ]
    messages = obj.get("messages")
    if messages is None:
        return problems + [("messages", "missing")]
    if not isinstance(messages, list) or not messages:
        return problems + [("messages", "expected a non-empty list of {role, content} objects")]
    for i, m in enumerate(messages):
        problems += _message_problems(i, m)
    if problems:
        return problems
    if not any(m["role"] == "user" for m in messages):
        problems.append(("messages", "no user message"))
    last = messages[-1]["role"]
    if last != "assistant":
        problems.append(
            (
                f"messages[{len(messages) - 1}].role",
                f"last message is from '{last}'; the assistant's answer must come last",
            )
        )
    return problems


def _message_problems(i: int, m: Any) -> list[tuple[str, str]]:
    where = f"messages[{i}]"
    if not isinstance(m, dict):
        return [(where, f"expected an object with role and content, got {type(m).__name__}")]
    problems = [
        (f"{where}.{str(k)[:40]}", "unknown key; a message has only role and content")
        for k in m
        if k not in ("role", "content")
    ]
    problems += [(f"{where}.{k}", "missing") for k in ("role", "content") if k not in m]
    if "role" in m and m["role"] not in ROLES:
        problems.append((f"{where}.role", f"unknown role {str(m['role'])[:40]!r}; expected system, user or assistant"))
    content = m.get("content")
    if "content" in m and not isinstance(content, str):
        problems.append((f"{where}.content", f"expected a string, got {type(content).__name__}"))
    elif isinstance(content, str) and not content.strip():
        problems.append((f"{where}.content", "empty"))
    return problems


def _check_answer(messages: list[dict[str, str]], profile: Profile, check: LineCheck) -> None:
    where = f"messages[{len(messages) - 1}].content"
    parsed = parse_answer(messages[-1]["content"], profile)
    if parsed.unknown_flags:  # another profile's flags: worth a look, not fatal
        check.warnings.append((where, f"red flag head(s) not in the profile: {'; '.join(parsed.unknown_flags)[:120]}"))
    structural = [p for p in (parsed.error or "").split("; ") if p and not p.startswith("unknown red flag")]
    if structural:
        check.errors.append((where, f"not a SPEC 2 answer ({'; '.join(structural)})"))
