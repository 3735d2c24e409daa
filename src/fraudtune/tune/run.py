"""`fraudtune tune`: run (or resume, or join) the search, or measure the advanced techniques; write the results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fraudtune import paths
from fraudtune.config import RunConfig, config_to_dict
from fraudtune.files import write_yaml
from fraudtune.tune.grid import apply_budget, run_grid, run_tpe, shared_data
from fraudtune.tune.results import write_results
from fraudtune.tune.storage import open_study
from fraudtune.tune.techniques import techniques as measure_techniques


def tune(cfg: RunConfig, run_dir: Path, techniques: bool = False) -> dict[str, Any]:
    """`fraudtune tune`: run (or resume, or join) the study, then write the results and the best config.

    Args:
        cfg: the base config; tune.budget=small first applies the tune.small overrides.
        run_dir: the study's run directory (trials go to RUN/tune/trial-<k>/).
        techniques: measure the advanced techniques (tune/techniques.py) instead of searching.
    """
    run_dir = Path(run_dir)
    cfg = apply_budget(cfg)
    if techniques:
        return measure_techniques(cfg, run_dir)
    tune_dir = run_dir / paths.TUNE_DIR
    write_yaml(tune_dir / paths.RUN_CONFIG, config_to_dict(cfg))
    shared_data(cfg, run_dir)
    kind = cfg.tune.sampler
    study = open_study(cfg, run_dir, kind)
    if kind == "grid":
        run_grid(study, cfg, run_dir)
    else:
        run_tpe(study, cfg, run_dir)
    return write_results(cfg, run_dir, study, kind)
