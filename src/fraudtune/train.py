"""LoRA (or full) fine-tuning on the HF Trainer, read top to bottom: data -> model -> trainer -> best adapter.

The fraudtune-specific parts are named functions in the order they run: answer-only labels (tokens.py),
logits computed only where a label is, per-epoch validation accuracy, early stopping on validation loss,
one checkpoint per epoch, and the best epoch copied to RUN/fraud-lora-adapter/.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import shutil
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

from fraudtune import paths
from fraudtune.config import RunConfig, config_to_dict, load_config
from fraudtune.data.chat import answer_label
from fraudtune.errors import FraudtuneError
from fraudtune.files import (
    append_jsonl,
    read_json,
    read_jsonl,
    read_jsonl_lenient,
    write_json,
    write_text_atomic,
    write_yaml,
)
from fraudtune.manifest import write_manifest
from fraudtune.memory import peak_rss_mb, rss_mb
from fraudtune.modeling.dropout import use_fast_dropout
from fraudtune.modeling.loading import ADAPTER_RUN_CONFIG, cpu_has_fast_bf16, load_base
from fraudtune.modeling.tokens import IGNORE_INDEX, collate, encode_example
from fraudtune.runmeta import set_status
from fraudtune.stats import classification_scores

log = logging.getLogger(__name__)


def train(
    cfg: RunConfig, run_dir: Path, resume: bool = False, callbacks: list[TrainerCallback] | None = None
) -> dict[str, Any]:
    """`fraudtune train`: fine-tune, keep the best epoch by validation loss, return the summary.

    `callbacks` are extra Trainer callbacks (tune.py reports per-epoch validation loss to Optuna through one).
    """
    run_dir = Path(run_dir)
    cfg = prepare_run(cfg, run_dir, resume)
    _set_status(run_dir, "running")
    try:
        summary = _train(cfg, run_dir, resume, callbacks)
    except KeyboardInterrupt:
        _set_status(run_dir, "cancelled")
        raise
    except BaseException:
        _set_status(run_dir, "failed")
        raise
    _set_status(run_dir, "done")
    return summary


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a torchrun / accelerate launch (DDP) job."""
    return int(os.environ.get("RANK", "0")) == 0


def _set_status(run_dir: Path, status: str) -> None:
    if is_main_process():  # DDP: rank 0 alone writes the run directory
        set_status(run_dir, "train", status)


def _main_process_first() -> AbstractContextManager:
    """Under DDP, rank 0 runs the block (e.g. data generation) before the other ranks enter it."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return nullcontext()
    from accelerate import PartialState

    return PartialState().main_process_first()


def _train(cfg: RunConfig, run_dir: Path, resume: bool, callbacks: list[TrainerCallback] | None) -> dict[str, Any]:
    with _main_process_first():
        data_dir = ensure_data(cfg, run_dir)
    train_rows, val_rows = load_split(data_dir, "train"), load_split(data_dir, "val")
    check_pii(train_rows + val_rows, data_dir, cfg)  # before the model loads: refuse fast, print one line
    if cfg.train.category_balance:
        for row, weight in zip(train_rows, balance_weights(data_dir), strict=True):
            row["weight"] = weight
    if cfg.train.pair_twins:
        for row, group in zip(train_rows, twin_groups(data_dir), strict=True):
            row["group"] = group
    model, tokenizer = build_model(cfg)
    train_rows = mix_general_data(harden_rows(train_rows, data_dir, cfg), cfg)
    weights = (cfg.train.decision_weight, cfg.train.flag_weight, cfg.train.flag_head_weight)
    probe_profile = None
    if cfg.train.flag_probe_weight > 0:
        from fraudtune.profile import load_profile

        probe_profile = load_profile(cfg.data.profile)
    train_set, truncated = encode_rows(train_rows, tokenizer, cfg.data.max_length, weights, probe_profile)
    val_set, _ = encode_rows(val_rows, tokenizer, cfg.data.max_length, weights)
    if truncated:
        log.warning(
            "%d training examples were longer than data.max_length=%d and were cut", truncated, cfg.data.max_length
        )
    val_chats = [r["messages"] for r in val_rows]
    checkpoint = last_checkpoint(run_dir) if resume else None
    start_step, start_epoch = resumed_step(checkpoint)
    if resume:
        drop_replayed_metrics(run_dir, start_step)
    began = time.perf_counter()  # the frozen layers' pass is training time: it replaces their per-step work
    split, frozen_seconds = cache_frozen_states(cfg, model, tokenizer, train_set + val_set, run_dir)
    # the run's own time across kills: a resume continues the clock of its checkpoint (which holds the frozen
    # pass already); a fresh start counts the frozen pass (its cost when first computed, if read back)
    resumed_seconds = checkpoint_seconds(checkpoint)
    offset = resumed_seconds if resumed_seconds is not None else frozen_seconds
    loop_began = time.perf_counter()

    def clock() -> float:
        return offset + time.perf_counter() - loop_began

    if cfg.train.compile_layers:
        from fraudtune.modeling.compiled import compile_layers

        compile_layers(model, split)
    trainer = build_trainer(cfg, run_dir, model, tokenizer, train_set, val_set, val_chats, callbacks, clock)
    trainer.frozen_split = split
    if probe_profile is not None:
        probe = (probe_profile.codes, cfg.train.flag_probe_weight, cfg.train.flag_probe_layer)
        attach_flag_probe(trainer, model, *probe)
        load_flag_probe(model, checkpoint)
    trainer.train(resume_from_checkpoint=checkpoint)
    train_seconds = time.perf_counter() - began
    shutil.rmtree(run_dir / paths.CHECKPOINTS_DIR / paths.FROZEN_DIR, ignore_errors=True)
    if not trainer.is_world_process_zero():  # DDP: rank 0 picks the best epoch and writes the adapter
        return {"rank": trainer.args.process_index, "train_seconds": round(train_seconds, 2)}
    best = select_best(run_dir)
    export_adapter(cfg, run_dir, best)
    return write_summary(cfg, run_dir, trainer, train_set, truncated, train_seconds, best, start_epoch, clock())


def prepare_run(cfg: RunConfig, run_dir: Path, resume: bool) -> RunConfig:
    """Write the resolved config before any work; on --resume, continue with the stored one."""
    config_path = run_dir / paths.RUN_CONFIG
    if not is_main_process():  # DDP: rank 0 alone prepares the run directory
        return load_config(config_path) if resume and config_path.exists() else cfg
    if resume and config_path.exists():
        stored = load_config(config_path)
        if config_to_dict(stored) != config_to_dict(cfg):
            log.info("--resume: continuing with the run's stored config %s", config_path)
        return stored
    from fraudtune.profile import load_profile

    load_profile(cfg.data.profile)  # a missing or broken profile stops the run here, not `predict` later
    check_data_matches(cfg, run_dir / paths.DATA_DIR)  # before anything of the run is written
    if not resume:  # a fresh run never mixes with old epochs, nor leaves the last run's adapter looking current
        clear_checkpoints(run_dir / paths.CHECKPOINTS_DIR)
        shutil.rmtree(run_dir / paths.ADAPTER_DIR, ignore_errors=True)
        for stale in (paths.METRICS, paths.TRAIN_SUMMARY):
            (run_dir / stale).unlink(missing_ok=True)
    write_yaml(config_path, config_to_dict(cfg))
    return cfg


def clear_checkpoints(folder: Path) -> None:
    """Every epoch and step checkpoint goes; the frozen layers' output (checkpoints/frozen/) stays: each part is
    keyed by the model, layers, dtype and token ids it came from and is computed again when they differ, so a run
    killed before its first checkpoint (hours into the frozen pass) keeps that work when it is started again."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.name == paths.FROZEN_DIR:
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def ensure_data(cfg: RunConfig, run_dir: Path) -> Path:
    """RUN/data with the splits; generated from the profile if absent."""
    data_dir = run_dir / paths.DATA_DIR
    if not all(paths.split_file(data_dir, s).exists() for s in paths.SPLITS):
        from fraudtune.data.generate import generate

        generate(data_dir, profile_path=cfg.data.profile, n=cfg.data.n, seed=cfg.data.seed, data_cfg=cfg.data)
    return data_dir


