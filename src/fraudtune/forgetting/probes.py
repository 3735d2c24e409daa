"""Scoring primitives of the forgetting probes: batched log-likelihoods, greedy answers, KL, answer matching.

Everything here takes a plain `(model, tokenizer)` or token ids, so it does not care whether the model is a base
model, a PEFT model with its adapter disabled, or a fully fine-tuned one.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

Ids = list[int]

# ---------------------------------------------------------------- model primitives


def _batches(order: Sequence[int], size: int) -> list[list[int]]:
    return [list(order[i : i + size]) for i in range(0, len(order), size)]


@torch.inference_mode()
def continuation_logprobs(
    model: Any, requests: list[tuple[Ids, Ids]], pad_id: int, batch_size: int = 16, desc: str = "log-likelihood"
) -> list[np.ndarray]:
    """Log-probability of each continuation token given its context, for (context_ids, continuation_ids) pairs.

    Requests are sorted by length so each right-padded batch wastes little compute, and only the positions that
    predict a continuation token go through the 49k-word output layer.
    """
    from fraudtune.modeling.inference import decoder_and_head, device_of
    from fraudtune.modeling.tokens import right_padded

    decoder, head = decoder_and_head(model)
    device = device_of(model)
    out: list[np.ndarray] = [np.zeros(0)] * len(requests)
    order = sorted(range(len(requests)), key=lambda i: -(len(requests[i][0]) + len(requests[i][1])))
    for batch in tqdm(_batches(order, batch_size), desc=desc, leave=False, disable=len(order) <= batch_size):
        ids, mask = right_padded([requests[i][0] + requests[i][1] for i in batch], pad_id)
        hidden = decoder(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        for row, i in enumerate(batch):
            n_ctx, n_cont = len(requests[i][0]), len(requests[i][1])
            if n_cont:  # position t predicts token t + 1
                logp = head(hidden[row, n_ctx - 1 : n_ctx + n_cont - 1]).float().log_softmax(-1).cpu()
                out[i] = logp.gather(-1, ids[row, n_ctx : n_ctx + n_cont, None])[:, 0].numpy()
    return out


MC_TEMPLATE = "Question: {question}\nAnswer:"


def _pad_id(tokenizer: Any) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def choice_scores(model: Any, tokenizer: Any, items: list[dict[str, Any]], batch_size: int = 16) -> list[np.ndarray]:
    """Per item, each choice's log-likelihood after 'Question: ...\nAnswer:' divided by its length in characters.

    Length normalisation (lm-eval's acc_norm) keeps long choices from losing just for having more tokens.
    """
    requests, owners = [], []
    for k, item in enumerate(items):
        context = tokenizer(MC_TEMPLATE.format(question=item["question"]), add_special_tokens=False)["input_ids"]
        for choice in item["choices"]:
            requests.append((context, tokenizer(" " + choice, add_special_tokens=False)["input_ids"]))
            owners.append((k, len(choice)))
    logps = continuation_logprobs(model, requests, _pad_id(tokenizer), batch_size, desc="multiple choice")
    scores: list[list[float]] = [[] for _ in items]
    for (k, n_chars), lp in zip(owners, logps, strict=True):
        scores[k].append(float(lp.sum()) / max(n_chars, 1))
    return [np.array(s) for s in scores]


def multiple_choice(model: Any, tokenizer: Any, items: list[dict[str, Any]], batch_size: int = 16) -> np.ndarray:
    """1.0 where the best-scoring choice is the right one, else 0.0."""
    scores = choice_scores(model, tokenizer, items, batch_size)
    return np.array([float(int(np.argmax(s)) == item["answer"]) for s, item in zip(scores, items, strict=True)])


def output_nll(model: Any, tokenizer: Any, prompts: list[str], outputs: list[str], batch_size: int = 8) -> np.ndarray:
    """Rows of (summed NLL, tokens) of each output given its chat prompt: perplexity of text under `model`."""
    requests = [
        (tokenizer(p, add_special_tokens=False)["input_ids"], tokenizer(o, add_special_tokens=False)["input_ids"])
        for p, o in zip(prompts, outputs, strict=True)
    ]
    logps = continuation_logprobs(model, requests, _pad_id(tokenizer), batch_size, desc="output perplexity")
    return np.array([(-float(lp.sum()), len(lp)) for lp in logps]).reshape(-1, 2)


def kl_and_nll(logits_p: torch.Tensor, logits_q: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-position KL(p || q) of next-token distributions, and the NLL of `targets` under p and under q.

    Shapes: logits [T, V], targets [T]. p is the base model, q the fine-tuned one.
    """
    logp, logq = logits_p.float().log_softmax(-1), logits_q.float().log_softmax(-1)
    kl = (logp.exp() * (logp - logq)).sum(-1).clamp_min(0)  # >= 0 by definition; drops float rounding
    nll_p = -logp.gather(-1, targets[:, None])[:, 0]
    nll_q = -logq.gather(-1, targets[:, None])[:, 0]
    return kl, nll_p, nll_q


# ---------------------------------------------------------------- answer matching

_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty".split()
    )
} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90"}
_ARTICLES = {"the", "a", "an"}


