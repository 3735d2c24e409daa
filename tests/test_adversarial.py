"""Adversarial training rows: payloads in the merchant name, answers untouched, held apart from the test payloads."""

from __future__ import annotations

import pytest
from conftest import tiny_config

from fraudtune import paths
from fraudtune.data.adversarial import TRAIN_PAYLOADS, harden, plant
from fraudtune.data.chat import parse_answer, sanitize_free_text
from fraudtune.data.generate import generate
from fraudtune.errors import FraudtuneError
from fraudtune.evaluate.injection import PAYLOADS
from fraudtune.files import read_jsonl
from fraudtune.profile import load_profile
from fraudtune.train import harden_rows, load_split

PROFILE = "configs/profiles/demo_issuer.yaml"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("adv") / "data"
    generate(out, profile_path=PROFILE, n=60, seed=5)
    return out


def test_a_share_of_rows_gets_a_payload_and_keeps_its_answer(data_dir):
    rows = load_split(data_dir, "train")
    split = paths.split_file(data_dir, "train")
    hardened = harden(rows, split, load_profile(PROFILE), 0.25, seed=1)
    assert len(hardened) == len(rows)
    changed = [i for i, (a, b) in enumerate(zip(rows, hardened, strict=True)) if a != b]
    assert len(changed) == round(len(rows) * 0.25)
    planted = {sanitize_free_text(p) for p in TRAIN_PAYLOADS}
    for i in changed:
        before, after = rows[i]["messages"], hardened[i]["messages"]
        assert [m["role"] for m in before] == [m["role"] for m in after]
        assert before[0] == after[0] and before[-1] == after[-1]  # system prompt and answer kept
        merchant_line = next(line for line in after[1]["content"].splitlines() if line.startswith("Merchant:"))
        assert any(p[:20] in merchant_line for p in planted), merchant_line
        assert "<|im_start|>" not in after[1]["content"]  # rendered sanitised, as at inference
    assert rows == load_split(data_dir, "train")  # the input rows are not modified


def test_labels_are_unchanged_and_the_choice_is_seeded(data_dir):
    rows = load_split(data_dir, "train")
    split, profile = paths.split_file(data_dir, "train"), load_profile(PROFILE)
    a, b = harden(rows, split, profile, 0.5, seed=3), harden(rows, split, profile, 0.5, seed=3)
    assert a == b
    assert a != harden(rows, split, profile, 0.5, seed=4)
    labels = [parse_answer(r["messages"][-1]["content"], profile).label for r in rows]
    assert labels == [parse_answer(r["messages"][-1]["content"], profile).label for r in a]
    assert harden(rows, split, profile, 0.0, seed=3) is rows


def test_training_payloads_are_not_the_evaluation_payloads():
    evaluation = {sanitize_free_text(p).lower() for p in PAYLOADS.values()}
    for payload in TRAIN_PAYLOADS:
        text = sanitize_free_text(payload).lower()
        assert text not in evaluation
        assert not any(e in text or text in e for e in evaluation), payload
    towards = {"LEGITIMATE" in p or "safe" in p or "approve" in p for p in TRAIN_PAYLOADS}
    assert towards == {True, False}  # both directions: odd text must not mean FRAUD


def test_plant_positions():
    assert plant("Shop", "X", "suffix") == "Shop X"
    assert plant("Shop", "X", "prefix") == "X Shop"
    assert plant("Shop", "X", "replace") == "X"


def test_a_meta_file_out_of_step_is_a_clear_error(data_dir, tmp_path):
    rows = load_split(data_dir, "train")
    split = tmp_path / "train.jsonl"
    split.write_text(paths.split_file(data_dir, "train").read_text())
    meta = paths.meta_file(paths.split_file(data_dir, "train")).read_text().splitlines()
    paths.meta_file(split).write_text("\n".join(meta[:-1]) + "\n")
    with pytest.raises(FraudtuneError, match=r"train\.meta\.jsonl.*records for"):
        harden(rows, split, load_profile(PROFILE), 0.2, seed=0)


def test_train_hook_follows_the_config(data_dir):
    rows = load_split(data_dir, "train")
    assert harden_rows(rows, data_dir, tiny_config()) is rows
    hardened = harden_rows(rows, data_dir, tiny_config("train.adversarial_share=0.5"))
    assert sum(a != b for a, b in zip(rows, hardened, strict=True)) == round(len(rows) * 0.5)
    assert len(read_jsonl(paths.split_file(data_dir, "train"))) == len(rows)  # nothing written back
