"""meta.json of a run: when, what code, which versions, which host, and its status."""

from __future__ import annotations

import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fraudtune.files import read_json, write_json
from fraudtune.paths import REPO_ROOT, RUN_META


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("fraudtune", "torch", "transformers", "peft", "accelerate", "datasets", "optuna", "scikit-learn"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


CPU_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # what decides a CPU step's speed and precision


def cpu_info() -> dict[str, Any]:
    """Model name, cores and the vector features that set a CPU run's speed (train time is comparable only
    between runs on the same kind of CPU: fp32 on AVX2 trains several times slower than bf16 on AVX512-BF16)."""
    import os

    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"cores": os.cpu_count()}
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), None)
    flags = set(text.split())
    return {"model": model, "cores": os.cpu_count(), "features": [f for f in CPU_FEATURES if f in flags]}


def set_status(run_dir: Path, stage: str, status: str, **extra: Any) -> None:
    """Record a stage's status (running|done|failed|cancelled) in meta.json, creating it on first use."""
    path = Path(run_dir) / RUN_META
    meta = (
        read_json(path)
        if path.exists()
        else {
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "git_sha": git_sha(),
            "versions": versions(),
            "host": {
                "machine": platform.machine(),
                "system": platform.system(),
                "python": platform.python_version(),
                "processor": platform.processor(),
                "cpu": cpu_info(),
            },
            "stages": {},
        }
    )
    meta["stages"][stage] = {"status": status, "at": datetime.now(UTC).isoformat(timespec="seconds"), **extra}
    meta["status"] = status
    write_json(path, meta)
