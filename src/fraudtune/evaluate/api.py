"""Optional baseline: any OpenAI-compatible chat endpoint (a GPT-4-class service) given the rulebook prompt.

Standard library only (urllib). The fraud probability comes from the first token's top log-probabilities when
the endpoint returns them, else from the answer's risk score, else from its label.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

from fraudtune.config import EvalConfig
from fraudtune.data.chat import LABELS
from fraudtune.errors import FraudtuneError
from fraudtune.evaluate.llm import answer_record, decision_of
from fraudtune.profile import Profile

log = logging.getLogger(__name__)
Opener = Callable[..., Any]


def endpoint(url: str) -> str:
    """`https://host/v1` or the full `.../chat/completions` address."""
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else f"{url}/chat/completions"


def build_request(
    url: str, key: str | None, model: str, messages: list[dict[str, str]], max_tokens: int
) -> urllib.request.Request:
    """A deterministic chat request asking for the first tokens' log-probabilities."""
    body = {
        "model": model,
        "messages": messages,
        "temperature": 0,
        "max_tokens": max_tokens,
        "logprobs": True,
        "top_logprobs": 5,
    }
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return urllib.request.Request(endpoint(url), data=json.dumps(body).encode(), headers=headers, method="POST")


def label_probability(response: dict[str, Any]) -> float | None:
    """P(FRAUD) from the first token's top log-probabilities (tokens that begin FRAUD vs LEGITIMATE)."""
    try:
        top = response["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    except (KeyError, IndexError, TypeError):
        return None
    mass = {label: 0.0 for label in LABELS}
    for item in top or []:
        token = str(item.get("token", "")).strip().upper()
        for label in LABELS:
            if token and label.startswith(token):
                mass[label] += math.exp(float(item.get("logprob", -math.inf)))
    total = sum(mass.values())
    return mass[LABELS[0]] / total if total > 0 else None


def read_response(response: dict[str, Any], profile: Profile) -> dict[str, Any]:
    """A prediction record from a chat-completions response; an answer without a decision counts as no alert."""
    try:
        text = response["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        text = ""
    usage = response.get("usage") or {}
    answer = answer_record(text, usage.get("completion_tokens"), profile, None, None)  # the caller times it
    label = answer["label"] or decision_of(text)
    probability = label_probability(response)
    if probability is None:
        probability = answer["risk_score"] / 100 if answer["risk_score"] is not None else float(label == LABELS[0])
    return {
        "label": label or LABELS[1],
        "fraud_probability": probability,
        "prompt_tokens": usage.get("prompt_tokens"),
        "answer": answer,
    }


def call(request: urllib.request.Request, timeout: float, opener: Opener) -> dict[str, Any]:
    url = request.full_url
    try:
        with opener(request, timeout=timeout) as reply:
            return json.loads(reply.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise FraudtuneError(
            f"--baseline-url {url}: HTTP {exc.code} {exc.reason}; check the URL, model and key"
        ) from exc
    except urllib.error.URLError as exc:
        raise FraudtuneError(f"--baseline-url {url}: {exc.reason}; is the endpoint running?") from exc
    except (TimeoutError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FraudtuneError(f"--baseline-url {url}: unusable reply ({exc}); raise eval.baseline_timeout?") from exc


def api_baseline(
    chats: list[list[dict[str, str]]], ecfg: EvalConfig, profile: Profile, opener: Opener = urllib.request.urlopen
) -> list[dict[str, Any]]:
    """One request per transaction, sequentially; latency is each request's wall time."""
    key = os.environ.get(ecfg.baseline_key_env)
    if not key:
        log.warning("api baseline: $%s is not set; sending requests without a key", ecfg.baseline_key_env)
    out = []
    for chat in tqdm(chats, desc="api baseline", unit="txn"):
        request = build_request(ecfg.baseline_url, key, ecfg.baseline_model, chat, ecfg.max_new_tokens)
        began = time.perf_counter()
        response = call(request, ecfg.baseline_timeout, opener)
        record = read_response(response, profile)
        record["answer"]["latency_ms"] = record["answer"]["latency_ms_explain"] = (time.perf_counter() - began) * 1000
        out.append(record)
    return out
