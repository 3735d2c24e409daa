"""Training on the tiny random Llama: run-directory contract, answer-only labels, adapter, resume, early stop."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_config
from safetensors.torch import load_file

from fraudtune import paths
from fraudtune.errors import FraudtuneError
from fraudtune.files import read_jsonl
from fraudtune.modeling.tokens import IGNORE_INDEX, encode_example
from fraudtune.train import EarlyStopping, EpochCheckpoints, checkpoint_seconds, last_checkpoint, select_best, train

EXPECTED_RUN_FILES = {
    "config.yaml",
    "meta.json",
    "metrics.jsonl",
    "train_summary.json",
    "data",
    "checkpoints",
    "fraud-lora-adapter",
}


def test_run_directory_holds_exactly_the_documented_files(trained_tiny_run):
    assert {p.name for p in trained_tiny_run.iterdir()} == EXPECTED_RUN_FILES
    adapter = {p.name for p in (trained_tiny_run / paths.ADAPTER_DIR).iterdir()}
    assert adapter == {"adapter_config.json", "adapter_model.safetensors", "fraudtune_config.yaml", "manifest.json"}
    epochs = sorted(p.name for p in (trained_tiny_run / paths.CHECKPOINTS_DIR).iterdir())
    assert epochs == ["best.txt", "epoch-1", "epoch-2"]
    best = (trained_tiny_run / paths.CHECKPOINTS_DIR / paths.BEST_CHECKPOINT).read_text().strip()
    losses = {
        e: json.loads((trained_tiny_run / paths.CHECKPOINTS_DIR / e / "epoch.json").read_text())["val_loss"]
        for e in ("epoch-1", "epoch-2")
    }
    assert best == min(losses, key=losses.get)
    meta = json.loads((trained_tiny_run / paths.RUN_META).read_text())
    assert meta["stages"]["train"]["status"] == "done"


def test_metrics_log_has_train_and_val_events(trained_tiny_run):
    rows = read_jsonl(trained_tiny_run / paths.METRICS)
    assert {r["split"] for r in rows} == {"train", "val"}
    assert sum("val_accuracy" in r for r in rows) == 2  # one per epoch
    assert all({"step", "epoch"} <= set(r) for r in rows)
    logged = [r for r in rows if "loss" in r and r["split"] == "train"]
    assert logged and all(0 < r["rss_mb"] <= r["peak_rss_mb"] for r in logged)  # memory over the run


def test_summary_reports_trainable_parameter_line(trained_tiny_run):
    summary = json.loads((trained_tiny_run / paths.TRAIN_SUMMARY).read_text())
    assert summary["trainable"].startswith("trainable params: ")
    assert " || all params: " in summary["trainable"] and "trainable%: " in summary["trainable"]
    assert summary["steps"] > 0 and summary["tokens_per_second"] > 0
    assert len(summary["val_loss_per_epoch"]) == 2


def test_only_assistant_tokens_carry_labels(tokenizer):
    messages = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "LEGITIMATE\nRisk Score: 5\nRed Flags: []\nReasoning: fine."},
    ]
    example = encode_example(messages, tokenizer, max_length=512)
    answer_ids = tokenizer(messages[-1]["content"] + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    supervised = [t for t, lab in zip(example["input_ids"], example["labels"], strict=True) if lab != IGNORE_INDEX]
    assert supervised == answer_ids
    first = example["labels"].index(next(x for x in example["labels"] if x != IGNORE_INDEX))
    assert tokenizer.decode(example["input_ids"][:first]).endswith("<|im_start|>assistant\n")
    cut = encode_example(messages, tokenizer, max_length=10)
    assert cut["truncated"] and len(cut["input_ids"]) == 10


def test_lora_trains_adapter_and_leaves_base_weights(trained_tiny_run, tiny_model_dir):
    adapter = load_file(trained_tiny_run / paths.ADAPTER_DIR / "adapter_model.safetensors")
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: any change means training happened
    assert not any("lora" not in k for k in adapter)  # the adapter file holds no base weights
    from fraudtune.modeling.loading import load_for_inference

    model, _, _ = load_for_inference(trained_tiny_run / paths.ADAPTER_DIR, merge=False)
    base = load_file(tiny_model_dir / "model.safetensors")
    state = {k.replace("base_model.model.", "").replace(".base_layer", ""): v for k, v in model.state_dict().items()}
    assert torch.equal(state["model.layers.0.self_attn.q_proj.weight"], base["model.layers.0.self_attn.q_proj.weight"])


def test_adapter_reloads_with_plain_peft(trained_tiny_run, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = PeftModel.from_pretrained(base, trained_tiny_run / paths.ADAPTER_DIR)
    assert any("lora_A" in n for n, _ in model.named_parameters())


def test_lora_fits_one_batch(tmp_path):
    """LoRA alone on the tiny model: its 16-wide random layers under frozen random tied embeddings can only nudge
    the logits (over a whole epoch the drop is below the batch-to-batch spread), so the check is one fixed batch
    fitted step by step: its loss falls at every stretch of steps (at a learning rate of 0.02: at 0.05 Adam's steps
    overshoot on some batches and the loss wanders)."""
    from fraudtune.modeling.tokens import collate
    from fraudtune.train import answer_only_loss, build_model, encode_rows, ensure_data, load_split

    cfg = tiny_config("data.n=16", "lora.r=16", "lora.dropout=0", "lora.target_modules=all-linear")
    model, tokenizer = build_model(cfg)
    encoded, _ = encode_rows(load_split(ensure_data(cfg, tmp_path), "train")[:4], tokenizer, cfg.data.max_length)
    batch = {k: v for k, v in collate(encoded, tokenizer.pad_token_id).items() if k != "weights"}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.02)
    model.train()
    losses = []
    for _ in range(40):
        loss = answer_only_loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    stretches = [sum(losses[i : i + 10]) / 10 for i in range(0, 40, 10)]
    assert all(b < a for a, b in zip(stretches, stretches[1:], strict=False)), losses
    assert losses[-1] < losses[0] - 0.05, losses


@pytest.mark.parametrize(("method", "extra", "min_drop"), [("full", ["train.lr=0.05"], 1.0)])
def test_loss_falls_when_overfitting_a_tiny_set(tmp_path, method, extra, min_drop):
    cfg = tiny_config(
        "data.n=16",
        "train.epochs=6",
        "train.warmup_steps=0",
        "lora.r=16",
        f"lora.method={method}",
        "train.early_stopping_patience=0",
        "train.logging_steps=1",
        *extra,
    )
    train(cfg, tmp_path)
    losses = [r["loss"] for r in read_jsonl(tmp_path / paths.METRICS) if r["split"] == "train" and "loss" in r]
    per_epoch = len(losses) // 6  # one logged loss per step; the first and the last epoch's means, not one batch each
    first, last = sum(losses[:per_epoch]) / per_epoch, sum(losses[-per_epoch:]) / per_epoch
    assert last < first - min_drop, losses


def test_resume_after_interrupt_matches_uninterrupted_run(tmp_path, monkeypatch):
    cfg = tiny_config("train.epochs=3", "train.early_stopping_patience=0")
    train(cfg, tmp_path / "straight")

    original = EpochCheckpoints.on_save

    def stop_after_epoch_two(self, args, state, control, **kwargs):
        original(self, args, state, control, **kwargs)
        if round(state.epoch) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(EpochCheckpoints, "on_save", stop_after_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "killed")
    assert json.loads((tmp_path / "killed" / paths.RUN_META).read_text())["status"] == "cancelled"
    monkeypatch.setattr(EpochCheckpoints, "on_save", original)
    train(cfg, tmp_path / "killed", resume=True)
    a = load_file(tmp_path / "straight" / paths.ADAPTER_DIR / "adapter_model.safetensors")
    b = load_file(tmp_path / "killed" / paths.ADAPTER_DIR / "adapter_model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)


def test_same_config_and_seed_give_the_same_adapter(tmp_path):
    cfg = tiny_config("train.epochs=1")
    train(cfg, tmp_path / "a")
    train(cfg, tmp_path / "b")
    a = load_file(tmp_path / "a" / paths.ADAPTER_DIR / "adapter_model.safetensors")
    b = load_file(tmp_path / "b" / paths.ADAPTER_DIR / "adapter_model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


class _Control:
    should_training_stop = False


@pytest.mark.parametrize(
    ("losses", "patience", "stops_after"),
    [
        ([3.0, 2.0, 1.0], 2, None),
        ([3.0, 3.1, 3.2], 2, 3),
        ([3.0, 3.1, 2.0, 2.5], 1, 2),
    ],
)
def test_early_stopping_counts_epochs_without_improvement(losses, patience, stops_after):
    callback, control = EarlyStopping(patience), _Control()
    stopped = None
    for epoch, loss in enumerate(losses, 1):
        callback.on_evaluate(None, None, control, metrics={"eval_loss": loss})
        if control.should_training_stop and stopped is None:
            stopped = epoch
    assert stopped == stops_after


def test_best_checkpoint_is_lowest_validation_loss(tmp_path):
    for epoch, loss in [(1, 2.0), (2, 1.5), (3, 1.7)]:
        folder = tmp_path / paths.CHECKPOINTS_DIR / f"epoch-{epoch}"
        folder.mkdir(parents=True)
        (folder / "epoch.json").write_text(json.dumps({"epoch": epoch, "val_loss": loss}))
    assert select_best(tmp_path).name == "epoch-2"
    assert (tmp_path / paths.CHECKPOINTS_DIR / paths.BEST_CHECKPOINT).read_text().strip() == "epoch-2"


def test_decision_weight_scales_only_the_first_answer_token():
    from fraudtune.train import answer_only_loss

    class Echo(torch.nn.Module):
        """hidden state = embedding; head = linear: a model whose per-token losses are easy to recompute."""

        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.emb, self.head = torch.nn.Embedding(10, 4), torch.nn.Linear(4, 10)

        def get_decoder(self):
            return lambda input_ids, attention_mask: type("Out", (), {"last_hidden_state": self.emb(input_ids)})

        def get_output_embeddings(self):
            return self.head

    model = Echo()
    ids = torch.tensor([[1, 2, 3, 4, 5], [1, 2, 3, 4, 0]])
    labels = torch.tensor([[-100, -100, 3, 4, 5], [-100, 2, 3, 4, -100]])
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    logits = model.head(model.emb(ids))
    ce = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 10), labels[:, 1:].reshape(-1), reduction="none", ignore_index=-100
    ).reshape(2, 4)
    # supervised positions: row 0 predicts tokens at 2,3,4 (first = 3); row 1 predicts 1,2,3 (first = 2)
    plain = (ce[0, 1:].sum() + ce[1, :3].sum()) / 6
    weighted = (10 * ce[0, 1] + ce[0, 2:].sum() + 10 * ce[1, 0] + ce[1, 1:3].sum()) / 6
    torch.testing.assert_close(answer_only_loss(model, batch), plain)
    torch.testing.assert_close(answer_only_loss(model, batch, decision_weight=10.0), weighted)
    # per-token weights (collate's "weights", aligned with input_ids) replace the first-token rule
    per_token = torch.tensor([[0, 0, 1, 3, 1], [0, 2, 1, 1, 0]], dtype=torch.float)
    expected = (ce[0, 1] + 3 * ce[0, 2] + ce[0, 3] + 2 * ce[1, 0] + ce[1, 1:3].sum()) / 6
    torch.testing.assert_close(answer_only_loss(model, {**batch, "weights": per_token}), expected)


def test_answer_weights_on_whole_flag_heads(tokenizer) -> None:
    """train.flag_head_weight: the heads that share their first token are told apart on a later one, which is
    weighted too; a head without a detail ends at its comma; the rest of the answer is as without it."""
    from fraudtune.modeling.tokens import answer_weights

    answer = (
        "Red Flags: [High-risk country (VE; +30 = 30), High amount (21x average; +30 = 60), New device, "
        "Card testing ($1.20, 5 in 24h)]\nRisk Score: 90\nFRAUD\nReasoning: y"
    )
    enc = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)
    heads = answer_weights(answer, enc["offset_mapping"], 10.0, 3.0, whole_head=True)
    first = answer_weights(answer, enc["offset_mapping"], 10.0, 3.0)
    tokens = [answer[a:b] for a, b in enc["offset_mapping"]]
    added = [t for t, h, f in zip(tokens, heads, first, strict=True) if h != f]
    assert added == ["-", "risk", " country", " amount", " device", " testing"]
    assert all(h >= f for h, f in zip(heads, first, strict=True))


@pytest.mark.parametrize(
    ("answer", "weighted"),
    [
        # verdict first: the verdict's first token, the score's digits, the '[' token, the first token of each
        # flag and the token after each flag (another one follows, or the list ends)
        (
            "FRAUD\nRisk Score: 90\nRed Flags: [Manual key entry (TC-07, $620.00), New device (first use)]\n"
            "Reasoning: x",
            [("F", 10.0), ("9", 3.0), ("0", 3.0), (" [", 3.0), ("Man", 3.0), ("),", 3.0), (" New", 3.0), (")]", 3.0)],
        ),
        # evidence first, no flags: ' []' says so in one token, then the score and the verdict
        (
            "Red Flags: []\nRisk Score: 10\nLEGITIMATE\nReasoning: y",
            [(" []", 3.0), ("1", 3.0), ("0", 3.0), ("LEG", 10.0)],
        ),
        # evidence first, a legitimate answer's minor signal stated before its score and verdict
        (
            "Red Flags: [New device (first use)]\nRisk Score: 10\nLEGITIMATE\nReasoning: y",
            [(" [", 3.0), ("New", 3.0), (")]", 3.0), ("1", 3.0), ("0", 3.0), ("LEG", 10.0)],
        ),
        # evidence first with the running totals (data.score_tally): each total's digits too, not the weight added
        (
            "Red Flags: [Velocity burst (7 in 1h), New device (first use; +10 = 10), First-time category "
            "(gift_cards; +5 = 15)]\nRisk Score: 90\nFRAUD\nReasoning: y",
            [(" [", 3.0), ("Vel", 3.0), ("),", 3.0), (" New", 3.0), ("1", 3.0), ("0", 3.0), ("),", 3.0)]
            + [(" First", 3.0), ("1", 3.0), ("5", 3.0), (")]", 3.0), ("9", 3.0), ("0", 3.0), ("F", 10.0)],
        ),
    ],
)
def test_answer_weights_mark_the_verdict_and_the_flag_openings(tokenizer, answer: str, weighted: list) -> None:
    from fraudtune.modeling.tokens import answer_weights

    enc = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)
    weights = answer_weights(answer, enc["offset_mapping"], 10.0, 3.0)
    spans = [(answer[a:b], w) for (a, b), w in zip(enc["offset_mapping"], weights, strict=True) if w != 1]
    assert spans == weighted


def test_bf16_freezes_the_base_in_bf16_and_the_trainer_autocasts(tmp_path):
    """precision bf16: frozen weights bf16, LoRA weights fp32, and the loss runs under autocast (the loss calls the
    decoder directly, past accelerate's autocast wrapper on model.forward: it once ran silently in fp32)."""
    from fraudtune.train import build_model, build_trainer, encode_rows, ensure_data, load_split

    cfg = tiny_config("train.precision=bf16", "data.n=20")
    model, tokenizer = build_model(cfg)
    dtypes = {(p.requires_grad, p.dtype) for p in model.parameters()}
    assert dtypes == {(False, torch.bfloat16), (True, torch.float32)}
    data_dir = ensure_data(cfg, tmp_path)
    rows = load_split(data_dir, "train")
    encoded, _ = encode_rows(rows, tokenizer, cfg.data.max_length)
    trainer = build_trainer(cfg, tmp_path, model, tokenizer, encoded, encoded[:2], [r["messages"] for r in rows[:2]])
    seen = []
    q_proj = next(m for n, m in model.named_modules() if n.endswith("q_proj.base_layer"))
    handle = q_proj.register_forward_hook(
        lambda mod, args, out: seen.append((torch.is_autocast_enabled("cpu"), out.dtype))
    )
    batch = trainer.data_collator(encoded[:2])
    loss = trainer.compute_loss(model, batch)
    handle.remove()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert seen and all(autocast and out == torch.bfloat16 for autocast, out in seen)

    fp32_model, _ = build_model(tiny_config("train.precision=fp32", "data.n=20"))
    assert {p.dtype for p in fp32_model.parameters()} == {torch.float32}


def test_collate_rounds_the_batch_width_and_pads_with_ignored_labels():
    from fraudtune.modeling.tokens import IGNORE_INDEX, collate

    batch = [
        {"input_ids": [5] * 33, "labels": [IGNORE_INDEX] * 30 + [5] * 3},
        {"input_ids": [6] * 3, "labels": [6] * 3},
    ]
    out = collate(batch, pad_id=0, multiple=32)
    assert out["input_ids"].shape == (2, 64)
    assert int(out["attention_mask"].sum()) == 36 and int((out["labels"] != IGNORE_INDEX).sum()) == 6
    assert collate(batch, pad_id=0)["input_ids"].shape == (2, 33)


def test_freed_memory_goes_back_to_the_os():
    import sys

    from fraudtune.train import ReturnFreedMemory

    callback = ReturnFreedMemory(every=2)
    if not sys.platform.startswith("linux"):
        assert callback.trim is None or callable(callback.trim)
        return
    from fraudtune.train import memory_mb

    blocks = [bytearray(64 * 1024) for _ in range(8000)]  # ~500 MB in small (heap, not mmap) chunks
    del blocks[:-1]  # the last one pins the heap top: freed memory stays mapped until trimmed
    before, _ = memory_mb()
    callback.on_step_end(None, type("State", (), {"global_step": 4})(), None)
    after, _ = memory_mb()
    assert before - after > 300, (before, after)


FRAGMENT = """
import sys
from fraudtune.train import fix_mmap_threshold, memory_mb
if sys.argv[1] == "fixed":
    assert fix_mmap_threshold(128 * 1024)
big = bytearray(20 * 2**20)  # a mapped block; freeing it raises glibc's own threshold to 20 MB
del big
blocks = [bytearray(2 * 2**20) for _ in range(200)]  # 400 MB of activation-sized blocks
last = blocks[-1]  # still in use, on top of the others
del blocks
print(memory_mb()[0])
"""


def test_a_fixed_mmap_threshold_gives_freed_blocks_back():
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    rss = {}
    for mode in ("glibc", "fixed"):
        out = subprocess.run([sys.executable, "-c", FRAGMENT, mode], capture_output=True, text=True, check=True)
        rss[mode] = float(out.stdout.split()[-1])
    assert rss["glibc"] - rss["fixed"] > 300, rss  # 398 MB of freed 2 MB blocks stay mapped without it


def test_evidence_first_run_trains_scores_and_predicts(tmp_path):
    """data.answer_order=evidence_first end to end on the tiny model: the data, the weighted loss, validation
    accuracy read after the written evidence, and SPEC records from the adapter."""
    import fraudtune

    cfg = tiny_config("data.answer_order=evidence_first", "train.flag_weight=3", "train.epochs=1")
    train(cfg, tmp_path)
    answer = read_jsonl(tmp_path / paths.DATA_DIR / "train.jsonl")[0]["messages"][-1]["content"]
    assert answer.startswith("Red Flags: [")
    scored = [row for row in read_jsonl(tmp_path / paths.METRICS) if "val_accuracy" in row]
    assert scored and 0 <= scored[-1]["val_accuracy"] <= 1
    txns = [m["transaction"] for m in read_jsonl(tmp_path / paths.DATA_DIR / "test.meta.jsonl")][:2]
    records = fraudtune.load(tmp_path / paths.ADAPTER_DIR).predict(txns, explain=False)
    assert [r["transaction_id"] for r in records] == [t["transaction_id"] for t in txns]
    assert all(r["label"] in ("FRAUD", "LEGITIMATE") and 0 <= r["fraud_probability"] <= 1 for r in records)


def test_validation_traces_the_evidence_first_answers_against_the_references(tmp_path):
    """Each epoch's validation also says where evidence-first answers go wrong (flags, score, verdict), read from
    the evidence the scoring wrote anyway and the reference answers' own flags and score."""
    from fraudtune.train import ValidationScorer

    cfg = tiny_config("data.answer_order=evidence_first", "train.val_score_n=0")
    system, user = {"role": "system", "content": "s"}, {"role": "user", "content": "u"}
    references = [
        "Red Flags: [Velocity burst (7 in 1h)]\nRisk Score: 90\nFRAUD\nReasoning: r",
        "Red Flags: [New device (first use)]\nRisk Score: 10\nLEGITIMATE\nReasoning: r",
        "Red Flags: []\nRisk Score: 0\nLEGITIMATE\nReasoning: r",
    ]
    chats = [[system, user, {"role": "assistant", "content": text}] for text in references]
    scorer = ValidationScorer(tmp_path, None, chats, cfg)
    written = [
        "Red Flags: []\nRisk Score: 0\n",  # the rule missed: wrong at the flags
        "Red Flags: [New device (first use)]\nRisk Score: 10\n",
        "Red Flags: [New device (first use)]\nRisk Score: 60\n",  # a flag invented, and a sum that is not its own
    ]
    trace = scorer.trace([0.1, 0.2, 0.8], written)
    assert trace["flags_exact"] == 1 / 3 and trace["score_follows_flags"] == 2 / 3
    assert trace["verdict_follows_evidence"] == 1.0 and trace["unparsed"] == 0
    assert (trace["first_wrong_flags"], trace["first_wrong_score"], trace["first_wrong_verdict"]) == (2, 0, 0)
    assert trace["flags_f1"] == 2 * 1 / (2 + 2)  # one right of two listed and two true
    assert trace["flags_recall"] == {"NEW_DEVICE": 1.0, "VELOCITY_BURST": 0.0}
    assert trace["flags_precision"] == {"NEW_DEVICE": 0.5, "VELOCITY_BURST": None}


def test_top_layers_adapts_only_the_upper_layers():
    from fraudtune.train import build_model

    model, _ = build_model(tiny_config("model.tiny_layers=4", "lora.top_layers=2"))
    adapted = sorted(
        {int(n.split(".layers.")[1].split(".")[0]) for n, p in model.named_parameters() if p.requires_grad}
    )
    assert adapted == [2, 3]
    with pytest.raises(FraudtuneError, match=r"lora.top_layers \(5\) > the model's 4 layers"):
        build_model(tiny_config("model.tiny_layers=4", "lora.top_layers=5"))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cached_frozen_layers_give_the_same_loss_and_gradients(tokenizer, tmp_path, precision):
    """Under bf16 the cache holds bf16 states, as the residual stream is then (half the memory of fp32)."""
    from fraudtune.data.generate import generate
    from fraudtune.modeling.frozen import first_trainable_layer, lower_states
    from fraudtune.modeling.tokens import collate
    from fraudtune.train import answer_only_loss, build_model

    model, _ = build_model(
        tiny_config("model.tiny_layers=4", "lora.top_layers=2", "lora.dropout=0", f"train.precision={precision}")
    )
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    autocast = torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16")
    tolerance = {"rtol": 2e-2, "atol": 2e-3} if precision == "bf16" else {}
    split = first_trainable_layer(model)
    assert split == 2
    cfg = tiny_config()
    generate(tmp_path, cfg.data.profile, 20, 1, cfg.data)
    chats = read_jsonl(tmp_path / "train.jsonl")[:3]
    examples = [encode_example(c["messages"], tokenizer, 512, (10.0, 3.0)) for c in chats]
    states = lower_states(model, [e["input_ids"] for e in examples], split, tokenizer.pad_token_id)
    assert [s.shape[0] for s in states] == [len(e["input_ids"]) for e in examples]
    assert {s.dtype for s in states} == {dtype}
    plain = collate(examples, tokenizer.pad_token_id, 8)
    cached = collate([{**e, "hidden": s} for e, s in zip(examples, states, strict=True)], tokenizer.pad_token_id, 8)
    assert cached["hidden"].shape[:2] == plain["input_ids"].shape

    def loss_and_grads(batch, at):
        model.zero_grad()
        with autocast:
            loss = answer_only_loss(model, batch, split=at)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    loss, grads = loss_and_grads(plain, 0)
    loss_cached, grads_cached = loss_and_grads(cached, split)
    torch.testing.assert_close(loss_cached, loss, **tolerance)
    for g, g_cached in zip(grads, grads_cached, strict=True):
        torch.testing.assert_close(g_cached, g, **tolerance)
    assert first_trainable_layer(build_model(tiny_config("model.tiny_layers=4"))[0]) == 0


def test_top_layers_run_trains_from_the_cached_states(tmp_path):
    from fraudtune.train import train

    summary = train(tiny_config("model.tiny_layers=4", "lora.top_layers=1", "train.epochs=1"), tmp_path)
    assert summary["epochs_run"] == 1
    assert (tmp_path / paths.ADAPTER_DIR / "adapter_model.safetensors").exists()


@pytest.mark.slow
def test_compiled_layers_give_the_same_loss_and_gradients(tokenizer, tmp_path, monkeypatch):
    """train.compile_layers: the compiled adapted layers compute the eager loss and gradients, the state-dict keys
    (what PEFT saves) are unchanged, and the compiled artefacts land in the on-disk cache."""
    from fraudtune.data.generate import generate
    from fraudtune.modeling.compiled import compile_layers
    from fraudtune.modeling.tokens import collate
    from fraudtune.train import answer_only_loss, build_model

    monkeypatch.setenv("FRAUDTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    cfg = tiny_config("model.tiny_layers=2", "lora.dropout=0", "train.precision=fp32")
    generate(tmp_path / "data", cfg.data.profile, 20, 1, cfg.data)
    chats = read_jsonl(tmp_path / "data" / "train.jsonl")[:4]
    batch = collate([encode_example(c["messages"], tokenizer, 512) for c in chats], tokenizer.pad_token_id, 32)
    model, _ = build_model(cfg)
    keys = list(model.state_dict())

    def loss_and_grads():
        model.zero_grad()
        loss = answer_only_loss(model, batch)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    loss, grads = loss_and_grads()
    assert compile_layers(model) == 2
    loss_compiled, grads_compiled = loss_and_grads()
    torch.testing.assert_close(loss_compiled, loss, rtol=1e-4, atol=1e-4)
    for g, g_compiled in zip(grads, grads_compiled, strict=True):
        torch.testing.assert_close(g_compiled, g, rtol=1e-3, atol=1e-5)
    assert list(model.state_dict()) == keys
    assert any((tmp_path / "cache" / "inductor").rglob("*")), "nothing in the on-disk compile cache"

    # validation-shaped work (another batch shape, no gradients) inside eager(): the eager result, nothing compiled
    from torch._dynamo.utils import counters

    from fraudtune.modeling.compiled import eager

    other = collate([encode_example(c["messages"], tokenizer, 512) for c in chats[:3]], tokenizer.pad_token_id, 64)
    compiled_frames = counters["stats"]["unique_graphs"]
    with eager(), torch.no_grad():
        loss_eager_block = answer_only_loss(model, other)
    assert counters["stats"]["unique_graphs"] == compiled_frames, "eager() compiled a new graph"
    with torch.no_grad():
        loss_compiled_other = answer_only_loss(model, other)  # outside the block the new shape compiles
    assert counters["stats"]["unique_graphs"] > compiled_frames
    torch.testing.assert_close(loss_eager_block, loss_compiled_other, rtol=1e-4, atol=1e-4)


def test_the_compile_cache_goes_to_fraudtunes_cache_unless_the_user_chose_one(tmp_path, monkeypatch):
    """Importing peft sets TORCHINDUCTOR_CACHE_DIR to inductor's /tmp default: that is not the user's choice."""
    import peft  # noqa: F401  (the import that sets the variable)
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    from fraudtune.modeling.compiled import use_compile_cache

    monkeypatch.setenv("FRAUDTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())
    assert use_compile_cache() == str(tmp_path / "cache" / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert use_compile_cache() == str(tmp_path / "mine")


def test_category_balance_weights_count_the_categories_as_spec_4_mixes_them(tmp_path, tokenizer):
    """With a per-rule minimum the company-rule rows outnumber their SPEC 4 share; the weights bring every
    category back to its share, and they scale the example's token weights."""
    from collections import defaultdict

    from fraudtune.data.generate import generate
    from fraudtune.data.plan import CATEGORY_MIX
    from fraudtune.train import balance_weights, encode_rows

    cfg = tiny_config("data.rule_min=6")
    generate(tmp_path, cfg.data.profile, 60, 3, cfg.data)
    categories = [m["category"] for m in read_jsonl(tmp_path / "train.meta.jsonl")]
    weights = balance_weights(tmp_path)
    mass = defaultdict(float)
    for category, weight in zip(categories, weights, strict=True):
        mass[category] += weight
    total = sum(CATEGORY_MIX.values())
    for category, share in CATEGORY_MIX.items():
        assert mass[category] / len(categories) == pytest.approx(share / total)
    assert categories.count("company_specific") / len(categories) > 2 * CATEGORY_MIX["company_specific"] / total
    row = read_jsonl(tmp_path / "train.jsonl")[0]
    plain, _ = encode_rows([row], tokenizer, 512, (10.0, 1.0))
    scaled, _ = encode_rows([{**row, "weight": 0.5}], tokenizer, 512, (10.0, 1.0))
    assert scaled[0]["weights"] == [0.5 * w for w in plain[0]["weights"]]


def test_a_balanced_run_trains(tmp_path):
    from fraudtune.train import train

    summary = train(tiny_config("train.category_balance=true", "train.epochs=1", "data.rule_min=4"), tmp_path)
    assert summary["epochs_run"] == 1


def test_a_run_killed_mid_epoch_resumes_from_its_step_checkpoint(tmp_path, monkeypatch, caplog):
    """train.save_steps: a checkpoint within the epoch (the newest kept), the frozen layers' output read back
    from the run folder, and the same adapter as a run that was never killed."""
    cfg = tiny_config(
        "model.tiny_layers=4", "lora.top_layers=1", "train.epochs=2", "train.save_steps=3", "train.batch_size=4"
    )
    straight = train(cfg, tmp_path / "straight")
    assert straight["steps"] > 6, "the test needs step checkpoints that are not epoch ends"
    assert not (tmp_path / "straight" / paths.CHECKPOINTS_DIR / paths.FROZEN_DIR).exists()
    assert not list((tmp_path / "straight" / paths.CHECKPOINTS_DIR).glob("step-*"))

    original = EpochCheckpoints.on_save
    seen: list[str] = []

    def stop_at_the_second_step_checkpoint(self, args, state, control, **kwargs):
        original(self, args, state, control, **kwargs)
        if not self.epoch_end:
            seen.append(state.global_step)
            if len(seen) == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(EpochCheckpoints, "on_save", stop_at_the_second_step_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "killed")
    root = tmp_path / "killed" / paths.CHECKPOINTS_DIR
    assert [p.name for p in root.glob("step-*")] == [f"step-{seen[-1]}"]  # only the newest
    assert list((root / paths.FROZEN_DIR).glob("part-*.safetensors"))
    assert last_checkpoint(tmp_path / "killed").endswith(f"step-{seen[-1]}")
    assert checkpoint_seconds(last_checkpoint(tmp_path / "killed")) > 0

    monkeypatch.setattr(EpochCheckpoints, "on_save", original)
    with caplog.at_level("INFO", logger="fraudtune.train"):
        resumed = train(cfg, tmp_path / "killed", resume=True)
    assert "read back from" in caplog.text
    assert resumed["steps"] == straight["steps"]
    assert resumed["train_seconds_total"] >= resumed["train_seconds"] * 0.5
    assert not (root / paths.FROZEN_DIR).exists()
    a = load_file(tmp_path / "straight" / paths.ADAPTER_DIR / "adapter_model.safetensors")
    b = load_file(tmp_path / "killed" / paths.ADAPTER_DIR / "adapter_model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)


def test_a_run_killed_in_the_frozen_pass_keeps_its_parts_when_started_again(tmp_path, monkeypatch, caplog):
    """Killed before its first checkpoint, a run started again (without --resume, as the study does for a setting
    with no checkpoint yet) reads back the frozen parts already written instead of computing hours again; the
    epoch checkpoints of an older run still go."""
    import fraudtune.modeling.frozen as frozen
    import fraudtune.train as train_module

    cfg = tiny_config("model.tiny_layers=4", "lora.top_layers=1", "train.epochs=1")
    monkeypatch.setattr(train_module, "FROZEN_PART_EXAMPLES", 8)
    original = frozen.lower_states
    calls: list[int] = []

    def killed_in_the_second_part(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(frozen, "lower_states", killed_in_the_second_part)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path)
    root = tmp_path / paths.CHECKPOINTS_DIR
    assert [p.name for p in (root / paths.FROZEN_DIR).glob("part-*.safetensors")] == ["part-00000.safetensors"]
    (root / "epoch-9").mkdir()  # an older run's checkpoint: a fresh start must not pick it up

    monkeypatch.setattr(frozen, "lower_states", original)
    with caplog.at_level("INFO", logger="fraudtune.train"):
        summary = train(cfg, tmp_path)
    assert "(8 read back from" in caplog.text
    assert "frozen layers: part 1/" not in caplog.text
    assert summary["epochs_run"] == 1
    assert not (root / "epoch-9").exists()


def test_a_shared_frozen_store_serves_the_next_run_on_the_same_rows(tmp_path, monkeypatch, caplog):
    """With train.frozen_store, a second run on the same rows (another recipe of a study) computes no frozen part:
    it reads the first run's, which stay when training ends; the time it reports still counts their cost."""
    import fraudtune.modeling.frozen as frozen
    import fraudtune.train as train_module

    store = tmp_path / "store"
    cfg = tiny_config("model.tiny_layers=4", "lora.top_layers=1", "train.epochs=1", f"train.frozen_store={store}")
    monkeypatch.setattr(train_module, "FROZEN_PART_EXAMPLES", 8)
    original = frozen.lower_states
    calls: list[int] = []

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(frozen, "lower_states", counted)
    train(cfg, tmp_path / "first")
    parts = sorted(p.name for p in store.glob("*.safetensors"))
    assert len(parts) == len(calls) >= 2
    assert not (tmp_path / "first" / paths.CHECKPOINTS_DIR / paths.FROZEN_DIR).exists()

    calls.clear()
    other = tiny_config(
        "model.tiny_layers=4", "lora.top_layers=1", "train.epochs=1", "train.lr=3e-4", f"train.frozen_store={store}"
    )
    with caplog.at_level("INFO", logger="fraudtune.train"):
        summary = train(other, tmp_path / "second")
    assert calls == []
    assert "read back from" in caplog.text
    assert sorted(p.name for p in store.glob("*.safetensors")) == parts
    assert summary["epochs_run"] == 1


def test_a_stale_frozen_part_is_computed_again(tmp_path, tokenizer):
    """A stored part of the frozen layers' output is used only for the same token ids."""
    from fraudtune.train import build_model, cache_frozen_states

    cfg = tiny_config("model.tiny_layers=4", "lora.top_layers=1")
    model, tok = build_model(cfg)
    examples = [{"input_ids": tok(f"transaction {i} " * (i + 1))["input_ids"]} for i in range(5)]
    split, _ = cache_frozen_states(cfg, model, tok, examples, tmp_path)
    first = [e["hidden"].clone() for e in examples]
    changed = [{"input_ids": list(e["input_ids"])} for e in examples]
    changed[0]["input_ids"][0] = (changed[0]["input_ids"][0] + 1) % 100
    cache_frozen_states(cfg, model, tok, changed, tmp_path)
    assert split == 3
    assert not torch.equal(changed[0]["hidden"], first[0])
    again = [{"input_ids": list(e["input_ids"])} for e in examples]
    cache_frozen_states(cfg, model, tok, again, tmp_path)
    for a, b in zip(again, first, strict=True):
        assert torch.equal(a["hidden"], b)


def test_validation_accuracy_on_a_fixed_share_keeping_both_labels():
    from fraudtune.train import scored_subset

    chats = [[{"role": "assistant", "content": "FRAUD" if i % 4 == 0 else "LEGITIMATE"}] for i in range(100)]
    subset = scored_subset(chats, 20, 0)
    labels = [c[-1]["content"] for c in subset]
    assert len(subset) == 20 and labels.count("FRAUD") == 5
    assert scored_subset(chats, 20, 0) == subset
    assert scored_subset(chats, 0, 0) is chats


def test_flag_list_span_covers_where_the_flags_are_decided(tokenizer) -> None:
    """The positions whose next token lies in the red-flag list: from the one that decides '[' (or '[]') to the
    one that decides ']'; none without a list."""
    from fraudtune.modeling.tokens import flag_list_span

    answer = "FRAUD\nRisk Score: 90\nRed Flags: [Manual key entry (TC-07, $620.00), New device]\nReasoning: x"
    enc = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)
    first, last = flag_list_span(answer, enc["offset_mapping"])
    predicted = tokenizer.decode(enc["input_ids"][first + 1 : last + 2])
    assert predicted.startswith(" [Man") and predicted.endswith("]")
    assert "Reasoning" not in predicted and "Score" not in predicted

    empty = "Red Flags: []\nRisk Score: 10\nLEGITIMATE\nReasoning: y"
    enc = tokenizer(empty, add_special_tokens=False, return_offsets_mapping=True)
    first, last = flag_list_span(empty, enc["offset_mapping"])
    assert tokenizer.decode(enc["input_ids"][first + 1 : last + 2]).strip() == "[]"
    assert flag_list_span("LEGITIMATE\nReasoning: none", [(0, 3)]) is None


def _killed_after_epoch_one_then_resumed(cfg, run_dir, monkeypatch, kept: str | None = None) -> dict:
    """Train, stop right after epoch 1's checkpoint (with `kept` in it), resume; the adapter's tensors."""
    original = EpochCheckpoints.on_save

    def stop_after_epoch_one(self, args, state, control, **kwargs):
        original(self, args, state, control, **kwargs)
        if round(state.epoch) == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(EpochCheckpoints, "on_save", stop_after_epoch_one)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run_dir)
    if kept:
        assert (run_dir / paths.CHECKPOINTS_DIR / "epoch-1" / kept).exists()
    monkeypatch.setattr(EpochCheckpoints, "on_save", original)
    train(cfg, run_dir, resume=True)
    return load_file(run_dir / paths.ADAPTER_DIR / "adapter_model.safetensors")


def test_the_flag_probe_trains_with_the_adapters_is_not_saved_and_resumes(tmp_path, monkeypatch):
    """train.flag_probe_weight: the probe's loss is logged and falls, it changes what the adapters learn, the
    adapter holds no probe weights, and a run killed after epoch 1 resumes to the same adapter (the probe is kept
    in the checkpoint); a probe below the adapted layers is refused."""
    cfg = tiny_config(
        "train.epochs=2",
        "train.early_stopping_patience=0",
        "train.flag_probe_weight=1",
        "train.flag_probe_layer=-1",
        "train.logging_steps=1",
    )
    train(cfg, tmp_path / "straight")
    probe_losses = [
        r["flag_probe_loss"] for r in read_jsonl(tmp_path / "straight" / paths.METRICS) if "flag_probe_loss" in r
    ]
    assert len(probe_losses) >= 4
    assert sum(probe_losses[-2:]) < sum(probe_losses[:2])
    a = load_file(tmp_path / "straight" / paths.ADAPTER_DIR / "adapter_model.safetensors")
    assert a and not any("flag_probe" in k for k in a)

    plain = tiny_config("train.epochs=2", "train.early_stopping_patience=0", "train.logging_steps=1")
    train(plain, tmp_path / "plain")
    c = load_file(tmp_path / "plain" / paths.ADAPTER_DIR / "adapter_model.safetensors")
    assert any(not torch.allclose(a[k], c[k], atol=1e-6) for k in a)

    b = _killed_after_epoch_one_then_resumed(cfg, tmp_path / "killed", monkeypatch, "flag_probe.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)

    with pytest.raises(FraudtuneError, match="flag_probe_layer"):
        train(tiny_config("train.epochs=1", "train.flag_probe_weight=1", "train.flag_probe_layer=-3"), tmp_path / "low")
    with pytest.raises(FraudtuneError, match="lora.method: lora"):
        tiny_config("train.flag_probe_weight=1", "lora.method=full")


def test_twin_order_keeps_each_group_together_and_depends_on_seed_and_epoch_only():
    from fraudtune.train import TwinOrderSampler

    groups = ["a", "b", "a", "c", "b", "d", "e", "a"]
    sampler = TwinOrderSampler(groups, seed=3)
    orders = []
    for epoch in range(6):
        sampler.set_epoch(epoch)
        order = list(sampler)
        assert sorted(order) == list(range(len(groups))) and len(sampler) == len(groups)
        for group in set(groups):
            at = sorted(order.index(i) for i, g in enumerate(groups) if g == group)
            assert at == list(range(at[0], at[0] + len(at)))  # the group's rows follow one another
        orders.append(order)
    sampler.set_epoch(2)
    assert list(sampler) == orders[2]
    assert list(TwinOrderSampler(groups, seed=3)) == orders[0]
    assert len({tuple(o) for o in orders}) > 1


def test_pair_twins_trains_in_twin_order_and_resumes_to_the_same_adapter(tmp_path, monkeypatch):
    """train.pair_twins: the rows come in twin order (a different adapter than the plain shuffle), and a run killed
    after epoch 1 resumes to the same adapter (the order of epoch 2 depends on the seed and the epoch only)."""
    from fraudtune.train import TwinOrderSampler, twin_groups

    base = ("data.twins=true", "train.epochs=2", "train.early_stopping_patience=0")
    cfg = tiny_config(*base, "train.pair_twins=true")
    used: list[int] = []
    original_iter = TwinOrderSampler.__iter__

    def counted(self):
        used.append(self.epoch)
        return original_iter(self)

    monkeypatch.setattr(TwinOrderSampler, "__iter__", counted)
    train(cfg, tmp_path / "straight")
    assert used[:2] == [0, 1]
    groups = twin_groups(tmp_path / "straight" / paths.DATA_DIR)
    assert len(set(groups)) < len(groups)  # the tiny set has twins to pair
    a = load_file(tmp_path / "straight" / paths.ADAPTER_DIR / "adapter_model.safetensors")
    train(tiny_config(*base), tmp_path / "plain")
    c = load_file(tmp_path / "plain" / paths.ADAPTER_DIR / "adapter_model.safetensors")
    assert any(not torch.allclose(a[k], c[k], atol=1e-6) for k in a)

    b = _killed_after_epoch_one_then_resumed(cfg, tmp_path / "killed", monkeypatch)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)


def test_pair_twins_needs_the_meta_file(tmp_path):
    from fraudtune.train import twin_groups

    (tmp_path / "train.jsonl").write_text("")
    with pytest.raises(FraudtuneError, match="train.meta.jsonl: missing"):
        twin_groups(tmp_path)


def test_a_right_padded_batch_trains_without_a_mask_and_with_each_rows_own_loss(tokenizer, tmp_path):
    """A right-padded batch runs with causal attention alone (no padding mask): every row's summed answer loss
    and its gradients equal those of the row trained on its own. A left-padded batch keeps its mask."""
    from fraudtune.data.generate import generate
    from fraudtune.modeling.tokens import collate
    from fraudtune.train import answer_only_loss, build_model, padding_mask

    cfg = tiny_config("model.tiny_layers=2", "lora.dropout=0", "train.precision=fp32")
    generate(tmp_path / "data", cfg.data.profile, 20, 1, cfg.data)
    rows = [encode_example(c["messages"], tokenizer, 512) for c in read_jsonl(tmp_path / "data" / "train.jsonl")[:4]]
    assert len({r["length"] for r in rows}) > 1
    model, _ = build_model(cfg)
    batch = collate(rows, tokenizer.pad_token_id, 32)
    assert padding_mask(batch["attention_mask"]) is None
    assert padding_mask(batch["attention_mask"].flip(1)) is not None

    def summed(b):
        model.zero_grad()
        n = int((b["labels"][:, 1:] != IGNORE_INDEX).sum())
        loss = answer_only_loss(model, b) * n
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    together, grads = summed(batch)
    alone = [summed(collate([r], tokenizer.pad_token_id)) for r in rows]
    torch.testing.assert_close(together, sum(a[0] for a in alone), rtol=1e-4, atol=1e-4)
    for k, g in enumerate(grads):
        torch.testing.assert_close(g, sum(a[1][k] for a in alone), rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("cached", [False, True])
def test_a_packed_batch_gives_each_rows_loss_and_gradients(tokenizer, tmp_path, cached):
    """train.pack_sequences: the rows of a batch packed end to end (positions restart, attention per row) give
    the padded batch's loss and gradients, from token ids or from the frozen layers' cached output."""
    from fraudtune.data.generate import generate
    from fraudtune.modeling.frozen import lower_states
    from fraudtune.modeling.packing import is_packing
    from fraudtune.modeling.tokens import collate
    from fraudtune.train import answer_only_loss, build_model

    cfg = tiny_config("model.tiny_layers=3", "lora.dropout=0", "train.precision=fp32", "lora.top_layers=2")
    generate(tmp_path / "data", cfg.data.profile, 20, 1, cfg.data)
    rows = [encode_example(c["messages"], tokenizer, 512) for c in read_jsonl(tmp_path / "data" / "train.jsonl")[:5]]
    model, _ = build_model(cfg)
    assert is_packing(model)
    split = 1 if cached else 0
    if cached:
        states = lower_states(model, [r["input_ids"] for r in rows], split, tokenizer.pad_token_id)
        rows = [{**r, "hidden": h} for r, h in zip(rows, states, strict=True)]
    batch = collate(rows, tokenizer.pad_token_id, 32)

    def loss_and_grads():
        model.zero_grad()
        loss = answer_only_loss(model, batch, None, 3.0, split)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    packed, packed_grads = loss_and_grads()
    model.set_attn_implementation("sdpa")
    padded, padded_grads = loss_and_grads()
    torch.testing.assert_close(packed, padded, rtol=1e-5, atol=1e-5)
    for g_packed, g_padded in zip(packed_grads, padded_grads, strict=True):
        torch.testing.assert_close(g_packed, g_padded, rtol=1e-4, atol=1e-6)
