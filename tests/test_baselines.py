"""Baselines: the rulebook prompt, the rules engine against the oracle, gradient boosting, the api mapping,
and the response-quality rubric."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
from conftest import tiny_config

from fraudtune import paths
from fraudtune.errors import FraudtuneError
from fraudtune.evaluate import api, quality
from fraudtune.evaluate.baselines import (
    GradientBoosting,
    few_shot_examples,
    prompted_chats,
    raw_features,
    rulebook_text,
    rules_engine,
)
from fraudtune.files import read_jsonl
from fraudtune.profile import load_profile


@pytest.fixture(scope="module")
def profile():
    return load_profile(tiny_config().data.profile)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """300 generated examples: enough of every category and rule for the checks below."""
    from fraudtune.data.generate import generate

    out = tmp_path_factory.mktemp("data")
    cfg = tiny_config()
    generate(out, profile_path=cfg.data.profile, n=300, seed=11, data_cfg=cfg.data)
    return {
        split: (read_jsonl(out / f"{split}.jsonl"), read_jsonl(out / f"{split}.meta.jsonl"))
        for split in ("train", "test")
    } | {"all": (read_jsonl(out / paths.DATASET), read_jsonl(out / paths.DATASET_META))}


def test_rulebook_has_the_written_rules_and_never_the_historical_patterns(profile):
    text = rulebook_text(profile)
    for rule in profile.by_kind("generic"):
        assert f"- {rule.head} (weight {rule.weight}):" in text
    for rule in profile.by_kind("documented"):
        assert f"- {rule.head} (minimum {rule.min_score}):" in text
    assert "M-QUICKGIFT-0007" in text and "TC-07" in text and ">= 50" in text
    for rule in profile.by_kind("historical"):
        assert rule.head.lower() not in text.lower()
    assert "M-QX" not in text


def test_rules_engine_agrees_with_the_oracle_except_on_historical_patterns(dataset, profile):
    _, metas = dataset["all"]
    predictions = rules_engine([m["transaction"] for m in metas], profile)
    historical = {r.code for r in profile.by_kind("historical")}
    documented = [(p, m) for p, m in zip(predictions, metas, strict=True) if m["rule_kind"] == "documented"]
    history = [(p, m) for p, m in zip(predictions, metas, strict=True) if m["rule_kind"] == "historical"]
    others = [(p, m) for p, m in zip(predictions, metas, strict=True) if not historical & set(m["red_flags"])]
    assert documented and history
    for p, m in documented:
        assert p["label"] == "FRAUD" == m["label"] and m["deciding_rule"] in p["red_flags"]
    for p, m in history:  # the rulebook doesn't know these: every historical-pattern fraud is missed
        assert m["label"] == "FRAUD" and p["label"] == "LEGITIMATE"
        assert m["deciding_rule"] not in p["red_flags"]
    for p, m in others:
        assert (p["label"], p["risk_score"], p["red_flags"]) == (m["label"], m["risk_score"], m["red_flags"])
        assert p["fraud_probability"] == m["risk_score"] / 100


def test_gradient_boosting_fits_predicts_and_is_seeded(dataset):
    _, train = dataset["train"]
    _, test = dataset["test"]
    x_train, y_train = [m["transaction"] for m in train], [m["label"] for m in train]
    first = GradientBoosting(seed=0).fit(x_train, y_train).predict([m["transaction"] for m in test])
    again = GradientBoosting(seed=0).fit(x_train, y_train).predict([m["transaction"] for m in test])
    assert [p["fraud_probability"] for p in first] == [p["fraud_probability"] for p in again]
    assert all(0 <= p["fraud_probability"] <= 1 for p in first)
    accuracy = np.mean([p["label"] == m["label"] for p, m in zip(first, test, strict=True)])
    majority = max(np.mean([m["label"] == "FRAUD" for m in test]), np.mean([m["label"] != "FRAUD" for m in test]))
    assert accuracy > majority  # it learned something: 0.80 vs 0.57 for always-LEGITIMATE on this seed


def test_raw_features_cover_the_transaction_fields(dataset):
    _, metas = dataset["all"]
    txn = metas[0]["transaction"]
    features = raw_features(txn)
    assert features["merchant_family"] == txn["merchant"]["id"].split("-")[1]
    assert features["amount"] == txn["amount"] and features["hour"] == int(txn["timestamp"][11:13])
    assert not any(k.startswith("label") or k == "risk_score" for k in features)


def test_few_shot_examples_alternate_labels_and_come_from_train(dataset, profile):
    rows, metas = dataset["train"]
    shots = few_shot_examples(rows, metas, 3, seed=1)
    assert [m["role"] for m in shots] == ["user", "assistant"] * 3
    assert [m["content"].split("\n")[0] for m in shots[1::2]] == ["FRAUD", "LEGITIMATE", "FRAUD"]
    assert shots == few_shot_examples(rows, metas, 3, seed=1)
    train_users = {r["messages"][1]["content"] for r in rows}
    assert all(m["content"] in train_users for m in shots[0::2])
    chats = prompted_chats([metas[0]["transaction"]], profile, shots)
    assert chats[0][0]["content"] == rulebook_text(profile) and len(chats[0]) == 2 + 6


# ---------------------------------------------------------------- api baseline (stub server on 127.0.0.1)

ANSWER = "FRAUD\nRisk Score: 95\nRed Flags: [Blacklisted merchant (M-QUICKGIFT-0007)]\nReasoning: Blacklisted merchant."


class _Stub(BaseHTTPRequestHandler):
    seen: list = []
    status = 200

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Stub.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        reply = {
            "choices": [{
                "message": {"role": "assistant", "content": ANSWER},
                "logprobs": {"content": [{"token": "FR", "logprob": -0.1, "top_logprobs": [
                    {"token": "FR", "logprob": np.log(0.8)}, {"token": "LEG", "logprob": np.log(0.15)},
                    {"token": "The", "logprob": np.log(0.05)}]}]},
            }],
            "usage": {"prompt_tokens": 1234, "completion_tokens": 31},
        }  # fmt: skip
        data = json.dumps(reply).encode()
        self.send_response(_Stub.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub_server():
    server = HTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Stub.seen, _Stub.status = [], 200
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def test_api_baseline_request_and_response_mapping(stub_server, profile, monkeypatch):
    monkeypatch.setenv("FRAUDTUNE_TEST_KEY", "sk-test")
    ecfg = tiny_config(f"eval.baseline_url={stub_server}", "eval.baseline_key_env=FRAUDTUNE_TEST_KEY").eval
    chats = [[{"role": "system", "content": "rules"}, {"role": "user", "content": "txn"}]]
    [record] = api.api_baseline(chats, ecfg, profile)
    [request] = _Stub.seen
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    assert request["body"]["messages"] == chats[0] and request["body"]["temperature"] == 0
    assert request["body"]["model"] == ecfg.baseline_model and request["body"]["logprobs"] is True
    assert record["label"] == "FRAUD" and record["fraud_probability"] == pytest.approx(0.8 / 0.95)
    assert record["prompt_tokens"] == 1234 and record["answer"]["completion_tokens"] == 31
    assert record["answer"]["red_flags"] == ["BLACKLISTED_MERCHANT"] and record["answer"]["error"] is None
    assert record["answer"]["latency_ms"] > 0


def test_api_errors_are_one_line(stub_server, profile):
    _Stub.status = 500
    ecfg = tiny_config(f"eval.baseline_url={stub_server}").eval
    with pytest.raises(FraudtuneError, match=r"HTTP 500") as err:
        api.api_baseline([[{"role": "user", "content": "x"}]], ecfg, profile)
    assert "\n" not in str(err.value)
    ecfg = tiny_config("eval.baseline_url=http://127.0.0.1:9/v1").eval
    with pytest.raises(FraudtuneError, match="is the endpoint running"):
        api.api_baseline([[{"role": "user", "content": "x"}]], ecfg, profile)


def test_api_response_without_logprobs_falls_back_to_score_then_label(profile):
    reply = {"choices": [{"message": {"content": ANSWER.replace("95", "91")}}]}
    assert api.read_response(reply, profile)["fraud_probability"] == pytest.approx(0.91)
    reply = {"choices": [{"message": {"content": "I think this is LEGITIMATE overall."}}]}
    record = api.read_response(reply, profile)
    assert record["label"] == "LEGITIMATE" and record["fraud_probability"] == 0.0
    assert record["answer"]["label"] is None and record["answer"]["error"]
    assert api.endpoint("https://x/v1/") == "https://x/v1/chat/completions"


# ---------------------------------------------------------------- response quality


def _answer(label, score, flags, reasoning, error=None):
    return {"label": label, "risk_score": score, "red_flags": flags, "reasoning": reasoning, "error": error,
            "raw_text": reasoning}  # fmt: skip


def test_clarity_rubric_points(profile):
    good = _answer(
        "FRAUD",
        60,
        ["AMOUNT_SPIKE", "HIGH_RISK_COUNTRY"],
        "High amount and a high-risk country give a score of 60, above the threshold.",
    )
    assert quality.clarity(good, profile) == 5
    assert quality.coherent(good, profile)
    uncited = dict(good, reasoning="The score of 60 is above the threshold of 50 for this card.")
    assert quality.clarity(uncited, profile) == 4 and not quality.coherent(uncited, profile)
    contradicting = dict(good, reasoning="High amount and high-risk country, but this looks legitimate to me.")
    assert quality.contradicts("FRAUD", contradicting["reasoning"]) and quality.clarity(contradicting, profile) == 3
    wrong_side = dict(good, risk_score=20)  # FRAUD with a score under the threshold and no company rule
    assert quality.clarity(wrong_side, profile) == 4
    normal = _answer("LEGITIMATE", 0, [], "Normal pattern: a usual grocery purchase at home.")
    assert quality.clarity(normal, profile) == 5
    broken = _answer(None, None, [], "", error="no FRAUD/LEGITIMATE label line")
    assert quality.clarity(broken, profile) == 1
    looping = dict(normal, raw_text="usual grocery purchase " * 4)
    assert quality.clarity(looping, profile) == 4


def test_response_quality_by_hand(profile):
    answers = [
        _answer("FRAUD", 90, ["AMOUNT_SPIKE", "NEW_DEVICE"], "High amount on a new device."),
        _answer("LEGITIMATE", 10, [], "Normal pattern: usual purchase."),
        _answer(None, None, [], "", error="empty answer"),
    ]
    metas = [{"label": "FRAUD", "red_flags": ["AMOUNT_SPIKE", "UNUSUAL_HOUR"], "risk_score": 80},
             {"label": "LEGITIMATE", "red_flags": ["UNUSUAL_HOUR"], "risk_score": 10},
             {"label": "LEGITIMATE", "red_flags": [], "risk_score": 0}]  # fmt: skip
    got = quality.response_quality(answers, metas, profile)
    # flags over the two parsed answers: tp 1 (AMOUNT_SPIKE), fp 1 (NEW_DEVICE), fn 1 (UNUSUAL_HOUR of the fraud);
    # the legitimate row's minor signal is not in its SPEC 2 answer ("Red Flags: []"), so not missed
    assert got["red_flag_precision"] == 0.5 and got["red_flag_recall"] == 0.5 and got["red_flag_f1"] == 0.5
    assert quality.answer_flags(metas[1]) == [] and quality.answer_flags(metas[0]) == metas[0]["red_flags"]
    assert got["parse_rate"] == pytest.approx(2 / 3)
    assert got["risk_score_mae"] == pytest.approx((10 + 0) / 2)
    assert got["reasoning_coherence"] == pytest.approx(2 / 3)
    assert set(got) == set(quality.QUALITY_KEYS)


def test_gradient_boosting_fits_a_log_with_hundreds_of_merchants():
    """An imported log names hundreds of merchants; the feature keeps the 255 most frequent (the booster's limit),
    the rest fall in the missing bin, and the fit does not fail."""
    import copy

    from spec_oracle import sample_txn

    from fraudtune.evaluate.baselines import MAX_CATEGORIES, GradientBoosting, category_codes

    codes = category_codes([f"m{i % 400}" for i in range(1000)] + ["m1"] * 5)
    assert len(codes) == MAX_CATEGORIES and "m1" in codes
    rows, labels = [], []
    for i in range(400):
        txn = copy.deepcopy(sample_txn())
        txn["merchant"]["id"] = f"shop {i}"  # one family per merchant, as a log's plain names give
        txn["amount"] = 10.0 + i
        rows.append(txn)
        labels.append("FRAUD" if i % 3 == 0 else "LEGITIMATE")
    model = GradientBoosting(seed=0).fit(rows, labels)
    assert len(model.predict(rows[:5])) == 5
