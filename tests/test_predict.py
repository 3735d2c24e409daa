"""Prediction on the tiny run: SPEC 2 records, batching invariance, bad lines reported, Python API."""

from __future__ import annotations

import json

import pytest
import torch

import fraudtune
from fraudtune import paths
from fraudtune.cli import main
from fraudtune.files import read_jsonl
from fraudtune.modeling.inference import fraud_probabilities, label_token_ids, shared_prefix_length
from fraudtune.modeling.tokens import prompt_text

SPEC_KEYS = {
    "transaction_id",
    "label",
    "risk_score",
    "fraud_probability",
    "red_flags",
    "reasoning",
    "raw_text",
    "latency_ms",
}


@pytest.fixture(scope="module")
def transactions(trained_tiny_run):
    return [m["transaction"] for m in read_jsonl(trained_tiny_run / paths.DATA_DIR / "test.meta.jsonl")]


@pytest.fixture(scope="module")
def predictor(trained_tiny_run):
    return fraudtune.load(trained_tiny_run / paths.ADAPTER_DIR)


def test_label_tokens_are_distinct(tokenizer):
    fraud, legit = label_token_ids(tokenizer)
    assert fraud != legit
    assert tokenizer.decode([fraud]) and "FRAUD".startswith(tokenizer.decode([fraud]))


def test_scores_do_not_depend_on_batching_or_padding(predictor, transactions):
    chats = predictor.chats(transactions)
    one_by_one, _ = fraud_probabilities(predictor.model, predictor.tokenizer, chats, batch_size=1)
    batched, _ = fraud_probabilities(predictor.model, predictor.tokenizer, chats, batch_size=8)
    torch.testing.assert_close(torch.tensor(one_by_one), torch.tensor(batched), atol=1e-5, rtol=1e-4)


def test_probability_matches_a_plain_forward_pass(predictor, transactions):
    chat = predictor.chats(transactions[:1])
    (prob,), _ = fraud_probabilities(predictor.model, predictor.tokenizer, chat)
    from fraudtune.modeling.tokens import prompt_text

    ids = predictor.tokenizer(prompt_text(chat[0], predictor.tokenizer), add_special_tokens=False, return_tensors="pt")[
        "input_ids"
    ]
    with torch.no_grad():
        logits = predictor.model(input_ids=ids).logits[0, -1]
    fraud, legit = label_token_ids(predictor.tokenizer)
    expected = torch.softmax(logits[[fraud, legit]], dim=-1)[0].item()
    assert prob == pytest.approx(expected, abs=1e-5)


def test_python_api_returns_spec_records(predictor, transactions):
    records = predictor.predict(transactions[:3], explain=True, batch_size=2)
    assert len(records) == 3
    for rec in records:
        assert SPEC_KEYS <= set(rec)
        assert 0.0 <= rec["fraud_probability"] <= 1.0
        # a random tiny model writes gibberish: it must be reported as unparsed, never guessed
        assert rec["label"] in ("FRAUD", "LEGITIMATE") or (rec["label"] is None and rec["error"])