def normalize(text: str) -> list[str]:
    """Lower-case words without accents, articles or punctuation; '300,000' -> '300000', 'eight' -> '8'."""
    text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = re.sub(r"[^a-z0-9.]|\.(?!\d)|(?<!\d)\.", " ", text)  # keep '.' only inside numbers
    return [_NUMBER_WORDS.get(w, w) for w in text.split() if w not in _ARTICLES]


def _find(words: list[str], phrase: list[str]) -> list[int]:
    n = len(phrase)
    return [i for i in range(len(words) - n + 1) if n and words[i : i + n] == phrase]


def answer_matches(text: str, accepted: Sequence[str], rejected: Sequence[str] = (), pick: str = "first") -> bool:
    """True if the answer names an accepted phrase before (pick='first') or after ('last') any rejected one.

    Phrases match as whole normalised words. The rejected phrases are the wrong choices: an answer that lists
    several candidates is judged by the one it names first (or last, for worked answers that end in the result).
    A match inside a longer match ('whale' inside 'blue whale') does not count.
    """
    words = normalize(text)
    hits: list[tuple[int, int, bool]] = []
    for phrases, good in ((accepted, True), (rejected, False)):
        for phrase in phrases:
            size = len(normalize(phrase))
            hits += [(pos, pos + size, good) for pos in _find(words, normalize(phrase))]
    hits = [h for h in hits if not any(o[0] <= h[0] and h[1] <= o[1] and o[1] - o[0] > h[1] - h[0] for o in hits)]
    if not hits:
        return False
    chosen = min(hits) if pick == "first" else max(hits, key=lambda h: (h[1], h[0]))
    return chosen[2]


def distinct_n(text: str, n: int = 2) -> float:
    """Unique word n-grams / all word n-grams (0.0 when the text has fewer than n words): low = repetitive."""
    words = str(text).lower().split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


_VERDICT = re.compile(r"^\s*(FRAUD|LEGITIMATE)\b|risk\s*score\s*:", re.IGNORECASE | re.MULTILINE)
_LABEL_WORD = re.compile(r"\b(fraudulent|fraud|legitimate)\b", re.IGNORECASE)


def looks_like_verdict(text: str) -> bool:
    """The fine-tuned answer format leaking into a general answer (a line starting FRAUD/LEGITIMATE, 'Risk Score:')."""
    return bool(_VERDICT.search(str(text)))


def first_label(text: str) -> str | None:
    """FRAUD or LEGITIMATE from the first label word in free text ('fraudulent' counts as FRAUD), else None."""
    found = _LABEL_WORD.search(str(text))
    if not found:
        return None
    return "LEGITIMATE" if found.group(1).lower() == "legitimate" else "FRAUD"


# ---------------------------------------------------------------- statistics


def mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def perplexity(rows: np.ndarray) -> float:
    """Token-weighted perplexity of rows of (nll_sum, n_tokens)."""
    rows = np.asarray(rows, dtype=float)
    return float(math.exp(rows[:, 0].sum() / max(rows[:, 1].sum(), 1)))


def f1_fraud(rows: np.ndarray) -> float:
    """F1 of the FRAUD class from rows of (predicted_fraud, is_fraud) in {0, 1}."""
    rows = np.asarray(rows, dtype=float)
    tp = float((rows[:, 0] * rows[:, 1]).sum())
    denom = rows[:, 0].sum() + rows[:, 1].sum()
    return 2 * tp / denom if denom else 0.0


# ---------------------------------------------------------------- one probe set on one model

GK_PROMPT = "{question} Answer in a few words."
REASONING_PROMPT = "{question} Answer briefly."
FRAUD_PLUS_GENERAL_PROMPT = "Analyze this transaction AND answer: {question}\n\n{transaction}"


