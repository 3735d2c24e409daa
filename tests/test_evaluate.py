"""`fraudtune evaluate` end to end on the tiny model, plus the pieces it is built from."""

from __future__ import annotations

import copy
import json

import pytest
from conftest import TINY_CONFIG, tiny_config

from fraudtune import paths
from fraudtune.cli import main
from fraudtune.errors import FraudtuneError
from fraudtune.evaluate import llm
from fraudtune.evaluate.testset import generation_subset, load_test_set, without_overlap
from fraudtune.files import read_jsonl

MODELS = {"fine_tuned", "prompted_base", "rules_engine", "gradient_boosting"}
METRIC_KEYS = {
    "accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "confusion", "ci", "at_production_rate",
    "threshold_at_fpr", "consistency", "company_knowledge", "near_miss", "edge_cases", "brier", "calibration",
    "parse_rate", "red_flag_f1", "red_flag_precision", "red_flag_recall", "risk_score_mae", "reasoning_coherence",
    "explanation_clarity", "latency_ms_p50", "latency_ms_p95", "latency_ms_p50_explain", "latency_ms_p95_explain",
    "prompt_tokens_per_request", "completion_tokens_per_request", "cost_per_1k",
}  # fmt: skip
LLM_FILLED = {
    "consistency", "parse_rate", "reasoning_coherence", "explanation_clarity", "latency_ms_p50",
    "latency_ms_p50_explain", "prompt_tokens_per_request", "completion_tokens_per_request", "cost_per_1k",
}  # fmt: skip
TEST_N = 40


@pytest.fixture(scope="module")
def evaluated(trained_tiny_run, tmp_path_factory):
    """`fraudtune evaluate --test-n 40` on a private copy of the tiny run: (run dir, printed output)."""
    import contextlib
    import io
    import shutil

    run = tmp_path_factory.mktemp("eval") / "run"
    shutil.copytree(trained_tiny_run, run)
    argv = ["evaluate", "--config", str(TINY_CONFIG), "--run-dir", str(run), "--test-n", str(TEST_N)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*argv, "--set", "train.threads=1"]) == 0
    return run, out.getvalue()


def test_evaluate_writes_every_model_and_metric(evaluated):
    run, printed = evaluated
    result = json.loads((run / paths.EVAL_JSON).read_text())
    assert set(result["models"]) == MODELS
    for key, model in result["models"].items():
        assert METRIC_KEYS <= set(model), (key, METRIC_KEYS - set(model))
        assert set(model["ci"]) == {"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc"}
        assert set(model["confusion"]) == {"tp", "fp", "tn", "fn"}
        assert sum(model["confusion"].values()) == result["test"]["n"]
        assert {"documented", "historical"} <= set(model["company_knowledge"])
    for key in ("fine_tuned", "prompted_base"):
        model = result["models"][key]
        assert all(model[k] is not None for k in LLM_FILLED), key
        assert model["generation_n"] == result["test"]["generation_n"] == 4
    for key in MODELS - {"fine_tuned"}:
        assert {"mcnemar_p", "mcnemar_b", "mcnemar_c"} <= set(result["models"][key])
    # the rulebook + few-shot prompt is the long one
    tuned, prompted = result["models"]["fine_tuned"], result["models"]["prompted_base"]
    assert prompted["prompt_tokens_per_request"] > 3 * tuned["prompt_tokens_per_request"]
    test = result["test"]
    assert test["n"] == TEST_N and set(test) >= {"source", "n", "by_category", "fraud_share"}
    assert sum(c["n"] for c in test["by_category"].values()) == TEST_N
    assert (run / paths.EVAL_DATA_DIR / paths.DATASET).exists()
    assert json.loads((run / paths.RUN_META).read_text())["stages"]["evaluate"]["status"] == "done"
    # the table, printed and in eval.md
    header = "| Metric | Prompted base | Rules engine | Gradient boosting | Fine-tuned | Improvement |"
    assert header in printed and header in (run / paths.EVAL_MD).read_text()
    assert "| McNemar vs fine-tuned (b/c) |" in printed
    # per-transaction predictions for every model, answers where generated
    for key in MODELS:
        rows = read_jsonl(run / paths.PREDICTIONS_DIR / f"{key}.jsonl")
        assert len(rows) == TEST_N and {"transaction_id", "truth", "label", "fraud_probability"} <= set(rows[0])
    answered = [r for r in read_jsonl(run / paths.PREDICTIONS_DIR / "fine_tuned.jsonl") if "answer" in r]
    assert len(answered) == 4 and all(0 <= r["consistency"]["agreement"] <= 1 for r in answered)  # computed
    prompted = [r for r in read_jsonl(run / paths.PREDICTIONS_DIR / "prompted_base.jsonl") if "answer" in r]
    assert all(len(r["decisions"]) == tiny_config().eval.consistency_runs for r in prompted)  # sampled
    methods = {
        k: m.get("consistency_method") for k, m in json.loads((run / paths.EVAL_JSON).read_text())["models"].items()
    }
    assert methods["fine_tuned"] == "exact" and methods["prompted_base"] == "sampled"


