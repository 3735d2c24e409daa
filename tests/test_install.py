"""`pip install .` outside the checkout: the package carries its default issuer profile and configs.

A fresh venv gets the project itself from a built wheel (not an editable link to src/); its dependencies come
from the test's own environment through a .pth file, so nothing is downloaded. Then, from an empty folder far
from the repository, `fraudtune data generate` on the default profile and `fraudtune train` on the shipped tiny
config must work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from fraudtune import paths


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    )
    return done


@pytest.mark.timeout(1200)
def test_pip_install_outside_the_checkout_generates_and_trains(tmp_path):
    env_dir, work = tmp_path / "venv", tmp_path / "elsewhere"
    work.mkdir()
    (tmp_path / "source").mkdir()
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    # the dependencies (torch, transformers, ...) from this environment; the project itself is not among them
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", PIP_NO_INDEX="1")
    source, wheels = tmp_path / "source", tmp_path / "wheels"  # setuptools builds in the tree: not in the checkout
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in ("pyproject.toml", "README.md", "src"):
        copy = shutil.copytree if (paths.REPO_ROOT / name).is_dir() else shutil.copy2
        copy(paths.REPO_ROOT / name, source / name, **({"ignore": junk} if copy is shutil.copytree else {}))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
          str(source)], work, env)  # fmt: skip
    (wheel,) = wheels.glob("fraudtune-*.whl")
    _run([python, "-m", "pip", "install", "--no-deps", "-q", str(wheel)], work, env)
    where = _run([python, "-c", "import fraudtune, sys; print(fraudtune.__file__)"], work, env).stdout.strip()
    assert Path(where).is_relative_to(site) and not Path(where).is_relative_to(paths.REPO_ROOT)

    fraudtune = str(env_dir / "bin" / "fraudtune")
    _run([fraudtune, "data", "generate", "--out", "d", "--n", "40"], work, env)
    card = json.loads((work / "d" / paths.DATA_CARD).read_text())
    assert card["n"] == 40 and card["profile_name"] and Path(card["profile"]).name == "demo_issuer.yaml"
    assert not (work / "configs").exists()  # found inside the installed package, not in this folder

    _run([fraudtune, "train", "--config", "configs/tiny.yaml", "--set", "data.n=24", "--set", "train.epochs=1",
          "--run-dir", "run"], work, env)  # fmt: skip
    assert (work / "run" / paths.ADAPTER_DIR / "adapter_model.safetensors").exists()
    assert json.loads((work / "run" / paths.TRAIN_SUMMARY).read_text())["steps"] > 0
    roi = _run([fraudtune, "roi", "--run-dir", "run", "--preset", "seed", "--json"], work, env)
    assert json.loads(roi.stdout)["preset"] == "seed"  # no guide template needed outside a checkout
