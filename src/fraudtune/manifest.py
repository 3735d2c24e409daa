"""sha256 manifests for saved weights, so a stage refuses a truncated or swapped artifact."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fraudtune.errors import FraudtuneError
from fraudtune.files import read_json, write_json
from fraudtune.paths import MANIFEST


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(folder: Path) -> None:
    """Record size and sha256 of every file in the folder (except the manifest itself)."""
    files = {
        p.name: {"bytes": p.stat().st_size, "sha256": sha256(p)}
        for p in sorted(Path(folder).iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    write_json(Path(folder) / MANIFEST, {"files": files})


def verify_manifest(folder: Path) -> None:
    """Raise a one-line error if a file is missing, truncated or changed since the manifest was written."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise FraudtuneError(f"{folder}: {MANIFEST} missing; the folder was not written completely by fraudtune")
    for name, info in read_json(path)["files"].items():
        target = Path(folder) / name
        if not target.exists():
            raise FraudtuneError(f"{target}: missing (listed in {MANIFEST}); the artifact is incomplete")
        if target.stat().st_size != info["bytes"] or sha256(target) != info["sha256"]:
            raise FraudtuneError(f"{target}: does not match its sha256 in {MANIFEST} (truncated or replaced)")
