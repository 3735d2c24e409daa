"""Chat examples -> token ids, labels on the assistant answer only (SmolLM2's template has no generation markers)."""

from __future__ import annotations

from typing import Any

import torch

IGNORE_INDEX = -100


def prompt_text(messages: list[dict[str, str]], tokenizer: Any) -> str:
    """The chat template up to and including the assistant header: what the model sees before it answers."""
    prompt = [m for m in messages if m["role"] != "assistant"] if messages[-1]["role"] == "assistant" else messages
    return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)


def encode_example(messages: list[dict[str, str]], tokenizer: Any, max_length: int) -> dict[str, Any]:
    """input_ids + labels where only the assistant's answer and its end-of-turn token are supervised.

    Prompt and answer are tokenised separately so the label boundary is exact; an example longer than
    `max_length` is cut from the right and marked truncated.
    """
    prompt_ids = tokenizer(prompt_text(messages, tokenizer), add_special_tokens=False)["input_ids"]
    answer = messages[-1]["content"] + tokenizer.eos_token  # <|im_end|> closes the turn: the model learns to stop
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    input_ids = prompt_ids + answer_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + answer_ids
    truncated = len(input_ids) > max_length
    return {
        "input_ids": input_ids[:max_length],
        "labels": labels[:max_length],
        "truncated": truncated,
        "length": min(len(input_ids), max_length),
    }


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
    for i, b in enumerate(batch):
        n = len(b["input_ids"])
        ids[i, :n] = torch.tensor(b["input_ids"])
        labels[i, :n] = torch.tensor(b["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}