def test_roi_reads_the_measured_eval(evaluated):
    from fraudtune.roi import measured_inputs

    run, _ = evaluated
    inputs = measured_inputs(run)
    assert inputs.tokens["prompted_base"]["prompt"] > inputs.tokens["fine_tuned"]["prompt"] > 0


def test_prefix_cached_scoring_equals_a_full_forward_pass(trained_tiny_run):
    import torch

    from fraudtune.evaluate.baselines import few_shot_examples, prompted_chats
    from fraudtune.modeling import inference
    from fraudtune.predict import load
    from fraudtune.profile import load_profile

    predictor = load(trained_tiny_run / paths.ADAPTER_DIR)
    model, tokenizer = predictor.model, predictor.tokenizer
    data = trained_tiny_run / paths.DATA_DIR
    train = read_jsonl(data / "train.jsonl"), read_jsonl(data / "train.meta.jsonl")
    metas = read_jsonl(data / "test.meta.jsonl") + read_jsonl(data / "val.meta.jsonl")
    profile = load_profile(tiny_config().data.profile)
    chats = prompted_chats([m["transaction"] for m in metas], profile, few_shot_examples(*train, 2, seed=0))
    prompts = inference.encode_prompts(model, tokenizer, chats)
    assert prompts.prefix_len > 0.5 * min(len(ids) for ids in prompts.ids)  # the rulebook is shared
    cached = llm.score(model, tokenizer, prompts, batch_size=3, progress=False)
    whole, lengths = inference.fraud_probabilities(model, tokenizer, chats, batch_size=3, reuse_prefix=False)
    assert cached == pytest.approx(whole, abs=1e-5)
    assert lengths == [len(ids) for ids in prompts.ids]
    fraud_id, legit_id = inference.label_token_ids(tokenizer)
    for i in (0, len(chats) - 1):  # independent: the model's own forward pass over the whole prompt
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompts.ids[i]])).logits[0, -1]
        assert cached[i] == pytest.approx(float(torch.softmax(logits[[fraud_id, legit_id]], -1)[0]), abs=1e-5)
    (decoded,) = inference.generate(model, tokenizer, prompts, [0], 4)
    assert decoded.fraud_probability == pytest.approx(whole[0], abs=1e-5) and decoded.completion_tokens <= 4
    sampled = inference.generate(model, tokenizer, prompts, [0], 4, rows=3, temperature=0.7, seed=5)
    again = inference.generate(model, tokenizer, prompts, [0], 4, rows=3, temperature=0.7, seed=5)
    assert len(sampled) == 3 and [a.text for a in sampled] == [a.text for a in again]  # seeded sampling


def test_batched_answers_equal_one_request_at_a_time(trained_tiny_run):
    from fraudtune.modeling import inference
    from fraudtune.predict import load
    from fraudtune.profile import load_profile

    predictor = load(trained_tiny_run / paths.ADAPTER_DIR)
    model, tokenizer = predictor.model, predictor.tokenizer
    metas = read_jsonl(trained_tiny_run / paths.DATA_DIR / "test.meta.jsonl")[:6]
    chats = predictor.chats([m["transaction"] for m in metas])
    prompts = inference.encode_prompts(model, tokenizer, chats)
    suffix_lengths = {len(ids) - prompts.prefix_len for ids in prompts.ids}
    assert len(suffix_lengths) > 1  # rows really are padded
    alone = [inference.generate(model, tokenizer, prompts, [i], 12)[0] for i in range(6)]
    batched = inference.generate(model, tokenizer, prompts, list(range(6)), 12)
    # tight: the random tiny model barely reacts to positions (off by the padding it moves ~2e-6, right ~3e-8)
    assert [b.fraud_probability for b in batched] == pytest.approx([d.fraud_probability for d in alone], abs=3e-7)
    assert [b.ids for b in batched] == [d.ids for d in alone]
    assert [b.text for b in batched] == [d.text for d in alone]
    profile = load_profile(tiny_config().data.profile)
    answers = llm.explain(model, tokenizer, prompts, [4, 0, 2, 5], profile, 12, latency_n=2, batch_size=2)
    assert list(answers) == [4, 0, 2, 5]
    assert [answers[i]["latency_ms"] is not None for i in answers] == [True, True, False, False]
    assert [answers[i]["raw_text"] for i in answers] == [alone[i].text for i in (4, 0, 2, 5)]
    # `fraudtune predict` explains through the same generation: its answers are these
    from dataclasses import replace

    explained = replace(predictor, max_new_tokens=12).explain([m["transaction"] for m in metas], batch_size=4)
    assert [e["raw_text"] for e in explained] == [a.text for a in alone]


