"""`fraudtune export`: the merged folder and the GGUF file load back on their own and score as the adapter does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from spec_oracle import read_jsonl

from fraudtune import paths
from fraudtune.cli import main
from fraudtune.predict import Predictor, load

PROBABILITY_TOLERANCE = {"fp32": 1e-4, "f16": 2e-2, "q8_0": 5e-2}


def _test_transactions(run: Path) -> list[dict]:
    meta = paths.meta_file(paths.split_file(run / paths.DATA_DIR, "test"))
    return [m["transaction"] for m in read_jsonl(meta)]


def _probabilities(model, tokenizer, like: Predictor, transactions: list[dict]) -> list[float]:
    twin = Predictor(model=model.eval(), tokenizer=tokenizer, profile=like.profile, answer_order=like.answer_order)
    return [r["fraud_probability"] for r in twin.score(transactions)]


def _assert_agree(reference: list[float], exported: list[float], tolerance: float) -> None:
    assert [p >= 0.5 for p in exported] == [p >= 0.5 for p in reference]
    worst = max(abs(a - b) for a, b in zip(reference, exported, strict=True))
    assert worst <= tolerance, f"largest probability difference {worst:.4g} > {tolerance}"


def test_merged_folder_loads_alone_and_scores_as_the_adapter(trained_tiny_run, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "merged"
    assert main(["export", "--adapter", str(trained_tiny_run / paths.ADAPTER_DIR), "--merged", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["merged"] == str(out)
    model = AutoModelForCausalLM.from_pretrained(out)  # nothing but the folder
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.chat_template and "model.safetensors" in {p.name for p in out.iterdir()}
    adapter = load(trained_tiny_run / paths.ADAPTER_DIR)
    transactions = _test_transactions(trained_tiny_run)
    reference = [r["fraud_probability"] for r in adapter.score(transactions)]
    _assert_agree(reference, _probabilities(model, tokenizer, adapter, transactions), PROBABILITY_TOLERANCE["fp32"])


@pytest.mark.parametrize("kind", ["f16", "q8_0"])
def test_gguf_loads_through_transformers_and_scores_as_the_adapter(tmp_path, capsys, kind):
    from transformers import AutoModelForCausalLM

    from fraudtune.train import train

    run = tmp_path / "run"  # hidden size 64: q8_0 packs rows of 32 values
    train(tiny_config("model.tiny_hidden=64", "train.epochs=1", "data.n=24"), run)
    gguf_file = tmp_path / "gguf" / "fraud.gguf"
    argv = ["export", "--adapter", str(run / paths.ADAPTER_DIR), "--gguf", str(gguf_file), "--type", kind]
    assert main(argv) == 0
    modelfile = (gguf_file.parent / "Modelfile").read_text()
    assert modelfile.startswith("FROM ./fraud.gguf\n") and 'PARAMETER stop "<|im_end|>"' in modelfile
    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32)
    adapter = load(run / paths.ADAPTER_DIR)
    transactions = _test_transactions(run)
    reference = [r["fraud_probability"] for r in adapter.score(transactions)]
    exported = _probabilities(model, adapter.tokenizer, adapter, transactions)
    _assert_agree(reference, exported, PROBABILITY_TOLERANCE[kind])


def test_export_wants_an_output(trained_tiny_run, capsys):
    assert main(["export", "--adapter", str(trained_tiny_run / paths.ADAPTER_DIR)]) == 1
    assert "error: export: pass --merged DIR and/or --gguf FILE.gguf" in capsys.readouterr().err
