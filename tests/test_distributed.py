"""Scale-out: `fraudtune train` under torchrun (DDP, 2 CPU processes, gloo) matches a single-process run.

Same global batch (2 processes x 2 = 1 process x 4), same seed and data order, no dropout, fp32: the adapters and
losses must agree to float tolerance, and rank 0 alone writes the run directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import TINY_CONFIG, tiny_config
from safetensors.torch import load_file

from fraudtune import paths
from fraudtune.files import read_jsonl
from fraudtune.train import train

# 20 examples -> 16 train (4 full batches of 4) and 2 validation: no rank ever gets a padded batch
SAME_RUN = (
    "data.n=20",
    "train.epochs=2",
    "lora.dropout=0",
    "train.group_by_length=false",
    "train.lr=0.01",
    "train.warmup_steps=0",
    "train.logging_steps=1",
    "train.early_stopping_patience=0",
    "train.precision=fp32",  # bf16 autocast rounds batches of 2 and of 4 differently: compare exact arithmetic
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny runs on a shared 2-core machine: one torch thread avoids OpenMP oversubscription (3-6x faster)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def losses(run_dir, split):
    return [r["loss"] for r in read_jsonl(run_dir / paths.METRICS) if r["split"] == split and "loss" in r]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_ddp_on_two_cpu_processes_matches_a_single_process_run(tmp_path):
    single_dir, ddp_dir = tmp_path / "single", tmp_path / "ddp"
    train(tiny_config(*SAME_RUN, "train.batch_size=4"), single_dir)

    sets = [arg for item in (*SAME_RUN, "train.batch_size=2") for arg in ("--set", item)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    cmd += ["-m", "fraudtune.cli", "train", "--config", str(TINY_CONFIG), *sets, "--run-dir", str(ddp_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    single = load_file(single_dir / paths.ADAPTER_DIR / "adapter_model.safetensors")
    ddp = load_file(ddp_dir / paths.ADAPTER_DIR / "adapter_model.safetensors")
    assert single.keys() == ddp.keys()
    for key in single:
        assert torch.allclose(single[key], ddp[key], atol=1e-4, rtol=1e-3), key
    assert any(v.abs().sum() > 0 for k, v in ddp.items() if "lora_B" in k)  # it trained
    assert losses(ddp_dir, "train") == pytest.approx(losses(single_dir, "train"), rel=1e-3)
    assert losses(ddp_dir, "val") == pytest.approx(losses(single_dir, "val"), rel=1e-3)

    # rank 0 alone wrote: one metrics row per event, the same files as a single-process run
    assert sum("val_accuracy" in r for r in read_jsonl(ddp_dir / paths.METRICS)) == 2
    assert {p.name for p in ddp_dir.iterdir()} == {p.name for p in single_dir.iterdir()}
    epochs = sorted(p.name for p in (ddp_dir / paths.CHECKPOINTS_DIR).iterdir())
    assert epochs == ["best.txt", "epoch-1", "epoch-2"]
    summary = json.loads((ddp_dir / paths.TRAIN_SUMMARY).read_text())
    assert summary["steps"] == json.loads((single_dir / paths.TRAIN_SUMMARY).read_text())["steps"]