def test_cli_predict_no_explain_skips_bad_lines(trained_tiny_run, transactions, tmp_path, capsys):
    source = tmp_path / "txns.jsonl"
    lines = [json.dumps(t) for t in transactions[:4]]
    bad = dict(transactions[0], transaction_id="bad-1", amount=-5)
    lines.insert(2, json.dumps(bad))
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "preds.jsonl"
    code = main(
        [
            "predict",
            "--adapter",
            str(trained_tiny_run / paths.ADAPTER_DIR),
            "--input",
            str(source),
            "--output",
            str(out),
            "--no-explain",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1  # a rejected line makes the exit code non-zero, the others are still written
    assert f"{source}:3: amount: must be > 0, got -5" in captured.err
    records = read_jsonl(out)
    assert [r["transaction_id"] for r in records] == [t["transaction_id"] for t in transactions[:4]]
    assert all(r["label"] in ("FRAUD", "LEGITIMATE") and r["reasoning"] is None for r in records)


def test_missing_adapter_is_a_one_line_error(tmp_path, capsys):
    source = tmp_path / "t.jsonl"
    source.write_text("{}\n")
    code = main(
        ["predict", "--adapter", str(tmp_path / "nope"), "--input", str(source), "--output", str(tmp_path / "o.jsonl")]
    )
    assert code == 1
    assert "adapter folder not found" in capsys.readouterr().err


def test_pickle_adapter_is_refused(tiny_run_copy):
    adapter = tiny_run_copy / paths.ADAPTER_DIR
    (adapter / "adapter_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(fraudtune.errors.FraudtuneError, match="pickle"):
        fraudtune.load(adapter)


def test_truncated_adapter_is_refused(tiny_run_copy):
    weights = tiny_run_copy / paths.ADAPTER_DIR / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(fraudtune.errors.FraudtuneError, match="sha256"):
        fraudtune.load(tiny_run_copy / paths.ADAPTER_DIR)


@pytest.mark.parametrize("system", ["long rulebook", "default"])
def test_shared_prefix_cache_gives_the_same_probabilities(predictor, transactions, system):
    chats = predictor.chats(transactions[:5])
    if system == "long rulebook":
        for chat in chats:
            chat[0]["content"] = "Rulebook. " + " ".join(f"Rule {i}: be careful with amount {i}." for i in range(40))
    encoded = [predictor.tokenizer(prompt_text(c, predictor.tokenizer))["input_ids"] for c in chats]
    assert shared_prefix_length(encoded) > (300 if system == "long rulebook" else 20)  # the cached path runs
    cached, _ = fraud_probabilities(predictor.model, predictor.tokenizer, chats, batch_size=2)
    one_each = [fraud_probabilities(predictor.model, predictor.tokenizer, [c])[0][0] for c in chats]
    torch.testing.assert_close(torch.tensor(cached), torch.tensor(one_each), atol=1e-5, rtol=1e-4)
    recomputed, _ = fraud_probabilities(predictor.model, predictor.tokenizer, chats, batch_size=2, reuse_prefix=False)
    torch.testing.assert_close(torch.tensor(recomputed), torch.tensor(one_each), atol=1e-5, rtol=1e-4)


def test_bf16_inference_keeps_the_labels_and_auto_follows_the_hardware(trained_tiny_run, predictor, transactions):
    from fraudtune.modeling.loading import inference_dtype

    fast = fraudtune.load(trained_tiny_run / paths.ADAPTER_DIR, precision="bf16")
    assert {p.dtype for p in fast.model.parameters()} == {torch.bfloat16}
    exact = [r["fraud_probability"] for r in predictor.score(transactions)]
    rounded = [r["fraud_probability"] for r in fast.score(transactions)]
    assert rounded == pytest.approx(exact, abs=0.02)  # bf16 keeps ~3 significant digits
    assert inference_dtype("fp32") == torch.float32 and inference_dtype("bf16") == torch.bfloat16


def test_auto_precision_and_a_bad_name(monkeypatch):
    from fraudtune.errors import FraudtuneError
    from fraudtune.modeling import loading as models

    monkeypatch.setattr(models.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(models, "cpu_has_fast_bf16", lambda: True)
    assert models.inference_dtype("auto") == torch.bfloat16
    monkeypatch.setattr(models, "cpu_has_fast_bf16", lambda: False)
    assert models.inference_dtype("auto") == torch.float32
    with pytest.raises(FraudtuneError, match="precision: 'fp8'"):
        models.inference_dtype("fp8")


def test_evidence_first_reads_the_verdict_after_the_written_evidence(predictor, transactions):
    """Evidence first: the flags and score are generated greedily, then P(FRAUD) is read at the next position.
    The tiny random model never writes a score line, so the evidence runs to the token limit and says so."""
    from dataclasses import replace

    from fraudtune.modeling.inference import generate_answers

    evidence_first = replace(predictor, answer_order="evidence_first", max_new_tokens=6)
    records = evidence_first.score(transactions[:3], batch_size=2)
    chats = predictor.chats(transactions[:3])
    written = generate_answers(predictor.model, predictor.tokenizer, chats, 6, batch_size=1)
    fraud_id, legit_id = label_token_ids(predictor.tokenizer)
    for record, chat, answer in zip(records, chats, written, strict=True):
        prompt = predictor.tokenizer(prompt_text(chat, predictor.tokenizer), add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = predictor.model(input_ids=torch.tensor([prompt + answer.ids])).logits[0, -1]
        expected = torch.softmax(logits[[fraud_id, legit_id]], dim=-1)[0]
        assert record["fraud_probability"] == pytest.approx(float(expected), abs=1e-5)
        assert record["prompt_tokens"] == len(prompt) and "no 'Risk Score: 0-100' line" in record["error"]


def test_evidence_first_record_lists_the_flags_of_a_fraud_verdict_only(predictor, transactions, monkeypatch):
    """The evidence lists every signal that fired; the record keeps SPEC 2's shape: a LEGITIMATE verdict's
    red_flags are empty, its signals stay in the evidence text, and its score is the one written."""
    from dataclasses import replace

    import fraudtune.predict as predict_module
    from fraudtune.modeling.inference import Answer

    texts = [f"Red Flags: [New device (first use)]\nRisk Score: {score}\n" for score in (10, 60)]
    written = [Answer(text=t, ids=[1], fraud_probability=0.5, first_ms=0.0, total_ms=0.0) for t in texts]
    monkeypatch.setattr(predict_module, "verdict_scores", lambda *a, **k: ([0.1, 0.9], written))
    records = replace(predictor, answer_order="evidence_first").score(transactions[:2])
    assert [r["label"] for r in records] == ["LEGITIMATE", "FRAUD"]
    assert records[0]["red_flags"] == [] and records[1]["red_flags"] == ["NEW_DEVICE"]
    assert [r["risk_score"] for r in records] == [10, 60] and records[0]["evidence"] == texts[0]


def test_generation_stops_after_the_score_line():
    """The stopping rule of evidence-first scoring, per row: done once 'Risk Score: N' and its newline are out."""
    from fraudtune.modeling.inference import until_evidence

    rows = ["Red Flags: []\nRisk Score: 10\n", "Red Flags: [New device (first use)]\nRisk Score: 1", "Red Flags: ["]
    assert [until_evidence(r) for r in rows] == [True, False, False]


def test_label_word_probabilities_are_the_teacher_forced_product(predictor, transactions):
    from fraudtune.modeling.inference import encode_prompts, label_word_probabilities

    model, tok = predictor.model, predictor.tokenizer
    chats = predictor.chats(transactions[:3])
    got = label_word_probabilities(model, tok, encode_prompts(model, tok, chats), 0.7, 2)
    for row, chat in enumerate(chats):
        prompt = tok(prompt_text(chat, tok), add_special_tokens=False)["input_ids"]
        for col, word in enumerate(("FRAUD", "LEGITIMATE")):
            ids = tok(word, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([prompt + ids])).logits[0, len(prompt) - 1 : -1]
            expected = torch.softmax(logits / 0.7, dim=-1)[torch.arange(len(ids)), ids].prod().item()
            assert got[row, col].item() == pytest.approx(expected, rel=1e-3, abs=1e-7)


def test_exact_agreement_is_the_chance_that_every_run_agrees(predictor, transactions, monkeypatch):
    from fraudtune.evaluate import llm
    from fraudtune.modeling.inference import encode_prompts

    model, tok = predictor.model, predictor.tokenizer
    prompts = encode_prompts(model, tok, predictor.chats(transactions[:2]))
    words = torch.tensor([[0.7, 0.2], [0.5, 0.5]])
    monkeypatch.setattr(llm, "label_word_probabilities", lambda *args: words)
    got = llm.exact_agreement(model, tok, prompts, [0, 1], 10, 0.7, 4)
    assert got[0]["agreement"] == pytest.approx(0.7**10 + 0.2**10)
    assert got[0]["other_mass"] == pytest.approx(0.1)
    assert got[1] == pytest.approx({"agreement": 2 * 0.5**10, "other_mass": 0.0})


@pytest.mark.parametrize("stop_chars", [1, 12, 25])
def test_the_verdict_after_a_stopped_answer_comes_from_the_decoding_pass(predictor, transactions, stop_chars):
    """Rows of one batch stop at different steps (a stop rule on the text so far); each row's P(FRAUD) at the
    token after its answer equals a fresh forward pass over prompt + answer (no second pass needed)."""
    from fraudtune.modeling.inference import encode_prompts, generate

    chats = predictor.chats(transactions[:4])
    prompts = encode_prompts(predictor.model, predictor.tokenizer, chats)
    answers = generate(
        predictor.model,
        predictor.tokenizer,
        prompts,
        [0, 1, 2, 3],
        10,
        temperature=2.0,  # sampled: the rows write different tokens, so the stop rule ends them at different steps
        stop=lambda text: len(text) >= stop_chars,
    )
    if stop_chars > 1:  # the rows end at different steps, before the limit: the stop rule decided
        assert len({len(a.ids) for a in answers}) > 1 and min(len(a.ids) for a in answers) < 10
    fraud_id, legit_id = label_token_ids(predictor.tokenizer)
    for chat, answer in zip(chats, answers, strict=True):
        prompt = predictor.tokenizer(prompt_text(chat, predictor.tokenizer), add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = predictor.model(input_ids=torch.tensor([prompt + answer.ids])).logits[0, -1]
        expected = torch.softmax(logits[[fraud_id, legit_id]], dim=-1)[0]
        assert answer.next_fraud_probability == pytest.approx(float(expected), abs=1e-5)


class _EndsAtPosition(torch.nn.Module):
    """The model, except that a row whose next token would sit at position `limit` or later ends its turn there:
    rows with longer prompts end after fewer tokens, so one batch's rows stop at different steps."""

    def __init__(self, model, eos_id: int, limit: int):
        super().__init__()
        self.model, self.eos_id, self.limit = model, eos_id, limit

    def forward(self, **kwargs):
        out = self.model(**kwargs)
        ending = kwargs["position_ids"][:, -1] + 1 >= self.limit
        out.logits[ending, -1, self.eos_id] = out.logits[:, -1].max() + 10.0
        return out


def test_rows_that_end_leave_the_batch_and_the_others_continue_as_alone(predictor, transactions):
    """Greedy answers of one batch whose rows end at different steps (each ended row is dropped from the batch
    and its cache) equal the answers each prompt gets in a batch of its own."""
    from fraudtune.modeling.inference import encode_prompts, generate

    tok = predictor.tokenizer
    chats = predictor.chats(transactions[:6])
    prompts = encode_prompts(predictor.model, tok, chats)
    longest = max(len(ids) for ids in prompts.ids)
    assert len({len(ids) for ids in prompts.ids}) > 2
    model = _EndsAtPosition(predictor.model, tok.eos_token_id, longest + 4)

    def stop(text: str) -> bool:  # a second way to end: the stop rule, after the same text on every row
        return len(text) >= 100

    together = generate(model, tok, prompts, list(range(6)), 12, stop=stop)
    alone = [generate(model, tok, prompts, [i], 12, stop=stop)[0] for i in range(6)]
    assert len({len(a.ids) for a in together}) > 1  # rows ended at different steps: the batch shrank
    for got, want in zip(together, alone, strict=True):
        assert got.ids == want.ids and got.text == want.text
        assert got.next_fraud_probability == pytest.approx(want.next_fraud_probability, abs=1e-5)


def test_consistency_samples_many_items_per_batch_each_with_its_own_runs(predictor, transactions, monkeypatch):
    """sample_decisions batches several items' runs together: each item still gets its own `runs` answers. With
    a near-zero temperature every run is the greedy answer, so each item's decisions equal those of a batch of
    that item alone (the answer's length stands for its decision; rows end at prompt-dependent steps)."""
    from fraudtune.evaluate import llm
    from fraudtune.modeling.inference import encode_prompts

    tok = predictor.tokenizer
    prompts = encode_prompts(predictor.model, tok, predictor.chats(transactions[:6]))
    model = _EndsAtPosition(predictor.model, tok.eos_token_id, max(len(ids) for ids in prompts.ids) + 4)
    monkeypatch.setattr(llm, "decision_of", lambda text: str(len(text)))
    subset = [5, 0, 3, 1, 4]
    together = llm.sample_decisions(model, tok, prompts, subset, 3, 1e-4, 10, seed=0, batch_rows=9)
    alone = llm.sample_decisions(model, tok, prompts, subset, 3, 1e-4, 10, seed=0, batch_rows=3)
    assert together == alone and list(together) == subset
    assert all(len(d) == 3 and len(set(d)) == 1 for d in together.values())
    assert len({d[0] for d in together.values()}) > 1  # the items' answers differ: a mix-up would show


def test_consistency_batches_hold_a_bounded_number_of_prompt_tokens(predictor, transactions, monkeypatch):
    """Long prompts (the prompted baseline's rulebook) get fewer items per consistency batch: each row copies the
    prompt's key/value cache, so a batch holds at most KV_TOKEN_BUDGET prompt tokens (never under one item)."""
    from fraudtune.evaluate import llm
    from fraudtune.modeling.inference import encode_prompts

    tok = predictor.tokenizer
    prompts = encode_prompts(predictor.model, tok, predictor.chats(transactions[:6]))
    batches: list[list[int]] = []
    monkeypatch.setattr(llm, "generate", lambda m, t, p, items, n, runs, *a, **k: batches.append(items) or [])
    monkeypatch.setattr(llm, "decision_of", lambda text: None)
    longest = max(len(ids) for ids in prompts.ids)
    monkeypatch.setattr(llm, "KV_TOKEN_BUDGET", longest * 6)  # room for 6 rows: two items of 3 runs
    llm.sample_decisions(predictor.model, tok, prompts, list(range(6)), 3, 0.7, 4, seed=0, batch_rows=64)
    assert [len(b) for b in batches] == [2, 2, 2]
    batches.clear()
    monkeypatch.setattr(llm, "KV_TOKEN_BUDGET", 1)  # not even one item fits: one item per batch all the same
    llm.sample_decisions(predictor.model, tok, prompts, list(range(6)), 3, 0.7, 4, seed=0, batch_rows=64)
    assert [len(b) for b in batches] == [1] * 6