# what a generated data set's card records of the config that made it (data/generate.py data_card)
_GENERATED_FROM = {
    "n_requested": "n",
    "seed": "seed",
    "rule_min": "rule_min",
    "item_min": "item_min",
    "answer_order": "answer_order",
    "score_tally": "score_tally",
}


def check_data_matches(cfg: RunConfig, data_dir: Path) -> None:
    """A generated RUN/data must be the one the config asks for: reusing an 80-row folder for data.n=16 (or the
    other way round) would train on something else than the config says. Imported data sets are taken as they
    are (their card records no generator settings)."""
    card_path = data_dir / paths.DATA_CARD
    if not card_path.exists():
        return
    card = read_json(card_path)
    if "n_requested" not in card:
        return
    differ = [
        f"data.{key}={getattr(cfg.data, key)!r} vs {card[field]!r}"
        for field, key in _GENERATED_FROM.items()
        if field in card and card[field] != getattr(cfg.data, key)
    ]
    if differ:
        raise FraudtuneError(
            f"{data_dir}: generated with other settings than the config asks ({'; '.join(differ)}); delete the "
            "folder to generate it again, or use another --run-dir"
        )


def load_split(data_dir: Path, split: str) -> list[dict[str, Any]]:
    """The split's chat rows; a row that breaks the chat format is a one-line error (it would crash or
    silently train on the wrong text: a user turn taken as the answer, an unknown role rendered as is)."""
    from fraudtune.data.chat_format import format_problems

    path = paths.split_file(data_dir, split)
    rows = read_jsonl(path)
    if not rows:
        raise FraudtuneError(f"{path}: no examples")
    lines = [i for i, text in enumerate(path.read_text(encoding="utf-8").split("\n"), 1) if text.strip()]
    for lineno, row in zip(lines, rows, strict=False):
        problems = format_problems(row)
        if problems:
            field, problem = problems[0]
            raise FraudtuneError(f"{path}:{lineno}: {field}: {problem}; check it with `fraudtune data validate`")
    return rows


def check_pii(rows: list[dict[str, Any]], data_dir: Path, cfg: RunConfig) -> None:
    """Refuse to train on text with unscrubbed card numbers, emails, phones or SSNs unless allowed."""
    if cfg.data.allow_pii:
        return
    from fraudtune.data.pii import find_pii

    for i, row in enumerate(rows, 1):
        for message in row["messages"]:
            found = find_pii(message["content"])
            if found:
                raise FraudtuneError(
                    f"{data_dir}: example {i} ({message['role']}) holds PII ({found[0][0]}); run "
                    f"`fraudtune data validate {data_dir} --scrub --in-place` (masks it there, meta files included) "
                    "or pass --allow-pii"
                )


def harden_rows(rows: list[dict[str, Any]], data_dir: Path, cfg: RunConfig) -> list[dict[str, Any]]:
    """Plant injection payloads in a share of the training rows' merchant names (train.adversarial_share)."""
    if cfg.train.adversarial_share <= 0:
        return rows
    from fraudtune.data.adversarial import harden
    from fraudtune.profile import load_profile

    path = paths.split_file(data_dir, "train")
    return harden(rows, path, load_profile(cfg.data.profile), cfg.train.adversarial_share, cfg.train.seed)


def mix_general_data(rows: list[dict[str, Any]], cfg: RunConfig) -> list[dict[str, Any]]:
    """Mix general instruction pairs in (train.general_mix share of the result), a forgetting countermeasure."""
    if cfg.train.general_mix <= 0:
        return rows
    from fraudtune.data.general import general_instruction_pairs

    pairs = general_instruction_pairs()
    wanted = round(len(rows) * cfg.train.general_mix / (1 - cfg.train.general_mix))
    rng = random.Random(cfg.train.seed)
    chosen = [pairs[i % len(pairs)] for i in rng.sample(range(max(wanted, len(pairs))), wanted)]
    general = [
        {"messages": [{"role": "user", "content": p["question"]}, {"role": "assistant", "content": p["answer"]}]}
        for p in chosen
    ]
    mixed = rows + general
    rng.shuffle(mixed)
    return mixed


def encode_rows(
    rows: list[dict[str, Any]],
    tokenizer: Any,
    max_length: int,
    weights: tuple[float, float] | tuple[float, float, bool] | None = None,
    probe_profile: Any = None,
) -> tuple[list[dict[str, Any]], int]:
    """Token ids, answer-only labels and (decision, flag) loss weights per token; and how many were cut.

    A row's own "weight" (train.category_balance) scales all its token weights. With `probe_profile`
    (train.flag_probe_weight) each example also gets the span where its red-flag list is written and which of the
    profile's flags the answer lists (flag_target, in the profile's order)."""
    from fraudtune.data.chat import parse_evidence

    encoded = []
    span = probe_profile is not None
    for row in rows:
        if "weight" in row:
            example = encode_example(row["messages"], tokenizer, max_length, weights or (1.0, 1.0), flag_span=span)
            example["weights"] = [row["weight"] * w for w in example["weights"]]
        else:
            example = encode_example(row["messages"], tokenizer, max_length, weights, flag_span=span)
        if "group" in row:  # train.pair_twins
            example["group"] = row["group"]
        if span:
            listed = set(parse_evidence(row["messages"][-1]["content"], probe_profile)[1])
            example["flag_target"] = [float(code in listed) for code in probe_profile.codes]
        encoded.append(example)
    return encoded, sum(e["truncated"] for e in encoded)


def balance_weights(data_dir: Path) -> list[float]:
    """Per training example: its category's SPEC 4 share over its share of the training split, so that the
    weighted categories count as SPEC 4 mixes them (data/plan.py CATEGORY_MIX)."""
    from collections import Counter

    from fraudtune.data.plan import CATEGORY_MIX

    meta = paths.meta_file(paths.split_file(data_dir, "train"))
    categories = [m.get("category") for m in read_jsonl(meta)]
    unknown = sorted({str(c) for c in categories if c not in CATEGORY_MIX})
    if unknown:
        raise FraudtuneError(
            f"{meta}: train.category_balance needs SPEC 4 categories, found {', '.join(unknown)} (imported data "
            "has its own mix: leave it off)"
        )
    total, counts, n = sum(CATEGORY_MIX.values()), Counter(categories), len(categories)
    return [(CATEGORY_MIX[c] / total) / (counts[c] / n) for c in categories]


