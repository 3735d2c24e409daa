"""Forgetting probes: scoring primitives on hand-checkable cases, the built-in sets, the benchmark loader, the stage."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import TINY_CONFIG, tiny_config

from fraudtune import paths, stats
from fraudtune.data.general import general_instruction_pairs
from fraudtune.errors import FraudtuneError
from fraudtune.forgetting import probes
from fraudtune.forgetting.run import (
    CATEGORIES,
    LANGUAGE_KINDS,
    load_questions,
    load_resource,
    load_sets,
)
from fraudtune.forgetting.strategies import strategy_configs

ARC = Path(__file__).resolve().parents[2] / "shared" / "data" / "arc_easy_dev.jsonl"  # ../shared/data beside the repo
needs_arc = pytest.mark.skipif(not ARC.exists(), reason="../shared/data/arc_easy_dev.jsonl not present")
QUESTION_SETS = ("general_knowledge", "reasoning", "fraud_plus_general")


# ---------------------------------------------------------------- a model whose log-likelihoods are known

VOCAB = 256
HIT = 5.0  # logit of the predicted token; every other token has logit 0
LOG_Z = math.log(math.exp(HIT) + VOCAB - 1)
HIGH, LOW = HIT - LOG_Z, -LOG_Z  # log-prob of the predicted token, and of any other token


class OneHot(torch.nn.Module):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> SimpleNamespace:
        return SimpleNamespace(last_hidden_state=torch.nn.functional.one_hot(input_ids, VOCAB).float())


class NextIdModel(torch.nn.Module):
    """Predicts token id + 1 after token id with logit HIT, so every log-likelihood is HIGH or LOW.

    A one-hot "decoder" and an output layer whose weight maps id to id + 1, shaped like a causal LM.
    """

    def __init__(self) -> None:
        super().__init__()
        self.decoder = OneHot()
        self.head = torch.nn.Linear(VOCAB, VOCAB, bias=False)
        self.head.weight.data = HIT * torch.roll(torch.eye(VOCAB), 1, dims=0)

    def get_decoder(self) -> torch.nn.Module:
        return self.decoder

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.head


class CharTokenizer:
    """One token per character (its code point)."""

    pad_token_id = 0
    eos_token_id = 0

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) % VOCAB for c in text]}


def test_continuation_logprobs_match_the_closed_form_and_ignore_padding():
    model = NextIdModel()
    requests = [([10, 11], [12, 13]), ([10], [12]), ([1, 2, 3, 4, 5], [6, 9, 10])]
    expected = [[HIGH, HIGH], [LOW], [HIGH, LOW, HIGH]]
    for batch_size in (1, 3):  # padded batches give the same numbers as one-by-one
        got = probes.continuation_logprobs(model, requests, pad_id=0, batch_size=batch_size)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-5)


def test_multiple_choice_picks_the_choice_with_the_best_likelihood_per_character():
    items = [
        {"question": "q", "choices": ["bdf", "bcd"], "answer": 1},  # 'c' follows 'b' and 'd' follows 'c'
        {"question": "q", "choices": ["mn", "xz"], "answer": 1},  # wrong on purpose: 'mn' scores higher
    ]
    scores = probes.choice_scores(NextIdModel(), CharTokenizer(), items)
    # ':' -> ' ' and ' ' -> first letter are LOW for every choice; then each letter either follows its predecessor
    np.testing.assert_allclose(scores[0], [4 * LOW / 3, (2 * LOW + 2 * HIGH) / 3], rtol=1e-5)
    np.testing.assert_allclose(scores[1], [(2 * LOW + HIGH) / 2, 3 * LOW / 2], rtol=1e-5)
    assert probes.multiple_choice(NextIdModel(), CharTokenizer(), items).tolist() == [1.0, 0.0]


def test_kl_and_nll_on_two_known_distributions():
    p = torch.log(torch.tensor([[0.5, 0.5], [0.9, 0.1]]))
    q = torch.log(torch.tensor([[0.25, 0.75], [0.9, 0.1]]))
    kl, nll_p, nll_q = probes.kl_and_nll(p, q, torch.tensor([0, 1]))
    np.testing.assert_allclose(kl, [0.5 * math.log(2) + 0.5 * math.log(0.5 / 0.75), 0.0], atol=1e-6)
    np.testing.assert_allclose(nll_p, [math.log(2), -math.log(0.1)], rtol=1e-5)
    np.testing.assert_allclose(nll_q, [math.log(4), -math.log(0.1)], rtol=1e-5)


# ---------------------------------------------------------------- answer matching and text metrics


@pytest.mark.parametrize(
    "text, accepted, rejected, pick, expected",
    [
        ("The capital of France is Paris.", ["Paris"], ["Lyon", "Nice"], "first", True),
        ("paris", ["Paris"], [], "first", True),
        ("Parisian food is great", ["Paris"], [], "first", False),  # whole words only
        ("Neptune, or maybe Jupiter", ["Jupiter"], ["Neptune"], "first", False),  # first candidate named decides
        ("Paris. Lyon is the second city.", ["Paris"], ["Lyon"], "first", True),
        ("12 + 7 = 19", ["19"], ["12", "5"], "last", True),  # worked answers: the last candidate decides
        ("12 + 7 = 9", ["19"], ["12", "9"], "last", False),
        ("There are eight planets.", ["8"], ["9"], "first", True),  # number words
        ("About 300,000 km per second", ["300,000"], ["3,000"], "first", True),  # thousands separators
        ("It is 3.5 metres", ["3.5"], ["35"], "first", True),
        ("The capital is Brasilia", ["Brasília"], [], "first", True),  # accents
        ("The blue whale", ["the blue whale"], ["whale"], "last", True),  # a match inside a longer one is ignored
        ("I don't know", ["Paris"], ["Lyon"], "first", False),
        ("", ["Paris"], [], "first", False),
    ],
)
def test_answer_matches(text, accepted, rejected, pick, expected):
    assert probes.answer_matches(text, accepted, rejected, pick) is expected


def test_distinct_2_length_and_verdict_helpers():
    assert probes.distinct_n("a b a b") == pytest.approx(2 / 3)  # bigrams ab, ba, ab
    assert probes.distinct_n("one two three") == 1.0
    assert probes.distinct_n("word") == 0.0
    assert probes.looks_like_verdict("LEGITIMATE\nRisk Score: 5\nRed Flags: []")
    assert probes.looks_like_verdict("Sure.\nRisk score: 40")
    assert not probes.looks_like_verdict("The capital of France is Paris.")
    assert probes.first_label("This looks fraudulent, not legitimate.") == "FRAUD"
    assert probes.first_label("legitimate purchase") == "LEGITIMATE"
    assert probes.first_label("no idea") is None


def test_statistics_on_hand_cases():
    assert probes.perplexity(np.array([[2.0, 2], [4.0, 2]])) == pytest.approx(math.exp(1.5))
    rows = np.array([[1, 1], [1, 0], [0, 1], [0, 0]])  # tp 1, fp 1, fn 1
    assert probes.f1_fraud(rows) == pytest.approx(0.5)
    x = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    assert stats.paired_bootstrap(x, x, probes.mean, 200, 0) == (0.0, 0.0)
    assert stats.paired_bootstrap(x, x + 1, probes.mean, 200, 0) == pytest.approx((1.0, 1.0))
    seeded = [stats.paired_bootstrap(x, 1 - x, probes.mean, 200, 7) for _ in range(2)]
    assert seeded[0] == seeded[1]


# ---------------------------------------------------------------- the built-in sets


def test_set_sizes_meet_the_minima(tokenizer):
    assert len(load_resource("general_knowledge")) >= 60
    assert {q["topic"] for q in load_resource("general_knowledge")} >= {
        "capitals",
        "authors",
        "science",
        "history",
        "geography",
        "units",
    }
    tasks = load_resource("language_tasks")
    assert len(tasks) >= 20 and {t["kind"] for t in tasks} == set(LANGUAGE_KINDS)
    assert all(0 < t["min_words"] < t["max_words"] for t in tasks)
    corpus = load_resource("corpus")
    assert sum(len(tokenizer(p["text"], add_special_tokens=False)["input_ids"]) for p in corpus) >= 5000
    reasoning = load_resource("reasoning")
    assert len(reasoning) >= 40 and {q["topic"] for q in reasoning} == {"arithmetic", "logic", "commonsense"}
    assert len(load_resource("fraud_plus_general")) >= 20
    assert len(general_instruction_pairs()) >= 100


@pytest.mark.parametrize("name", QUESTION_SETS)
def test_question_sets_are_valid_and_their_answers_match_themselves(name):
    items = load_resource(name)
    assert len({q["id"] for q in items}) == len(items)
    pick = "last" if name == "reasoning" else "first"
    for q in items:  # the right choice, said plainly, is scored right; each wrong choice is scored wrong
        assert probes.is_right(f"The answer is {q['choices'][q['answer']]}.", q, pick), q["id"]
        for i, wrong in enumerate(q["choices"]):
            if i != q["answer"]:
                assert not probes.is_right(f"The answer is {wrong}.", q, pick), (q["id"], wrong)


def test_general_instruction_pairs_are_kept_apart_from_the_test_questions():
    def words(text: str) -> set[str]:
        return set(probes.normalize(text))

    def jaccard(a: set[str], b: set[str]) -> float:
        return len(a & b) / len(a | b)

    tests = [q for name in QUESTION_SETS for q in load_resource(name)]
    test_texts = [words(q["question"]) for q in tests]
    test_texts += [words(t["instruction"] + " " + t.get("text", "")) for t in load_resource("language_tasks")]
    answers = [[probes.normalize(a) for a in [q["choices"][q["answer"]], *q["aliases"]]] for q in tests]
    for pair in general_instruction_pairs():
        asked, told = words(pair["question"]), probes.normalize(pair["question"] + " " + pair["answer"])
        assert max(jaccard(asked, other) for other in test_texts) < 0.5, pair["question"]
        for other, accepted in zip(test_texts, answers, strict=False):  # a similar question that gives the answer
            leaks = any(probes._find(told, a) for a in accepted)
            assert not (jaccard(asked, other) >= 0.3 and leaks), pair["question"]


# ---------------------------------------------------------------- the external benchmark


@needs_arc
def test_benchmark_loader_reads_arc_and_scores_a_few_items(tokenizer):
    from fraudtune.modeling.loading import tiny_random_llama

    items = load_questions(ARC, require_id=False)
    assert len(items) == 1000 and all(0 <= q["answer"] < len(q["choices"]) for q in items)
    model = tiny_random_llama(tiny_config().model).eval()
    correct = probes.multiple_choice(model, tokenizer, items[:4])
    assert correct.shape == (4,) and set(correct.tolist()) <= {0.0, 1.0}


BAD_INDEX = "answer: need the index of the right choice (0..1)"


@pytest.mark.parametrize(
    "line, message",
    [  # every bad line is the second line of its file
        ('{"choices": ["a", "b"], "answer": 0}', "question: missing or not a non-empty string"),
        ('{"question": "q?", "choices": "a b", "answer": 0}', "choices: need a list of at least 2 non-empty strings"),
        ('{"question": "q?", "choices": ["a"], "answer": 0}', "choices: need a list of at least 2 non-empty strings"),
        ('{"question": "q?", "choices": ["a", "b"], "answer": 2}', BAD_INDEX),
        ('{"question": "q?", "choices": ["a", "b"], "answer": true}', BAD_INDEX),
        ('{"question": "q?", "choices": ["a", "b"], "answer": 0, "aliases": "x"}', "aliases: need a list of strings"),
        ('{"question": "q?", "choices": ["a", "b"], "answer": 0', "invalid JSON (Expecting ',' delimiter)"),
    ],
)
def test_benchmark_loader_names_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "bench.jsonl"
    path.write_text('{"question": "ok?", "choices": ["a", "b"], "answer": 1}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(FraudtuneError) as err:
        load_questions(path, require_id=False)
    assert str(err.value) == f"{path}:2: {message}"


def test_missing_benchmark_is_a_one_line_error(tmp_path):
    with pytest.raises(FraudtuneError, match="benchmark file not found"):
        load_questions(tmp_path / "nope.jsonl")


# ---------------------------------------------------------------- the stage


def _fake_test_split(run_dir: Path, n: int) -> None:
    meta = paths.meta_file(paths.split_file(run_dir / paths.DATA_DIR, "test"))
    meta.parent.mkdir(parents=True)
    rows = [{"transaction": {"transaction_id": f"T{i}"}, "label": "FRAUD" if i % 2 else "LEGITIMATE"} for i in range(n)]
    meta.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_fast_sets_are_seeded_subsets_paired_with_test_transactions(tmp_path):
    _fake_test_split(tmp_path, 5)
    cfg = tiny_config("forgetting.fast=true", "forgetting.fast_n=8")
    sets = load_sets(cfg, tmp_path)
    assert sets.sizes() == {
        "general_knowledge": 8,
        "benchmark": 0,
        "language": 4,
        "corpus": 2,
        "reasoning": 8,
        "fraud": 5,
        "fraud_plus_general": 8,
    }
    assert [q["id"] for q in sets.reasoning] == [q["id"] for q in load_sets(cfg, tmp_path).reasoning]
    assert [q["transaction"]["transaction_id"] for q in sets.fraud_plus_general[:6]] == [
        "T0",
        "T1",
        "T2",
        "T3",
        "T4",
        "T0",
    ]
    assert load_sets(tiny_config("forgetting.fast=true", "forgetting.fast_n=2"), tmp_path).sizes()["corpus"] == 1
    full = load_sets(tiny_config("forgetting.fast=false"), tmp_path)
    assert full.sizes()["general_knowledge"] == len(load_resource("general_knowledge"))


def test_forgetting_without_a_test_split_says_what_to_do(tmp_path):
    with pytest.raises(FraudtuneError, match="train the run first"):
        load_sets(tiny_config(), tmp_path)


def test_forgetting_cli_writes_the_five_categories_before_and_after(tiny_run_copy, capsys):
    from fraudtune.cli import main

    args = [
        "forgetting",
        "--config",
        str(TINY_CONFIG),
        "--run-dir",
        str(tiny_run_copy),
        "--set",
        "forgetting.fast_n=4",
        "--set",
        "forgetting.long_max_new_tokens=8",
    ]
    if ARC.exists():
        args += ["--benchmark", str(ARC)]
    assert main(args) == 0
    result = json.loads((tiny_run_copy / paths.FORGETTING_JSON).read_text())
    for category in CATEGORIES:
        block = result[category]
        assert {"metric", "before", "after", "delta", "ci", "metrics"} <= set(block), category
        assert block["delta"] == pytest.approx(block["after"] - block["before"], abs=1e-3)
        assert block["ci"][0] <= block["ci"][1]
    assert result["language"]["kl_divergence"]["tokens"] > 0
    assert ("benchmark_accuracy" in result["general_knowledge"]["metrics"]) == ARC.exists()
    markdown = (tiny_run_copy / paths.FORGETTING_MD).read_text()
    assert "| fraud | **f1** ↑ |" in markdown and markdown.strip() in capsys.readouterr().out


def test_strategy_configs_change_one_thing_each():
    cfg = tiny_config()
    configs = strategy_configs(cfg)
    assert list(configs) == ["lora", "full", "mix_80_20", "lower_lr", "fewer_epochs", "regularised"]
    ref = configs["lora"][1]
    assert ref.data.n == cfg.forgetting.strategy_n and ref.train.epochs == cfg.forgetting.strategy_epochs
    assert ref.forgetting.fast and ref.lora.method == "lora"

    def changed(name: str) -> dict[str, object]:
        a, b = ref.model_dump(), configs[name][1].model_dump()
        return {f"{s}.{k}": b[s][k] for s in a if isinstance(a[s], dict) for k in a[s] if a[s][k] != b[s][k]}

    assert changed("full") == {"lora.method": "full"}
    assert changed("mix_80_20") == {"train.general_mix": 0.2}
    assert changed("lower_lr") == {"train.lr": pytest.approx(cfg.train.lr / 10)}
    assert changed("fewer_epochs") == {"train.epochs": cfg.forgetting.strategy_epochs // 2}
    assert changed("regularised") == {"lora.dropout": 0.3, "train.weight_decay": 0.1}


def test_strategies_train_each_run_and_tabulate_fraud_f1_against_forgetting(tmp_path):
    """LoRA (one PEFT model is both base and tuned) and full fine-tuning (a separate base): both code paths."""
    from fraudtune.forgetting.strategies import forgetting_strategies

    cfg = tiny_config(
        "forgetting.strategy_n=16",
        "forgetting.fast_n=2",
        "forgetting.max_new_tokens=4",
        "forgetting.long_max_new_tokens=8",
        "forgetting.strategies=[lora, full]",
    )
    result = forgetting_strategies(cfg, tmp_path)
    table = json.loads((tmp_path / paths.FORGETTING_STRATEGIES_JSON).read_text())
    assert [row["name"] for row in table["strategies"]] == ["lora", "full"]
    for row in table["strategies"]:
        assert 0 <= row["fraud_f1"] <= 1 and row["kl_divergence"] >= 0
        assert set(row["deltas"]) == {"general_knowledge", "language", "reasoning", "fraud_plus_general"}
        assert (tmp_path / "forgetting-strategies" / row["name"] / paths.FORGETTING_JSON).exists()
    full_dir = tmp_path / "forgetting-strategies" / "full" / paths.ADAPTER_DIR
    assert (full_dir / "model.safetensors").exists() and not (full_dir / "adapter_config.json").exists()
    markdown = (tmp_path / paths.FORGETTING_STRATEGIES_MD).read_text()
    assert markdown == result["markdown"]
    assert sum(line.startswith("| ") for line in markdown.splitlines()) == 1 + 2  # header + one row per strategy
    done = (tmp_path / "forgetting-strategies" / "lora" / paths.FORGETTING_JSON).stat().st_mtime_ns
    forgetting_strategies(cfg, tmp_path)  # a finished strategy is not trained again
    assert (tmp_path / "forgetting-strategies" / "lora" / paths.FORGETTING_JSON).stat().st_mtime_ns == done

    # re-judged on the standard suite: no retraining, the base model scored once for both, one trade-off table
    from test_suite import fake_wheel

    wheel = fake_wheel(tmp_path / "suite.whl")
    suite_cfg = cfg.model_copy(deep=True)
    suite_cfg.forgetting.suite, suite_cfg.forgetting.suite_data = "standard", wheel
    suite_cfg.forgetting.suite_tasks = ["arc_easy", "piqa"]
    result = forgetting_strategies(suite_cfg, tmp_path)
    assert (tmp_path / "forgetting-strategies" / "lora" / paths.FORGETTING_JSON).stat().st_mtime_ns == done
    base_files = sorted(p.name for p in (tmp_path / "forgetting-strategies" / "suite-base").iterdir())
    assert base_files == ["arc_easy.base.json", "piqa.base.json"]
    for name in ("lora", "full"):
        own = sorted(p.name for p in (tmp_path / "forgetting-strategies" / name / "forgetting_suite").iterdir())
        assert own == ["arc_easy.fine_tuned.json", "piqa.fine_tuned.json"]
    rows = {row["name"]: row for row in result["strategies"]}
    assert set(rows["full"]["suite"]["tasks"]) == {"arc_easy", "piqa"} and 0 <= rows["full"]["fraud_accuracy"] <= 1
    assert "| full | " in result["markdown"] and "Retention on the standard benchmarks" in result["markdown"]
    assert (tmp_path / "forgetting_strategies_suite.png").stat().st_size > 0
