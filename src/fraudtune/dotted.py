"""Dotted keys ('train.lr', 'customer.avg_amount') into nested dicts: the one getter and setter every stage uses."""

from __future__ import annotations

from typing import Any

MISSING = object()


def get_dotted(obj: Any, key: str, default: Any = None) -> Any:
    """obj['a']['b'] for 'a.b'; `default` where a part is missing or a node is not a mapping."""
    node = obj
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def set_dotted(obj: dict[str, Any], key: str, value: Any) -> None:
    """obj['a']['b'] = value for 'a.b', creating the sections on the way; a part that holds a non-mapping
    raises ValueError naming it."""
    *sections, leaf = key.split(".")
    node = obj
    for part in sections:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"'{part}' is not a section")
    node[leaf] = value


def text_fields(obj: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """(dotted field, value) of every string in a nested record."""
    out = []
    for key, value in obj.items():
        if isinstance(value, dict):
            out += text_fields(value, f"{prefix}{key}.")
        elif isinstance(value, str):
            out.append((f"{prefix}{key}", value))
    return out