def cache_frozen_states(
    cfg: RunConfig, model: Any, tokenizer: Any, examples: list[dict[str, Any]], run_dir: Path | None = None
) -> tuple[int, float]:
    """With adapters on the top layers only, the frozen layers' output per example ("hidden"), computed once
    (modeling/frozen.py); returns the first adapted layer (0: nothing cached) and the seconds the pass cost (a
    part read back counts the seconds it cost when it was computed).

    With a run folder the states are also written there in parts (checkpoints/frozen/), so that a killed run
    resumes without computing them again; each part is used only if it was made from the same token ids by the
    same layers. train() removes the folder once training has ended; a shared store (train.frozen_store) stays,
    for the next run on the same rows."""
    if not (cfg.train.cache_frozen_layers and cfg.lora.method == "lora" and cfg.lora.top_layers):
        return 0, 0.0
    from fraudtune.modeling.frozen import first_trainable_layer, lower_states

    split = first_trainable_layer(model)
    if split == 0:
        return 0, 0.0
    began = time.perf_counter()
    shared = Path(cfg.train.frozen_store) if cfg.train.frozen_store else None
    store = shared or (run_dir / paths.CHECKPOINTS_DIR / paths.FROZEN_DIR if run_dir is not None else None)
    ids = [e["input_ids"] for e in examples]
    # parts of length-sorted examples: each is one resumable unit of the pass
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    parts = [order[start : start + FROZEN_PART_EXAMPLES] for start in range(0, len(order), FROZEN_PART_EXAMPLES)]
    reused, seconds = 0, 0.0
    for number, part in enumerate(parts):
        key = _frozen_key(cfg, model, split, [ids[i] for i in part])
        path = frozen_part_path(store, number, key, shared is not None)
        stored = _read_frozen_part(path, key) if path is not None else None
        if stored is None:
            if len(parts) > 1:
                log.info("frozen layers: part %d/%d (%d examples)", number + 1, len(parts), len(part))
            part_began = time.perf_counter()
            states = lower_states(
                model, [ids[i] for i in part], split, tokenizer.pad_token_id, cfg.train.eval_batch_size, True
            )
            cost = time.perf_counter() - part_began
            if path is not None:
                _write_frozen_part(path, key, cost, states)
        else:
            states, cost = stored["states"], float(stored.get("seconds", 0.0))
            reused += len(part)
        seconds += cost
        for i, state in zip(part, states, strict=True):
            examples[i]["hidden"] = state
    log.info(
        "frozen layers 0-%d run once for %d examples in %.0f s%s",
        split - 1,
        len(examples),
        time.perf_counter() - began,
        f" ({reused} read back from {store})" if reused else "",
    )
    return split, seconds


FROZEN_PART_EXAMPLES = 512  # examples per stored part of the frozen layers' output (about 300 MB in fp32)


def frozen_part_path(store: Path | None, number: int, key: str, shared: bool) -> Path | None:
    """Where a part of the frozen layers' output is kept: by its number in a run's own folder, by what it was
    computed from in a store shared between runs (train.frozen_store)."""
    if store is None:
        return None
    return store / (f"{key[:40]}.safetensors" if shared else f"part-{number:05d}.safetensors")


def _frozen_key(cfg: RunConfig, model: Any, split: int, sequences: list[list[int]]) -> str:
    """What a part of the frozen states was computed from: the model, the layers, their dtype and the token ids."""
    import hashlib

    from fraudtune.modeling.inference import decoder_and_head

    decoder, _ = decoder_and_head(model)
    digest = hashlib.sha256(f"{cfg.model.name}|{split}|{decoder.embed_tokens.weight.dtype}".encode())
    digest.update(str(float(decoder.embed_tokens.weight[:8].double().sum())).encode())
    for sequence in sequences:
        digest.update(b"|" + ",".join(map(str, sequence)).encode())
    return digest.hexdigest()


def _write_frozen_part(path: Path, key: str, seconds: float, states: list[torch.Tensor]) -> None:
    """One part as safetensors (tensor i = example i of the part; what it was made from in the metadata),
    written beside and renamed: a kill leaves the old file or the new one."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({str(i): s.contiguous() for i, s in enumerate(states)}, tmp, {"key": key, "seconds": f"{seconds:.3f}"})
    os.replace(tmp, path)


def _read_frozen_part(path: Path, key: str) -> dict[str, Any] | None:
    """A stored part ({"key", "seconds", "states"}) when it was made from the same inputs, else None (missing,
    stale or unreadable)."""
    from safetensors import safe_open

    if not path.exists():
        return None
    try:
        with safe_open(str(path), framework="pt") as stored:
            meta = stored.metadata() or {}
            if meta.get("key") != key:
                return None
            states = [stored.get_tensor(str(i)) for i in range(len(stored.keys()))]
    except Exception as exc:  # a part cut short by a kill: compute it again
        log.warning("%s: unreadable (%s); computing it again", path, type(exc).__name__)
        return None
    return {"key": key, "seconds": float(meta.get("seconds", 0.0)), "states": states}


def precision(cfg: RunConfig) -> str:
    """bf16 only where the hardware does it fast; a CPU without AVX512-BF16/AMX runs bf16 ~50x slower than fp32."""
    if cfg.train.precision != "auto":
        return cfg.train.precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def build_model(cfg: RunConfig) -> tuple[Any, Any]:
    """Base model + LoRA adapter (seed set first, so the adapter's initial weights are reproducible)."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if cfg.train.mmap_threshold_kb:
        fix_mmap_threshold(cfg.train.mmap_threshold_kb * 1024)
    set_seed(cfg.train.seed)
    model, tokenizer = load_base(cfg.model)
    model.config.use_cache = False
    if cfg.lora.method == "full":
        model.requires_grad_(True)
        return model, tokenizer
    from peft import LoraConfig, get_peft_model

    n_layers = model.config.num_hidden_layers
    if cfg.lora.top_layers > n_layers:
        raise FraudtuneError(f"lora.top_layers ({cfg.lora.top_layers}) > the model's {n_layers} layers")
    targets = cfg.lora.target_modules
    if cfg.lora.top_layers and targets == "all-linear":  # PEFT takes a layer subset only with named modules
        head = model.get_output_embeddings()
        targets = sorted(
            {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m is not head}
        )
    lora = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=targets,
        bias=cfg.lora.bias,
        task_type="CAUSAL_LM",
        layers_to_transform=list(range(n_layers - cfg.lora.top_layers, n_layers)) if cfg.lora.top_layers else None,
    )
    try:
        model = get_peft_model(model, lora)
    except ValueError as exc:  # peft's NoMatchingPeftModuleError: a target that names no module of this model
        names = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise FraudtuneError(
            f"lora.target_modules ({cfg.lora.target_modules}): no such module in the model; its linear layers are "
            f"{', '.join(names)} (or all-linear)"
        ) from exc
    if cfg.train.fast_dropout:
        use_fast_dropout(model)
    if cfg.train.pack_sequences and not cfg.train.flag_probe_weight:  # the probe reads (batch, width) positions
        from fraudtune.modeling.packing import use_packing

        use_packing(model)
    if precision(cfg) == "bf16":
        freeze_in_bf16(model)
    log.info(trainable_line(model))
    return model, tokenizer


