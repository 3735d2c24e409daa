"""General-instruction Q&A pairs: the mixing strategy's replay data (disjoint from every forgetting test question)."""

from __future__ import annotations

from fraudtune.files import read_jsonl
from fraudtune.paths import PACKAGE_ROOT

GENERAL_INSTRUCTIONS = PACKAGE_ROOT / "resources" / "forgetting" / "general_instructions.jsonl"


def general_instruction_pairs() -> list[dict[str, str]]:
    """General Q&A pairs (question, answer) for the mixing strategy; disjoint from every test question."""
    return [{"question": r["question"], "answer": r["answer"]} for r in read_jsonl(GENERAL_INSTRUCTIONS)]
