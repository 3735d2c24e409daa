"""Chat examples -> token ids, labels on the assistant answer only (SmolLM2's template has no generation markers)."""

from __future__ import annotations

import re
from typing import Any

import torch

IGNORE_INDEX = -100


def prompt_text(messages: list[dict[str, str]], tokenizer: Any) -> str:
    """The chat template up to and including the assistant header: what the model sees before it answers."""
    prompt = [m for m in messages if m["role"] != "assistant"] if messages[-1]["role"] == "assistant" else messages
    return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)


def encode_example(
    messages: list[dict[str, str]],
    tokenizer: Any,
    max_length: int,
    weights: tuple[float, float] | tuple[float, float, bool] | None = None,
    flag_span: bool = False,
) -> dict[str, Any]:
    """input_ids + labels where only the assistant's answer and its end-of-turn token are supervised.

    Prompt and answer are tokenised separately so the label boundary is exact; an example longer than
    `max_length` is cut from the right and marked truncated. `weights` (decision, flags[, whole flag heads]) adds a
    per-token loss weight: the verdict token gets the first, the tokens that decide the flags and the score the
    second (answer_weights). `flag_span` adds the (first, last) input positions whose next token lies in the red-flag
    list, from its '[' to its ']' (flag_list_span; None when the answer has no list).
    """
    prompt_ids = tokenizer(prompt_text(messages, tokenizer), add_special_tokens=False)["input_ids"]
    answer = messages[-1]["content"] + tokenizer.eos_token  # <|im_end|> closes the turn: the model learns to stop
    encoded = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=weights is not None or flag_span)
    answer_ids = encoded["input_ids"]
    input_ids = prompt_ids + answer_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + answer_ids
    truncated = len(input_ids) > max_length
    out = {
        "input_ids": input_ids[:max_length],
        "labels": labels[:max_length],
        "truncated": truncated,
        "length": min(len(input_ids), max_length),
    }
    if weights is not None:
        token_weights = answer_weights(answer, encoded["offset_mapping"], *weights)
        out["weights"] = ([0.0] * len(prompt_ids) + token_weights)[:max_length]
    if flag_span:
        span = flag_list_span(answer, encoded["offset_mapping"])
        shifted = None if span is None else (len(prompt_ids) + span[0], len(prompt_ids) + span[1])
        out["flag_span"] = shifted if shifted is not None and shifted[1] < out["length"] else None
    return out


def flag_list_span(answer: str, offsets: list[tuple[int, int]]) -> tuple[int, int] | None:
    """Answer-token positions (first, last) whose next token lies in the red-flag list: from the one before the
    token holding its '[' (which decides '[' or '[]') to the one before the token holding its ']'. These are the
    positions where the model decides which flags fire (train.flag_probe_weight supervises them)."""
    opened = _FLAGS_OPEN.search(answer)
    if not opened:
        return None
    bracket, depth, close = opened.end() - 1, 0, -1
    for i in range(bracket + 1, len(answer)):
        depth += {"(": 1, ")": -1}.get(answer[i], 0)
        if answer[i] == "]" and depth <= 0:
            close = i
            break
    if close < 0:
        return None
    first = next((t for t, (a, b) in enumerate(offsets) if a <= bracket < b), None)
    last = next((t for t, (a, b) in enumerate(offsets) if a <= close < b), None)
    if first is None or last is None:
        return None
    return first - 1, max(first - 1, last - 1)


_VERDICT_LINE = re.compile(r"^(FRAUD|LEGITIMATE)\b", re.MULTILINE)
_FLAGS_OPEN = re.compile(r"^Red Flags: \[", re.MULTILINE)
_SCORE_VALUE = re.compile(r"^Risk Score: (\d+)", re.MULTILINE)
_TALLY = re.compile(r"\+\d+ = (\d+)\)")  # a flag's running total (data.score_tally): "; +30 = 45)"