def freeze_in_bf16(model: Any) -> None:
    """Frozen base weights in bf16, trainable LoRA weights in fp32 (their updates are too small for bf16).

    Under bf16 autocast every frozen fp32 weight would be cast to bf16 again at each forward and backward: on a
    CPU that copy costs ~13% of a step, and the bf16 copy halves the weights' memory.
    """
    for param in model.parameters():
        if not param.requires_grad and param.dtype == torch.float32:
            param.data = param.data.to(torch.bfloat16)


def trainable_line(model: Any) -> str:
    """PEFT's "trainable params: ... || all params: ... || trainable%: ..." line."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}"


class AnswerOnlyTrainer(Trainer):
    """The Trainer, with the vocabulary projection computed only at positions that carry a label.

    The head is 49,152 x 576: projecting every prompt position and taking a softmax over it costs more
    than the layers it follows on a CPU, and those positions never contribute to the loss.
    """

    decision_weight: float = 1.0
    frozen_split: int = 0  # first adapted layer when the frozen layers' output is cached (inputs["hidden"])
    flag_probe: Any = None  # (probe, weight, captured layer output) with train.flag_probe_weight
    _probe_losses: list[float] | None = None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # accelerate puts autocast on model.forward only; answer_only_loss calls the decoder and the head
        # directly, so without this context mixed precision would silently run in fp32
        with self.accelerator.autocast():
            loss = answer_only_loss(model, inputs, num_items_in_batch, self.decision_weight, self.frozen_split)
        if self.flag_probe is not None and model.training and "flag_target" in inputs:
            probe, weight, captured = self.flag_probe
            if "h" not in captured:
                raise FraudtuneError("train.flag_probe_layer: the probed layer did not run in the training step")
            aux = flag_probe_loss(probe, captured.pop("h"), inputs)
            self._probe_losses = [*(self._probe_losses or []), float(aux.detach())]
            # with num_items_in_batch the Trainer does not divide by the accumulation steps: the LM loss is
            # already a share of the whole optimizer step, the probe's mean is not
            share = 1.0 / self.args.gradient_accumulation_steps if num_items_in_batch is not None else 1.0
            loss = loss + weight * share * aux.to(loss.dtype)
        if num_items_in_batch is not None and self.args.average_tokens_across_devices and self.args.world_size > 1:
            # DDP: num_items_in_batch counts every rank's tokens and DDP then averages the gradients over ranks,
            # so scale back up by the world size (as Trainer.compute_loss does) to match a single-process run.
            loss = loss * self.args.world_size
        return (loss, {"loss": loss}) if return_outputs else loss

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        # the validation loss and the validation scorer (a callback of this call) run the compiled layers' eager
        # code: their shapes would otherwise compile anew (train.compile_layers)
        from fraudtune.modeling.compiled import eager

        with eager():
            return super().evaluate(*args, **kwargs)

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if dataset is not None and len(dataset) and all("group" in e for e in dataset):  # train.pair_twins
            return TwinOrderSampler([e["group"] for e in dataset], self.args.seed)
        return super()._get_train_sampler(train_dataset)

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        if self._probe_losses and "loss" in logs:  # the probe's mean loss since the last training log line
            logs["flag_probe_loss"] = round(sum(self._probe_losses) / len(self._probe_losses), 4)
            self._probe_losses = None
        super().log(logs, *args, **kwargs)


def twin_groups(data_dir: Path) -> list[str]:
    """Per training row, the id its minimal pair shares: the anchor's transaction id for a twin (twin_of), its own
    for any other row."""
    meta = paths.meta_file(paths.split_file(data_dir, "train"))
    if not meta.exists():
        raise FraudtuneError(f"{meta}: missing; train.pair_twins reads each row's twin_of there")
    groups = []
    for line, record in enumerate(read_jsonl(meta), start=1):
        key = record.get("twin_of") or record.get("transaction_id")
        if not key:
            raise FraudtuneError(f"{meta}:{line}: transaction_id: missing (train.pair_twins groups rows by it)")
        groups.append(str(key))
    return groups


class TwinOrderSampler(torch.utils.data.Sampler):
    """A shuffled order in which the rows of a group (a row and its twins) follow one another: the groups are
    shuffled, then laid end to end, so a pair shares a batch unless it straddles a batch boundary. The order
    depends only on the seed and the epoch (set_epoch), so a resumed run skips the same batches."""

    def __init__(self, groups: list[str], seed: int) -> None:
        members: dict[str, list[int]] = {}
        for index, group in enumerate(groups):
            members.setdefault(group, []).append(index)
        self.groups = list(members.values())
        self.n = len(groups)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Any:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        order = list(self.groups)
        rng.shuffle(order)
        for members in order:
            yield from members


FLAG_PROBE_FILE = "flag_probe.safetensors"  # in a checkpoint: the probe's weights, so that a resume continues it


def attach_flag_probe(trainer: AnswerOnlyTrainer, model: Any, codes: list[str], weight: float, layer: int) -> None:
    """A linear probe (hidden -> one logit per flag) on decoder layer `layer`'s output, trained with the adapters
    as an auxiliary loss (train.flag_probe_weight). It is a submodule of the model, so the optimizer trains it and
    a checkpoint's optimizer state covers it; PEFT saves only the adapters, so it never reaches the adapter."""
    from fraudtune.modeling.frozen import first_trainable_layer
    from fraudtune.modeling.inference import decoder_and_head

    if not hasattr(model, "peft_config"):  # a full fine-tune saves the whole model, the probe with it
        raise FraudtuneError("train.flag_probe_weight: the probe trains beside adapters; set lora.method: lora")
    decoder, _ = decoder_and_head(model)
    count = len(decoder.layers)
    index = layer if layer >= 0 else count + layer
    lowest = first_trainable_layer(model)
    if not lowest <= index < count:
        raise FraudtuneError(
            f"train.flag_probe_layer={layer}: the model's {count} decoder layers are adapted from layer {lowest}; "
            f"the probe must read an adapted layer ({lowest - count} to -1, or {lowest} to {count - 1})"
        )
    hidden = decoder.embed_tokens.weight.shape[1]
    probe = torch.nn.Linear(hidden, len(codes)).to(decoder.embed_tokens.weight.device)
    torch.nn.init.zeros_(probe.weight)  # a logistic regression from zero: no seed to depend on
    torch.nn.init.zeros_(probe.bias)
    model.flag_probe = probe
    captured: dict[str, torch.Tensor] = {}

    def keep(_module: Any, _args: Any, output: Any) -> None:
        if torch.is_grad_enabled():
            captured["h"] = output[0] if isinstance(output, tuple) else output

    decoder.layers[index].register_forward_hook(keep)
    trainer.flag_probe = (probe, weight, captured)