def user_chat(text: str) -> list[dict[str, str]]:
    """A one-turn chat; the model's own template adds its default system prompt."""
    return [{"role": "user", "content": text}]


def generate(model: Any, tokenizer: Any, chats: list, max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy answers through the predictor's batched generation (left padding, KV cache, stops at end of turn)."""
    from fraudtune.modeling.inference import generate_answers

    answers = generate_answers(model, tokenizer, chats, max_new_tokens, batch_size, progress=len(chats) > batch_size)
    return [a.text for a in answers]


def is_right(text: str, item: dict[str, Any], pick: str = "first") -> bool:
    """A generated answer to a question item: the right choice or an alias, judged against the wrong choices."""
    right = item["choices"][item["answer"]]
    wrong = [c for i, c in enumerate(item["choices"]) if i != item["answer"]]
    return answer_matches(text, [right, *item.get("aliases", [])], wrong, pick)


def questions(
    model: Any, tokenizer: Any, items: list, template: str, pick: str, max_new_tokens: int, batch_size: int
) -> dict[str, Any]:
    """Multiple choice by log-likelihood, and the greedy answer matched against the choices."""
    texts = generate(
        model,
        tokenizer,
        [user_chat(template.format(question=q["question"])) for q in items],
        max_new_tokens,
        batch_size,
    )
    return {
        "mc": multiple_choice(model, tokenizer, items, 2 * batch_size),
        "match": np.array([float(is_right(t, q, pick)) for t, q in zip(texts, items, strict=True)]),
        "verdict": np.array([float(looks_like_verdict(t)) for t in texts]),
        "texts": texts,
    }


def language_prompt(task: dict[str, Any]) -> str:
    return f"{task['instruction']}\n\n{task['text']}" if task.get("text") else task["instruction"]


def language(model: Any, tokenizer: Any, tasks: list, max_new_tokens: int, batch_size: int) -> dict[str, Any]:
    """Greedy outputs of the writing tasks: repetition (distinct-2), length sanity, fraud-format leaks."""
    texts = generate(model, tokenizer, [user_chat(language_prompt(t)) for t in tasks], max_new_tokens, batch_size)
    sane = [t["min_words"] <= len(x.split()) <= t["max_words"] for t, x in zip(tasks, texts, strict=True)]
    return {
        "texts": texts,
        "distinct_2": np.array([distinct_n(t, 2) for t in texts]),
        "length_ok": np.array(sane, dtype=float),
        "verdict": np.array([float(looks_like_verdict(t)) for t in texts]),
    }


def fraud_predictions(
    model: Any,
    tokenizer: Any,
    rows: list,
    profile: Any,
    batch_size: int,
    answer_order: str = "verdict_first",
    max_evidence_tokens: int = 192,
) -> np.ndarray:
    """Rows of (predicted FRAUD, truly FRAUD) from the verdict token's probability (the predictor's)."""
    from fraudtune.data.chat import to_messages
    from fraudtune.modeling.inference import fraud_probabilities

    chats = [to_messages(r["transaction"], profile) for r in rows]
    probs, _ = fraud_probabilities(
        model,
        tokenizer,
        chats,
        batch_size,
        progress=len(rows) > batch_size,
        answer_order=answer_order,
        max_evidence_tokens=max_evidence_tokens,
    )
    return np.array([(float(p >= 0.5), float(r["label"] == "FRAUD")) for p, r in zip(probs, rows, strict=True)])


def fraud_plus_general(
    model: Any, tokenizer: Any, items: list, profile: Any, max_new_tokens: int, batch_size: int
) -> dict[str, Any]:
    """'Analyze this transaction AND answer: ...': label word and general answer, both read from one answer."""
    from fraudtune.data.chat import SYSTEM_PROMPT, render_user

    chats = [
        [
            {"role": "system", "content": SYSTEM_PROMPT},
            {
                "role": "user",
                "content": FRAUD_PLUS_GENERAL_PROMPT.format(
                    question=q["question"], transaction=render_user(q["transaction"], profile)
                ),
            },
        ]
        for q in items
    ]
    texts = generate(model, tokenizer, chats, max_new_tokens, batch_size)
    fraud_ok = np.array([float(first_label(t) == q["label"]) for t, q in zip(texts, items, strict=True)])
    general_ok = np.array([float(is_right(t, q)) for t, q in zip(texts, items, strict=True)])
    return {"fraud": fraud_ok, "general": general_ok, "both": fraud_ok * general_ok, "texts": texts}