def test_decision_and_prefix_helpers():
    from fraudtune.modeling.inference import shared_prefix_length

    assert llm.decision_of("FRAUD\nRisk Score: 90") == "FRAUD"
    assert llm.decision_of("The answer: LEGITIMATE.") == "LEGITIMATE"
    assert llm.decision_of("FRAUDULENT-looking but fraud") is None
    assert llm.decision_of("Legitimate\nRisk Score: 50") == "LEGITIMATE"
    assert llm.decision_of("It is not legitimate, it is FRAUD") == "FRAUD"
    assert shared_prefix_length([[1, 2, 3, 4], [1, 2, 5], [1, 2, 3]]) == 2
    assert shared_prefix_length([[7, 8, 9]]) == 2  # one prompt keeps its last token to score


def test_fresh_test_set_never_repeats_training_transactions(trained_tiny_run):
    train = read_jsonl(trained_tiny_run / paths.DATA_DIR / "train.meta.jsonl")
    twin = copy.deepcopy(train[0])
    twin["transaction"]["transaction_id"], twin["transaction"]["customer"]["id"] = "T-NEW", "C-NEW"
    kept, dropped = without_overlap([twin, *train[1:3]], [train[0]["transaction"]])
    assert dropped == 1 and kept == train[1:3]
    cfg = tiny_config()
    cfg.eval.test_seed = cfg.data.seed
    with pytest.raises(FraudtuneError, match="eval.test_seed"):
        load_test_set(cfg.data, cfg.eval, trained_tiny_run, None, 10, [])


def test_default_test_set_is_the_runs_test_split(trained_tiny_run):
    cfg = tiny_config()
    test = load_test_set(cfg.data, cfg.eval, trained_tiny_run, None, None, [])
    expected = read_jsonl(trained_tiny_run / paths.DATA_DIR / "test.meta.jsonl")
    assert test.rows == expected and test.info["n"] == len(expected)
    assert test.info["fraud_share"] == sum(r["label"] == "FRAUD" for r in expected) / len(expected)
    with pytest.raises(FraudtuneError, match="metadata missing"):
        load_test_set(cfg.data, cfg.eval, trained_tiny_run, trained_tiny_run / "nope.jsonl", None, [])


def test_generation_subset_covers_every_category():
    rows = [{"category": c} for c in ["a"] * 10 + ["b"] * 5 + ["c"] * 2]
    subset = generation_subset(rows, 6, seed=0)
    assert len(subset) == 6 == len(set(subset)) and subset == sorted(subset)
    assert {rows[i]["category"] for i in subset} == {"a", "b", "c"}
    assert subset == generation_subset(rows, 6, seed=0)
    assert generation_subset(rows, 0, seed=0) == list(range(17))


def test_evaluate_without_an_adapter_is_a_one_line_error(tmp_path):
    from fraudtune.evaluate.suite import evaluate

    with pytest.raises(FraudtuneError, match="fraud-lora-adapter: not found; run `fraudtune train` first"):
        evaluate(tiny_config(), tmp_path)
    assert main(["evaluate", "--config", str(TINY_CONFIG), "--run-dir", str(tmp_path)]) == 1


def test_eval_precision_loads_both_language_models_in_that_dtype(trained_tiny_run, tmp_path, monkeypatch):
    """eval.precision=bf16: the fine-tuned model (scoring and injection) and the prompted base model are both
    loaded in bf16, and eval.json records the precision."""
    import shutil

    import torch

    import fraudtune.modeling.loading as loading
    import fraudtune.predict as predict

    seen: list[tuple[str, torch.dtype]] = []
    real_load, real_base = predict.load, loading.load_base

    def load(adapter_dir, *args, **kwargs):
        predictor = real_load(adapter_dir, *args, **kwargs)
        seen.append(("fine_tuned", next(predictor.model.parameters()).dtype))
        return predictor

    def load_base(model_cfg, dtype=torch.float32):
        seen.append(("base", dtype))
        return real_base(model_cfg, dtype)

    monkeypatch.setattr(predict, "load", load)
    monkeypatch.setattr(loading, "load_base", load_base)
    run = tmp_path / "run"
    shutil.copytree(trained_tiny_run, run)
    argv = ["evaluate", "--config", str(TINY_CONFIG), "--run-dir", str(run), "--set", "eval.precision=bf16"]
    assert main([*argv, "--set", "eval.generation_subset=4", "--set", "train.threads=1"]) == 0
    # evaluation and injection each load both; the fine-tuned model is merged in fp32, then cast
    assert [d for name, d in seen if name == "fine_tuned"] == [torch.bfloat16] * 2, seen
    assert [d for name, d in seen if name == "base"].count(torch.bfloat16) == 2, seen
    assert json.loads((run / paths.EVAL_JSON).read_text())["settings"]["precision"] == "bf16"