def flag_probe_loss(probe: torch.nn.Module, hidden: torch.Tensor, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean binary cross-entropy of the probe's flag logits (from the layer-normalised state) at every position of
    the red-flag lists, against the flags the answer lists; 0 (with a gradient path) when the batch has no list."""
    positions = inputs["flag_positions"].to(hidden.device)
    width = min(positions.shape[1], hidden.shape[1])
    picked = hidden[:, :width][positions[:, :width]].float()
    if picked.shape[0] == 0:
        return probe.weight.sum() * 0.0
    rows = positions[:, :width].nonzero()[:, 0]
    target = inputs["flag_target"].to(hidden.device)[rows]
    # normalised without weights: the residual stream of a middle layer carries a few outsized channels, and a
    # probe on the raw state would see its logits (and its pull on the layers) swing with them
    features = torch.nn.functional.layer_norm(picked, picked.shape[-1:])
    return torch.nn.functional.binary_cross_entropy_with_logits(probe(features), target)


def load_flag_probe(model: Any, checkpoint: str | None) -> None:
    """On a resume, the probe as the checkpoint left it (its optimizer state comes with the Trainer's)."""
    path = Path(checkpoint) / FLAG_PROBE_FILE if checkpoint else None
    if path is not None and path.exists():
        from safetensors.torch import load_file

        model.flag_probe.load_state_dict(load_file(str(path), device="cpu"))


def answer_only_loss(
    model: Any,
    inputs: dict[str, torch.Tensor],
    num_items_in_batch: Any = None,
    decision_weight: float = 1.0,
    split: int = 0,
) -> torch.Tensor:
    """Next-token cross-entropy over supervised positions (summed, divided across accumulation).

    The first answer token is the decision (FRAUD / LEGITIMATE). With teacher forcing every later token (score,
    flags, reasoning) is conditioned on the right label, so only that one position of ~80 has to learn to classify;
    `decision_weight` scales its loss so the classification is not drowned by the wording.
    """
    targets = inputs["labels"][:, 1:]
    keep = targets != IGNORE_INDEX
    logits = supervised_logits(model, inputs, keep, split)
    per_token = torch.nn.functional.cross_entropy(logits, targets[keep], reduction="none")
    if "weights" in inputs:  # per-token weights from encode_example (verdict and flag tokens, any answer order)
        per_token = per_token * inputs["weights"][:, 1:].to(per_token.device)[keep]
    elif decision_weight != 1.0:
        first = keep & (keep.cumsum(dim=1) == 1)  # the first supervised position of each row
        per_token = per_token * torch.where(first[keep], decision_weight, 1.0)
    denominator = num_items_in_batch if num_items_in_batch is not None else keep.sum()
    return per_token.sum() / torch.as_tensor(denominator, device=per_token.device).clamp(min=1)


def supervised_logits(model: Any, inputs: dict[str, torch.Tensor], keep: torch.Tensor, split: int = 0) -> torch.Tensor:
    """Logits at the positions that predict a supervised token, in row-major order: (n_kept, vocab).

    With inputs["hidden"] (the cached state entering layer `split`), only the layers from `split` up run."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        # DDP: the forward must go through the wrapper (it arms the gradient all-reduce); a boolean
        # logits_to_keep mask still projects only the supervised positions.
        mask = torch.zeros_like(inputs["labels"], dtype=torch.bool)
        mask[:, :-1] = keep
        out = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], logits_to_keep=mask)
        return out.logits.float()
    from fraudtune.modeling.inference import decoder_and_head
    from fraudtune.modeling.packing import is_packing

    decoder, head = decoder_and_head(model)
    mask = padding_mask(inputs["attention_mask"])
    if mask is None and is_packing(model):
        return _packed_logits(decoder, head, model, inputs, keep, split)
    if "hidden" in inputs:
        from fraudtune.modeling.frozen import upper_hidden

        hidden = upper_hidden(model, inputs["hidden"], mask, split)
    else:
        hidden = decoder(input_ids=inputs["input_ids"], attention_mask=mask).last_hidden_state
    return head(hidden[:, :-1][keep]).float()


PACK_MULTIPLE = 64  # packed totals are rounded up to this many tokens: few distinct shapes for compiled layers


def _packed_logits(
    decoder: Any, head: Any, model: Any, inputs: dict[str, torch.Tensor], keep: torch.Tensor, split: int
) -> torch.Tensor:
    """supervised_logits with the batch's rows packed end to end (modeling/packing.py): same rows, same order."""
    from fraudtune.modeling.packing import packed_inputs

    mask = inputs["attention_mask"]
    if "hidden" in inputs:
        from fraudtune.modeling.frozen import upper_hidden

        hidden, positions, lengths, real = packed_inputs(mask, inputs["hidden"], 0.0, PACK_MULTIPLE)
        out = upper_hidden(model, hidden, None, split, position_ids=positions, packed_lengths=lengths)
    else:
        ids, positions, lengths, real = packed_inputs(mask, inputs["input_ids"], 0, PACK_MULTIPLE)
        out = decoder(input_ids=ids, position_ids=positions, packed_lengths=lengths).last_hidden_state
    wanted = torch.zeros_like(real)
    wanted[:, :-1] = keep
    return head(out[0, : int(real.sum())][wanted[real]]).float()


def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor | None:
    """The attention mask the decoder needs: None for a right-padded batch (every row's real tokens first).

    Under causal attention a real token only sees the tokens before it, never the padding after it, so the mask
    changes nothing for the positions the loss reads; without it the attention kernel runs causal (it skips the
    blocks above the diagonal) and no (batch, 1, width, width) mask is built each layer and step."""
    right_padded = bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all())
    return None if right_padded else attention_mask


def build_trainer(
    cfg: RunConfig,
    run_dir: Path,
    model: Any,
    tokenizer: Any,
    train_set: list,
    val_set: list,
    val_chats: list,
    extra_callbacks: list[TrainerCallback] | None = None,
    clock: Any = None,
) -> Trainer:
    mixed = precision(cfg)
    args = TrainingArguments(
        output_dir=str(run_dir / paths.CHECKPOINTS_DIR),
        num_train_epochs=cfg.train.epochs,
        max_steps=cfg.train.max_steps,
        per_device_train_batch_size=cfg.train.batch_size,
        per_device_eval_batch_size=cfg.train.eval_batch_size,
        gradient_accumulation_steps=cfg.train.grad_accum,
        learning_rate=cfg.train.lr,
        warmup_steps=cfg.train.warmup_steps,
        lr_scheduler_type=cfg.train.scheduler,
        weight_decay=cfg.train.weight_decay,
        max_grad_norm=cfg.train.max_grad_norm,
        bf16=mixed == "bf16",
        fp16=mixed == "fp16",
        use_cpu=not torch.cuda.is_available(),
        eval_strategy="epoch",
        save_strategy="epoch",
        save_only_model=False,
        logging_strategy="steps",
        logging_steps=cfg.train.logging_steps,
        train_sampling_strategy="group_by_length" if cfg.train.group_by_length else "random",
        seed=cfg.train.seed,
        data_seed=cfg.train.seed,
        report_to="none",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    callbacks = [
        MetricsLogger(run_dir),
        EpochCheckpoints(run_dir, cfg.train.save_steps, clock),
        ValidationScorer(run_dir, tokenizer, val_chats, cfg),
    ]
    if cfg.train.early_stopping_patience:
        callbacks.append(EarlyStopping(cfg.train.early_stopping_patience))
    callbacks.extend(extra_callbacks or [])
    if cfg.train.trim_memory_steps:
        callbacks.append(ReturnFreedMemory(cfg.train.trim_memory_steps))
    trainer = AnswerOnlyTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=val_set,
        data_collator=lambda b: collate(b, tokenizer.pad_token_id, cfg.train.pad_to_multiple),
        callbacks=callbacks,
    )
    trainer.decision_weight = cfg.train.decision_weight
    return trainer


class MetricsLogger(TrainerCallback):
    """Every Trainer log event -> one line of RUN/metrics.jsonl (append-only)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / paths.METRICS

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or not state.is_world_process_zero:  # DDP: one writer
            return
        split = "val" if any(k.startswith("eval_") for k in logs) else "train"
        row = {"step": state.global_step, "epoch": round(state.epoch or 0, 4), "split": split}
        for key, value in logs.items():
            row[key.removeprefix("eval_")] = value
        if "learning_rate" in row:
            row["lr"] = row.pop("learning_rate")
        row["rss_mb"], row["peak_rss_mb"] = memory_mb()
        append_jsonl(self.path, row)


class ReturnFreedMemory(TrainerCallback):
    """Hand the heap memory freed by past steps back to the OS (glibc malloc_trim; a no-op elsewhere).

    glibc keeps freed activation buffers mapped; after a trim the process holds about the model and optimizer
    state again (metrics.jsonl logs rss_mb right after the trim every 10 steps next to peak_rss_mb: 0.95-1.47 GB
    vs a peak of 2.87-4.48 GB in the demo run). The peak within a step is unchanged; what other processes (a second
    tuning worker) can use is not.
    """

    def __init__(self, every: int) -> None:
        self.every = every
        self.trim = _malloc_trim()

    def _release(self) -> None:
        if self.trim is not None:
            self.trim(0)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0:
            self._release()

    def on_evaluate(self, args, state, control, **kwargs):
        self._release()

    def on_save(self, args, state, control, **kwargs):
        self._release()


def _malloc_trim() -> Any:
    """glibc's malloc_trim, or None where there is none (macOS, Windows, musl)."""
    libc = _libc()
    return getattr(libc, "malloc_trim", None) if libc is not None else None


M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def fix_mmap_threshold(size: int) -> bool:
    """Serve every allocation of `size` bytes or more from its own mapping, unmapped when freed (glibc only).

    glibc starts with such a threshold (128 KB) but raises it to the size of each mapped block freed, up to
    32 MB: after the first training step, activation and gradient buffers of 1-30 MB come from the heap, whose
    freed holes stay mapped and fragment, so the peak RSS grows from step to step (metrics.jsonl's peak_rss_mb
    of a demo run). A fixed threshold keeps the peak near what a step holds, but every large buffer is then
    mapped and zero-filled afresh, which costs step time; `make bench` measures both (docs/PERFORMANCE.md,
    "Memory: the allocator setting"). Hence opt-in (train.mmap_threshold_kb) for a machine short of memory.
    Returns whether it was set (False where there is no glibc).
    """
    libc = _libc()
    mallopt = getattr(libc, "mallopt", None) if libc is not None else None
    return bool(mallopt(M_MMAP_THRESHOLD, size)) if mallopt is not None else False


def _libc() -> Any:
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


def memory_mb() -> tuple[float | None, float]:
    """This process's resident memory now (None where it can't be read) and its peak so far, in MB."""
    return rss_mb(), peak_rss_mb()


class EpochCheckpoints(TrainerCallback):
    """Rename the Trainer's checkpoint-<step> to epoch-<N> and record the epoch's validation loss in it.

    With `save_steps`, a checkpoint is also written every that many steps within an epoch, as step-<S>; only the
    newest is kept, and an epoch end removes the ones before it. They exist to resume from, not to be chosen."""

    def __init__(self, run_dir: Path, save_steps: int = 0, clock: Any = None) -> None:
        self.root = run_dir / paths.CHECKPOINTS_DIR
        self.save_steps = save_steps
        self.clock = clock  # the run's seconds so far (across resumes), kept in each checkpoint
        self.epoch_end = False

    def on_step_end(self, args, state, control, **kwargs):
        self.epoch_end = False
        if self.save_steps and state.global_step % self.save_steps == 0:
            control.should_save = True

    def on_epoch_end(self, args, state, control, **kwargs):
        self.epoch_end = True

    def on_save(self, args, state, control, **kwargs):
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()  # DDP: every rank has written its rng_state_<rank>.pth before the rename
        if not state.is_world_process_zero:
            return
        src = self.root / f"checkpoint-{state.global_step}"
        probe = getattr(kwargs.get("model"), "flag_probe", None)
        if probe is not None and src.exists():
            from safetensors.torch import save_file

            save_file({k: v.detach().contiguous().cpu() for k, v in probe.state_dict().items()}, src / FLAG_PROBE_FILE)
        if not self.epoch_end:  # a step checkpoint within the epoch
            dst = self.root / f"step-{state.global_step}"
            if src.exists():
                _replace_dir(src, dst)
                self._stamp(dst)
            self._drop_steps(below=state.global_step)
            return
        epoch = max(1, math.ceil((state.epoch or 0) - 1e-6))  # a max_steps run ends mid-epoch: it counts as one
        dst = self.root / f"epoch-{epoch}"
        if src.exists():
            _replace_dir(src, dst)
        val_loss = next((h["eval_loss"] for h in reversed(state.log_history) if "eval_loss" in h), None)
        write_json(dst / "epoch.json", {"epoch": epoch, "step": state.global_step, "val_loss": val_loss})
        self._stamp(dst)
        self._drop_steps(below=state.global_step + 1)

    def _stamp(self, folder: Path) -> None:
        if self.clock is not None:
            write_json(folder / CHECKPOINT_CLOCK, {"train_seconds": round(self.clock(), 2)})

    def _drop_steps(self, below: int) -> None:
        for folder in _step_dirs(self.root.parent):
            if int(folder.name.split("-")[1]) < below:
                shutil.rmtree(folder, ignore_errors=True)


CHECKPOINT_CLOCK = "elapsed.json"  # in a checkpoint: the run's training seconds up to it, across resumes


def checkpoint_seconds(checkpoint: str | None) -> float | None:
    """The training seconds a checkpoint's run had spent up to it (None: no checkpoint, or one without a clock)."""
    path = Path(checkpoint) / CHECKPOINT_CLOCK if checkpoint else None
    if path is None or not path.exists():
        return None
    try:
        return float(read_json(path)["train_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _replace_dir(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(src, dst)


class ValidationScorer(TrainerCallback):
    """After each validation pass, validation accuracy/F1 from the label token's probability (no sampling); for
    evidence-first answers also the evidence trace (data/evidence.py) against the reference answers: which
    step (flags, score, verdict) the model gets wrong, at every epoch, from the evidence it wrote anyway."""

    def __init__(self, run_dir: Path, tokenizer: Any, chats: list, cfg: RunConfig) -> None:
        self.path, self.tokenizer, self.cfg = run_dir / paths.METRICS, tokenizer, cfg
        chats = scored_subset(chats, cfg.train.val_score_n, cfg.train.seed)
        self.prompts = [c[:-1] for c in chats]
        self.truth = [answer_label(c[-1]["content"]) == "FRAUD" for c in chats]
        self.references = self._reference_rows(chats) if cfg.data.answer_order == "evidence_first" else None

    def _reference_rows(self, chats: list) -> list[dict[str, Any]]:
        """The reference answers' label, flags and score, parsed once for the per-epoch evidence trace."""
        from fraudtune.data.chat import parse_evidence
        from fraudtune.profile import load_profile

        self.profile = load_profile(self.cfg.data.profile)
        rows = []
        for chat, fraud in zip(chats, self.truth, strict=True):
            score, codes, _ = parse_evidence(chat[-1]["content"], self.profile)
            rows.append({"label": "FRAUD" if fraud else "LEGITIMATE", "red_flags": codes, "risk_score": score or 0})
        return rows

    def on_evaluate(self, args, state, control, model=None, metrics=None, **kwargs):
        from fraudtune.modeling.inference import encode_prompts, verdict_scores

        was_training = model.training
        model.eval()
        probs, evidence = verdict_scores(
            model,
            self.tokenizer,
            encode_prompts(model, self.tokenizer, self.prompts),
            self.cfg.train.eval_batch_size,
            answer_order=self.cfg.data.answer_order,
            max_evidence_tokens=self.cfg.eval.max_new_tokens,
        )
        model.train(was_training)
        scores = classification_scores(self.truth, [p >= 0.5 for p in probs])
        if evidence is not None:
            scores.update(self.trace(probs, [e.text for e in evidence]))
        if metrics is not None:
            metrics.update({f"eval_val_{k}": v for k, v in scores.items()})
        if not state.is_world_process_zero:  # DDP: every rank scores (same numbers), rank 0 writes
            return
        append_jsonl(
            self.path,
            {
                "step": state.global_step,
                "epoch": round(state.epoch or 0, 4),
                "split": "val",
                **{f"val_{k}": v for k, v in scores.items()},
            },
        )

    def trace(self, probs: list[float], texts: list[str]) -> dict[str, Any]:
        """The evidence trace of the validation answers against the reference answers' own flags and score."""
        from fraudtune.data.evidence import evidence_steps

        if self.references is None:
            return {}
        records = [
            {"label": "FRAUD" if p >= 0.5 else "LEGITIMATE", "evidence": text}
            for p, text in zip(probs, texts, strict=True)
        ]
        steps = evidence_steps(records, self.references, self.profile)
        if steps is None:
            return {}
        keep = ("flags_exact", "flags_f1", "score_follows_flags", "verdict_follows_evidence", "unparsed")
        per_code = {c: v for c, v in steps["per_code"].items() if v["n"] or v["precision"] is not None}
        return {
            **{k: steps[k] for k in keep},
            **{f"first_wrong_{k}": v for k, v in steps["first_wrong_step"].items()},
            # which flags are missed or invented: recall and precision per flag (None where it never fired or
            # was never listed)
            "flags_recall": {c: _rounded(v["recall"]) for c, v in per_code.items()},
            "flags_precision": {c: _rounded(v["precision"]) for c, v in per_code.items()},
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def scored_subset(chats: list, n: int, seed: int) -> list:
    """n of the validation chats (all when n is 0 or covers them), each label kept in its share, in their order."""
    if not n or n >= len(chats):
        return chats
    rng = random.Random(seed)
    keep: list[int] = []
    for label in ("FRAUD", "LEGITIMATE"):
        rows = [i for i, c in enumerate(chats) if answer_label(c[-1]["content"]) == label]
        keep += rng.sample(rows, round(n * len(rows) / len(chats)))
    return [chats[i] for i in sorted(keep)]


class EarlyStopping(TrainerCallback):
    """Stop when validation loss has not improved for `patience` evaluations (epochs)."""

    def __init__(self, patience: int) -> None:
        self.patience, self.best, self.bad = patience, float("inf"), 0

    def on_train_begin(self, args, state, control, **kwargs):
        """--resume: count the epochs evaluated before the kill too (the restored log history holds them)."""
        self.best, self.bad = float("inf"), 0
        for entry in state.log_history:
            if "eval_loss" in entry:
                self._update(entry["eval_loss"])

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        loss = (metrics or {}).get("eval_loss")
        if loss is None:
            return
        self._update(loss)
        if self.bad >= self.patience:
            log.info("early stopping: validation loss has not improved for %d epochs", self.patience)
            control.should_training_stop = True

    def _update(self, loss: float) -> None:
        if loss < self.best - 1e-6:
            self.best, self.bad = loss, 0
        else:
            self.bad += 1


def last_checkpoint(run_dir: Path) -> str | None:
    """The newest checkpoint that loads (an epoch end or a step checkpoint within an epoch), to resume from
    (None: start over).

    A checkpoint cut short by a kill or damaged on disk is passed over with a one-line warning for the one
    before it: a resume never stops on a traceback from the Trainer's loading."""
    found = [p for p in _epoch_dirs(run_dir) + _step_dirs(run_dir) if (p / "trainer_state.json").exists()]
    for folder in sorted(found, key=_global_step, reverse=True):
        problem = checkpoint_problem(folder)
        if problem is None:
            return str(folder)
        log.warning("--resume: %s is damaged (%s); trying the checkpoint before it", folder, problem)
    return None


def _global_step(folder: Path) -> tuple[int, bool, int]:
    """Sort key of a checkpoint: its global step (from its state; -1 when unreadable), then epoch ends before step
    checkpoints, then the number in its name."""
    try:
        step = int(json.loads((folder / "trainer_state.json").read_text(encoding="utf-8")).get("global_step", -1))
    except (OSError, ValueError, AttributeError):
        step = -1
    return step, folder.name.startswith("epoch-"), int(folder.name.split("-")[1])


def checkpoint_problem(folder: Path) -> str | None:
    """Why the Trainer could not resume from this checkpoint, or None: the state and weights are read as the
    Trainer reads them, the torch files checked without unpickling (torch_file_problem)."""
    from safetensors.torch import load_file

    try:
        json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
        for weights in sorted(folder.glob("*.safetensors")):
            load_file(weights)
    except Exception as exc:  # any damage: truncated safetensors, bad JSON
        return f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}"
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        if (folder / name).exists():
            problem = torch_file_problem(folder / name)
            if problem:
                return problem
    return None


# what the Trainer's optimizer, scheduler and RNG files refer to; anything else is not a checkpoint's doing
_CHECKPOINT_GLOBALS = ("torch.", "collections.", "numpy.", "_codecs.")


def torch_file_problem(path: Path) -> str | None:
    """Why a torch.save file (a zip holding data.pkl) is damaged or not what a checkpoint holds, read without
    unpickling it: the zip's checksums, then the names its pickle refers to (pickletools lists them)."""
    import pickletools
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            if broken:
                return f"{path.name}: damaged ({broken} fails its checksum)"
            pickled = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
        names = []
        for opcode, arg, _ in pickletools.genops(pickled):
            if opcode.name == "GLOBAL":
                names.append(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL":
                names.append("<a name built at load time>")
    except (zipfile.BadZipFile, StopIteration, OSError, ValueError, EOFError) as exc:
        return f"{path.name}: not a readable torch file ({type(exc).__name__})"
    foreign = [n for n in names if not n.startswith(_CHECKPOINT_GLOBALS)]
    return f"{path.name}: refers to {foreign[0]}, which no checkpoint holds" if foreign else None


def resumed_step(checkpoint: str | None) -> tuple[int, float]:
    """(global step, epoch) the run continues from: (0, 0) for a fresh start."""
    if checkpoint is None:
        return 0, 0.0
    state = read_json(Path(checkpoint) / "trainer_state.json")
    return int(state.get("global_step", 0)), float(state.get("epoch") or 0.0)


def drop_replayed_metrics(run_dir: Path, step: int) -> None:
    """metrics.jsonl without the rows logged after `step` by the killed process: the resumed run logs those steps
    again, and a step must have one row."""
    path = run_dir / paths.METRICS
    if not path.exists():
        return
    rows = read_jsonl_lenient(path)
    kept = [row for row in rows if row.get("step", 0) <= step]
    if len(kept) != len(rows) or path.read_bytes()[-1:] not in (b"", b"\n"):
        write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in kept))


def _epoch_dirs(run_dir: Path) -> list[Path]:
    root = run_dir / paths.CHECKPOINTS_DIR
    return [p for p in root.glob("epoch-*") if re.fullmatch(r"epoch-\d+", p.name)] if root.exists() else []


def _step_dirs(run_dir: Path) -> list[Path]:
    root = run_dir / paths.CHECKPOINTS_DIR
    return [p for p in root.glob("step-*") if re.fullmatch(r"step-\d+", p.name)] if root.exists() else []


def select_best(run_dir: Path) -> Path:
    """The epoch checkpoint with the lowest validation loss; its name goes to checkpoints/best.txt."""
    scored = []
    for folder in _epoch_dirs(run_dir):
        info = read_json(folder / "epoch.json") if (folder / "epoch.json").exists() else {}
        if info.get("val_loss") is not None:
            scored.append((info["val_loss"], int(folder.name.split("-")[1]), folder))
    if not scored:
        raise FraudtuneError(f"{run_dir / paths.CHECKPOINTS_DIR}: no epoch checkpoint with a validation loss")
    best = min(scored)[2]
    write_text_atomic(run_dir / paths.CHECKPOINTS_DIR / paths.BEST_CHECKPOINT, best.name + "\n")
    return best


def export_adapter(cfg: RunConfig, run_dir: Path, best: Path) -> Path:
    """Copy the best epoch's weights to RUN/fraud-lora-adapter (PEFT format + run config + sha256 manifest)."""
    target = run_dir / paths.ADAPTER_DIR
    tmp = run_dir / f".{paths.ADAPTER_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    keep = (
        "adapter_config.json",
        "adapter_model.safetensors",
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    )
    for name in keep:
        if (best / name).exists():
            shutil.copy2(best / name, tmp / name)
    if cfg.lora.method == "full" and not (tmp / "tokenizer.json").exists():
        _, tokenizer = load_base(cfg.model)
        tokenizer.save_pretrained(tmp)
    write_yaml(tmp / ADAPTER_RUN_CONFIG, config_to_dict(cfg))
    write_manifest(tmp)
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target


def write_summary(
    cfg: RunConfig,
    run_dir: Path,
    trainer: Trainer,
    train_set: list,
    truncated: int,
    train_seconds: float,
    best: Path,
    start_epoch: float = 0.0,
    total_seconds: float | None = None,
) -> dict[str, Any]:
    """RUN/train_summary.json: what was trained, how fast, and which epoch won.

    After a resume, train_seconds and the rates cover this process's part (the epochs from `start_epoch` on), and
    train_seconds_total the whole run as if it had not been killed: the seconds up to the checkpoint it resumed
    from (work the killed process did after it is done again, and counted once) plus this process's."""
    state = trainer.state
    epochs_run = state.epoch or 0
    epochs_here = max(epochs_run - start_epoch, 0.0)
    supervised = sum(sum(1 for x in row["labels"] if x != IGNORE_INDEX) for row in train_set)
    total = sum(row["length"] for row in train_set)
    history = [h for h in state.log_history if "eval_loss" in h]
    summary = {
        "method": cfg.lora.method,
        "trainable": trainable_line(trainer.model),
        "trainable_params": sum(p.numel() for p in trainer.model.parameters() if p.requires_grad),
        "precision": precision(cfg),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "examples": len(train_set),
        "truncated_examples": truncated,
        "epochs_run": round(epochs_run, 3),
        "steps": state.global_step,
        "train_seconds": round(train_seconds, 2),
        "train_seconds_total": round(total_seconds if total_seconds is not None else train_seconds, 2),
        "train_tokens": round(total * epochs_run),
        "supervised_tokens": round(supervised * epochs_run),
        "resumed_from_epoch": round(start_epoch, 3) if start_epoch else None,
        "tokens_per_second": round(total * epochs_here / train_seconds, 1),
        "supervised_tokens_per_second": round(supervised * epochs_here / train_seconds, 1),
        "peak_rss_mb": peak_rss_mb(),
        "best_checkpoint": best.name,
        "val_loss_per_epoch": [round(h["eval_loss"], 5) for h in history],
        "best_val_loss": round(min(h["eval_loss"] for h in history), 5) if history else None,
        "final_train_loss": next((h["loss"] for h in reversed(state.log_history) if "loss" in h), None),
        "seed": cfg.train.seed,
        "adapter_dir": str(run_dir / paths.ADAPTER_DIR),
    }
    vals = [row for row in read_jsonl_lenient(run_dir / paths.METRICS) if "val_accuracy" in row]
    summary["val_accuracy_per_epoch"] = [round(row["val_accuracy"], 4) for row in vals]
    summary["val_f1_per_epoch"] = [round(row["val_f1"], 4) for row in vals]
    if any("val_flags_exact" in row for row in vals):  # evidence first: where the validation answers go wrong
        summary["val_evidence_per_epoch"] = [
            {k[4:]: row[k] for k in row if k.startswith(("val_flags", "val_score", "val_verdict", "val_first_wrong"))}
            for row in vals
        ]
    write_json(run_dir / paths.TRAIN_SUMMARY, summary)
    return summary