def answer_weights(
    answer: str, offsets: list[tuple[int, int]], decision: float, flags: float, whole_head: bool = False
) -> list[float]:
    """Loss weight per answer token: `decision` on the verdict token; `flags` on each token where the evidence
    is decided: the one holding the list's '[' (whether any flag follows), the first token of each flag (with
    `whole_head`, every token of its head phrase: "High amount", "High-risk country" and "High-risk category"
    share their first token and part on a later one, as do the three "New ..." and the two "Card ..." heads), the
    token after each flag (',' for another one or ']' for the end), the running totals' digits (data.score_tally)
    and the score's digits; 1 elsewhere.

    The tokens that decide carry few of an answer's ~70 supervised positions; weighting them keeps the
    classification from drowning in the wording of the reasoning."""
    marks: dict[int, float] = {}
    verdict = _VERDICT_LINE.search(answer)
    if verdict:
        marks[verdict.start()] = decision
    opened = _FLAGS_OPEN.search(answer)
    if opened:
        bracket = opened.end() - 1
        marks[bracket] = flags
        close = answer.find("]", bracket)
        depth = 0
        for i in range(bracket + 1, close if close > 0 else bracket + 1):
            depth += {"(": 1, ")": -1}.get(answer[i], 0)
            if (i == bracket + 1 or (answer[i - 1] == " " and answer[i - 2] == "," and depth == 0)) and answer[
                i
            ] != "]":
                marks[i] = flags
                if whole_head:  # the head runs to the detail's " (" (or to the flag's end when it has none)
                    end = min(j for j in (answer.find(" (", i), answer.find(",", i), close) if j >= 0)
                    marks.update(dict.fromkeys(range(i, end), flags))
            if answer[i] == "," and depth == 0:  # another flag follows
                marks[i] = flags
        if close > bracket + 1:  # the end of a non-empty list
            marks[close] = flags
        for total in _TALLY.finditer(answer, bracket, close if close > 0 else bracket):  # data.score_tally
            for i in range(total.start(1), total.end(1)):
                marks[i] = flags
    score = _SCORE_VALUE.search(answer)
    if score:
        for i in range(score.start(1), score.end(1)):
            marks[i] = flags
    weights = [1.0] * len(offsets)
    for char, weight in marks.items():
        token = next((t for t, (a, b) in enumerate(offsets) if a <= char < b), None)
        if token is not None:
            weights[token] = max(weights[token], weight)
    return weights


def right_padded(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id rows padded on the right to the longest, and their attention mask."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def collate(batch: list[dict[str, Any]], pad_id: int, multiple: int = 1) -> dict[str, torch.Tensor]:
    """Dynamic right padding to the longest example of the batch, rounded up to a multiple of `multiple`.

    Rounding keeps the number of distinct batch shapes small: oneDNN caches a kernel per shape on the CPU, and
    with a new width every batch that cache grew the training process by ~25 MB a step.
    """
    width = max(len(b["input_ids"]) for b in batch)
    width = -(-width // multiple) * multiple
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    weighted = all("weights" in b for b in batch)
    weights = torch.zeros((len(batch), width)) if weighted else None
    for i, b in enumerate(batch):
        n = len(b["input_ids"])
        ids[i, :n] = torch.tensor(b["input_ids"])
        labels[i, :n] = torch.tensor(b["labels"])
        mask[i, :n] = 1
        if weights is not None:
            weights[i, :n] = torch.tensor(b["weights"])
    out = {"input_ids": ids, "labels": labels, "attention_mask": mask}
    if weights is not None:
        out["weights"] = weights
    if all("flag_target" in b for b in batch):  # train.flag_probe_weight: which flags fire, where it is decided
        out["flag_target"] = torch.tensor([b["flag_target"] for b in batch], dtype=torch.float32)
        positions = torch.zeros((len(batch), width), dtype=torch.bool)
        for i, b in enumerate(batch):
            if b.get("flag_span") is not None:
                positions[i, b["flag_span"][0] : b["flag_span"][1] + 1] = True
        out["flag_positions"] = positions
    if all("hidden" in b for b in batch):  # the frozen layers' cached output (modeling/frozen.py)
        hidden = torch.zeros((len(batch), width, batch[0]["hidden"].shape[-1]), dtype=batch[0]["hidden"].dtype)
        for i, b in enumerate(batch):
            hidden[i, : b["hidden"].shape[0]] = b["hidden"]
        out["hidden"] = hidden
    return out
