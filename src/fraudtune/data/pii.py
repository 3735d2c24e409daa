"""Find and mask personal data in training text: card numbers (Luhn-valid), emails, phone numbers, SSN-like ids.

Training calls `find_pii` and refuses data that still holds any (unless data.allow_pii); `fraudtune data validate
--scrub` writes a masked copy with `scrub`.
"""

from __future__ import annotations

import re

# 13-19 digits, optionally grouped by a separator between any two of them: one to three spaces or tabs, a dash,
# a dot or a slash (4111 1111 1111 1111, 4111-1111-1111-1111, 4111.1111.1111.1111, 4111/1111/1111/1111,
# 4111  1111 1111 1111)
_CARD_SEPARATOR = r"(?:[ \t]{1,3}|[-./])"
_CARD = re.compile(rf"(?<![\w-])\d(?:{_CARD_SEPARATOR}?\d){{12,18}}(?![\w-])")
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?!\w)")
_SSN = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")
# +1 415 555 0100, (415) 555-0100, 415.555.0100, +44 20 7946 0958
_PHONE = re.compile(
    r"(?:(?<![\w+])\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,3}"
    r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|(?<![\w+])\d{3}[.-]\d{3}[.-]\d{4})(?![\w-])"
)
MASKS = {"card": "[CARD]", "email": "[EMAIL]", "ssn": "[SSN]", "phone": "[PHONE]"}


def luhn_ok(digits: str) -> bool:
    """The check digit card numbers carry (ISO/IEC 7812)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def find_pii(text: str) -> list[tuple[str, tuple[int, int]]]:
    """(kind, (start, end)) of every finding, in text order; kinds are card, email, ssn, phone."""
    found: list[tuple[str, tuple[int, int]]] = []

    def add(kind: str, span: tuple[int, int]) -> None:
        if not any(span[0] < end and start < span[1] for _, (start, end) in found):
            found.append((kind, span))

    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            add("card", m.span())
    for kind, pattern in (("email", _EMAIL), ("ssn", _SSN), ("phone", _PHONE)):
        for m in pattern.finditer(text):
            if kind != "phone" or 8 <= sum(ch.isdigit() for ch in m.group()) <= 15:
                add(kind, m.span())
    return sorted(found, key=lambda f: f[1])


def scrub(text: str) -> str:
    """The text with every finding replaced by its mask ([CARD], [EMAIL], [SSN], [PHONE]).

    Repeated until nothing is found: a mask can expose a neighbour that was glued to the first finding."""
    while findings := find_pii(text):
        for kind, (start, end) in reversed(findings):
            text = text[:start] + MASKS[kind] + text[end:]
    return text
