"""`fraudtune demo`: the whole pipeline on one config, each stage skipped on --resume once it is done."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fraudtune import paths
from fraudtune.config import RunConfig
from fraudtune.files import read_json, write_json
from fraudtune.runmeta import set_status

log = logging.getLogger(__name__)

DEMO_TIMINGS = "demo_timings.json"


def demo(cfg: RunConfig, run_dir: Path, resume: bool = False) -> str:
    """data -> train -> evaluate -> forgetting -> standard benchmarks (quick) -> roi -> report; returns the summary."""
    from fraudtune.evaluate.suite import evaluate, render_table
    from fraudtune.forgetting.run import forgetting
    from fraudtune.report import report
    from fraudtune.roi import roi
    from fraudtune.train import train

    run_dir = Path(run_dir)
    timings = _load_timings(run_dir) if resume else {}
    quick = cfg.forgetting.suite_quick_n > 0  # the standard benchmarks on a quick subset
    stages: list[tuple[str, str, Callable[[], Any]]] = [
        ("train", paths.ADAPTER_DIR, lambda: train(cfg, run_dir, resume=resume)),
        ("evaluate", paths.EVAL_JSON, lambda: evaluate(cfg, run_dir)),
        ("forgetting", paths.FORGETTING_JSON, lambda: forgetting(cfg, run_dir)),
        *([("benchmarks", paths.FORGETTING_SUITE_JSON, lambda: _quick_suite(cfg, run_dir))] if quick else []),
        ("roi", paths.ROI_JSON, lambda: roi(cfg, run_dir, preset="measured")),
        ("report", paths.REPORT_DIR, lambda: report(cfg, run_dir)),
    ]
    for name, artifact, run in stages:
        if resume and _done(run_dir, name, artifact):
            log.info("demo: %s already done, skipped (--resume)", name)
            continue
        log.info("demo: %s ...", name)
        began = time.perf_counter()
        run()
        timings[name] = round(time.perf_counter() - began, 1)
        set_status(run_dir, name, "done")
        write_json(run_dir / DEMO_TIMINGS, timings)
    result = read_json(run_dir / paths.EVAL_JSON)
    total = sum(timings.values())
    lines = [
        render_table(result),
        "",
        "stage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()),
        f"total: {total / 60:.1f} min",
        f"dashboard: {run_dir / paths.REPORT_DIR / 'dashboard.html'}",
    ]
    if quick and not (run_dir / paths.FORGETTING_SUITE_JSON).exists():
        lines.append("standard benchmarks: left out (no data: run `make suite-data` once, then rerun with --resume)")
    return "\n".join(lines)


def _quick_suite(cfg: RunConfig, run_dir: Path) -> None:
    """The standard suite on forgetting.suite_quick_n items per task; left out, with a warning, without its data."""
    from fraudtune.errors import FraudtuneError
    from fraudtune.forgetting.suite import locate, run_suite

    try:
        locate(cfg.forgetting.suite_data)
    except FraudtuneError as exc:
        log.warning("demo: standard benchmarks left out: %s", exc)
        return
    quick = cfg.model_copy(deep=True)
    quick.forgetting.suite_n = cfg.forgetting.suite_quick_n
    run_suite(quick, run_dir)


def _done(run_dir: Path, stage: str, artifact: str) -> bool:
    meta_path = run_dir / paths.RUN_META
    if not meta_path.exists() or not (run_dir / artifact).exists():
        return False
    return read_json(meta_path).get("stages", {}).get(stage, {}).get("status") == "done"


def _load_timings(run_dir: Path) -> dict[str, float]:
    path = run_dir / DEMO_TIMINGS
    return read_json(path) if path.exists() else {}
